#!/usr/bin/env bash
# Installs the Debian packages kubetron's sandbox, tests and benchmarks use. Idempotent; needs root.
# Service start-up by the packages is suppressed (a temporary policy-rc.d): kubetron starts its own daemons.
set -euo pipefail

pkgs=(openvswitch-switch openvswitch-common ovn-central ovn-host ovn-common containernetworking-plugins
      iproute2 iputils-ping isc-dhcp-client udhcpc ethtool openssl python3-openvswitch procps kmod curl libjemalloc2)
if [ "${KUBETRON_KUBE:-1}" = 1 ]; then
  pkgs+=(etcd-server golang-go golang-github-modern-go-reflect2-dev dpkg-dev containerd runc gcc libc6-dev)
fi
# Real VMs (issue 11; testkit::vm): qemu under TCG, and the decompressors that pull the guest kernel's ELF
# out of its bzImage. The guest kernel and busybox-static are only downloaded and extracted by the tests,
# never installed (busybox-static conflicts with the host's busybox).
if [ "${KUBETRON_VM:-1}" = 1 ]; then
  pkgs+=(qemu-system-x86 lz4 xz-utils gzip)
fi
# A real OpenStack Neutron (issue 12; daemons::neutron, daemons::keystone): Debian's neutron-server
# (Zed, ML2/OVN), PostgreSQL 15, Keystone served by uwsgi; the tests start their own private
# instances (the packages' services stay down).
if [ "${KUBETRON_NEUTRON:-1}" = 1 ]; then
  pkgs+=(neutron-server postgresql-15 keystone uwsgi-core uwsgi-plugin-python3)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2

made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
if ! apt-get install "${apt_opts[@]}" "${missing[@]}" >/tmp/kubetron-apt.$$.log 2>&1; then
  apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
  apt-get install "${apt_opts[@]}" "${missing[@]}" >/tmp/kubetron-apt.$$.log 2>&1 \
    || { cat /tmp/kubetron-apt.$$.log >&2; rm -f /tmp/kubetron-apt.$$.log; exit 1; }
fi
rm -f /tmp/kubetron-apt.$$.log
