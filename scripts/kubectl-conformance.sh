#!/usr/bin/env bash
# kubectl conformance of the simulator: starts `fleet sim up` on a free port and drives the
# upstream cluster with an unmodified kubectl (fresh --cache-dir), the way users and tools will.
#
# Usage: scripts/kubectl-conformance.sh path/to/fleet
# Ends with `N passed, M failed`; exits non-zero when anything failed.
set -uo pipefail

FLEET=${1:?usage: $0 path/to/fleet}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-conformance.XXXXXX")
SIM_PID=""
cleanup() {
  [[ -n $SIM_PID ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v kubectl >/dev/null || { echo "kubectl not found"; echo "0 passed, 1 failed"; exit 1; }

"$FLEET" sim up --clusters 2 --dir "$WORK/sim" --port 0 >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 120); do
  grep -q "fleet sim ready" "$WORK/sim.log" 2>/dev/null && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.5
done
if ! grep -q "fleet sim ready" "$WORK/sim.log"; then
  echo "fleet sim up did not become ready:"; cat "$WORK/sim.log"
  echo "0 passed, 1 failed"; exit 1
fi

export KUBECONFIG="$WORK/sim/upstream.kubeconfig"
CACHE="$WORK/kube-cache"
k() { kubectl --cache-dir "$CACHE" --request-timeout=20s "$@"; }
export -f k; export CACHE

# shellcheck source=kubectl-lib.sh
source "$HERE/kubectl-lib.sh"
# shellcheck source=kubectl-checks.sh
source "$HERE/kubectl-checks.sh"

summary
