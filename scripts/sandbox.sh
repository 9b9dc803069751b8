#!/usr/bin/env bash
# The main job: builds kubetron and runs `kubetron sandbox up` (real OVN, networks red and blue, two
# pods plugged into both by the CNI plugin, pings). Extra arguments go to `sandbox up`
# (e.g. --nodes 2). `bash scripts/sandbox.sh down` and `bash scripts/sandbox.sh status` stop and show it.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBETRON_KUBE=0 bash scripts/install-deps.sh
cargo build --release --locked -q -p kubetron -p cni --bins
bin="${CARGO_TARGET_DIR:-target}/release/kubetron"

case "${1:-up}" in
  down|status) exec "$bin" sandbox "$1" "${@:2}" ;;
  up) shift || true; exec "$bin" sandbox up "$@" ;;
  *) exec "$bin" sandbox up "$@" ;;
esac
