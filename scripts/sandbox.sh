#!/usr/bin/env bash
# The main job: builds kubetron, the kubetron-cni shim and the kubetron-sandbox tool, and runs
# `kubetron-sandbox up` (real OVN, networks red and blue, two pods plugged into both by the CNI plugin,
# pings). Extra arguments go to `up` (e.g. --nodes 2, --with-kube, --vm: a qemu VM shaped like KubeVirt's
# on red and blue, live-migrated node1 -> node2 with --nodes 2; --neutron: red and blue made in a real
# neutron-server through its API, the controller on Neutron's API: `bash scripts/sandbox.sh --neutron`). `bash scripts/sandbox.sh down` and
# `bash scripts/sandbox.sh status` stop and show it. `bash scripts/sandbox.sh --cluster` instead installs
# kubetron into a real one-node cluster with `kubectl apply -k` and runs the demo there (until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --cluster ]; then
  bash scripts/install-deps.sh
  cargo build --release --locked -q -p sandbox --bins
  export KUBETRON_CACHE=${KUBETRON_CACHE:-$([ "$(id -u)" = 0 ] && echo /var/cache/kubetron || echo "$PWD/.cache")}
  exec "${CARGO_TARGET_DIR:-target}/release/kubetron-sandbox" cluster "${@:2}"
fi

vm=0 kube=0 neutron=0
for a in "$@"; do
  case "$a" in
    --vm) vm=1 ;;
    --with-kube) kube=1 ;;
    --neutron) kube=1 neutron=1 ;;
  esac
done
KUBETRON_KUBE=$kube KUBETRON_VM=$vm KUBETRON_NEUTRON=$neutron bash scripts/install-deps.sh
# --vm, --with-kube, --neutron: the guest image and kube-apiserver are cached where the tests cache theirs.
[ "$vm$kube" != 00 ] && export KUBETRON_CACHE=${KUBETRON_CACHE:-$([ "$(id -u)" = 0 ] && echo /var/cache/kubetron || echo "$PWD/.cache")}
cargo build --release --locked -q -p kubetron -p cni -p sandbox --bins
# It runs the kubetron binary next to it (same target directory).
bin="${CARGO_TARGET_DIR:-target}/release/kubetron-sandbox"

case "${1:-up}" in
  down|status) exec "$bin" "$1" "${@:2}" ;;
  up) shift || true; exec "$bin" up "$@" ;;
  *) exec "$bin" up "$@" ;;
esac
