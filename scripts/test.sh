#!/usr/bin/env bash
# The whole kubetron test suite, as CI runs it: installs what it needs (Debian packages; root), builds the
# workspace, and runs every test against real ovsdb-server / OVN / OVS daemons (and, unless KUBETRON_KUBE=0,
# a real kube-apiserver built from Debian's source package and cached under .cache/).
# Real qemu VMs too unless KUBETRON_VM=0.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
export CARGO_INCREMENTAL=0

# Expensive builds (kube-apiserver from Debian's source) are cached keyed by their exact source
# version: as root under /var/cache/kubetron so that fresh clones on this machine share them, else in
# the clone's .cache/. A cold cache only costs the build.
if [ -z "${KUBETRON_CACHE:-}" ] && [ "$(id -u)" = 0 ]; then
  export KUBETRON_CACHE=/var/cache/kubetron
fi

# The real-cluster tests (KUBETRON_CLUSTER=1, the default with KUBETRON_KUBE=1) also need the node and
# control-plane binaries; one build makes them all (they share most of it).
if [ "${KUBETRON_KUBE:-1}" = 1 ]; then
  kube_bins=(kube-apiserver)
  if [ "${KUBETRON_CLUSTER:-1}" = 1 ]; then
    kube_bins+=(kube-controller-manager kube-scheduler kubelet kubectl)
  fi
  kube_out=$(bash scripts/kube-build.sh "${kube_bins[@]}")
  mapfile -t kube_paths <<<"$kube_out"
  KUBE_APISERVER_BIN=${kube_paths[0]}
  export KUBE_APISERVER_BIN
  export KUBETRON_KUBE_TESTS=1
  if [ "${KUBETRON_CLUSTER:-1}" = 1 ]; then
    KUBE_BIN_DIR=$(dirname "${kube_paths[1]}")
    export KUBE_BIN_DIR
    export KUBETRON_CLUSTER_TESTS=1
  fi
fi

# The real-VM tests (qemu under TCG, one at a time machine-wide; testkit::vm) unless KUBETRON_VM=0.
if [ "${KUBETRON_VM:-1}" = 1 ]; then
  export KUBETRON_VM_TESTS=1
fi

# The real-Neutron tests (a private PostgreSQL and neutron-server; daemons::neutron) unless KUBETRON_NEUTRON=0.
if [ "${KUBETRON_NEUTRON:-1}" = 1 ]; then
  export KUBETRON_NEUTRON_TESTS=1
fi

# Gates first: formatting (rustfmt.toml) and lints, warnings as errors.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo build --workspace --all-targets --locked

# The images the real cluster runs (pause, busybox, and kubetron's, from the debug build just made:
# the release build would cost CI minutes; scripts/images.sh without KUBETRON_BIN_DIR, as the sandbox
# runs it, builds release), imported without a registry.
if [ "${KUBETRON_CLUSTER_TESTS:-0}" = 1 ]; then
  mkdir -p target/images
  KUBETRON_BIN_DIR=${CARGO_TARGET_DIR:-$PWD/target}/debug bash scripts/images.sh target/images >target/images/index
  KUBETRON_IMAGES=$PWD/target/images/index
  export KUBETRON_IMAGES
fi
cargo test --workspace --locked --no-fail-fast -- --test-threads="${KUBETRON_TEST_THREADS:-4}"
