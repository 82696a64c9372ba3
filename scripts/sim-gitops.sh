#!/usr/bin/env bash
# The README's GitOps walkthrough, exactly as a user types it: `fleet sim up` (controller + one
# agent per simulated cluster), label a cluster with kubectl, apply a GitRepo that points at a
# local git repository, and watch the bundle reach only the labelled cluster.
#
# Usage: scripts/sim-gitops.sh path/to/fleet
# Ends with `N passed, M failed`; exits non-zero when anything failed.
set -uo pipefail

FLEET=${1:?usage: $0 path/to/fleet}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sim-gitops.XXXXXX")
SIM_PID=""
cleanup() {
  [[ -n $SIM_PID ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=kubectl-lib.sh
source "$HERE/kubectl-lib.sh"
command -v kubectl >/dev/null || { echo "kubectl not found"; echo "0 passed, 1 failed"; exit 1; }

cd "$WORK" || exit 1
"$FLEET" sim up --clusters 3 --port 0 >sim.log 2>&1 &
SIM_PID=$!
for _ in $(seq 1 240); do
  grep -q "fleet sim ready" sim.log 2>/dev/null && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.5
done
if ! grep -q "fleet sim ready" sim.log; then
  echo "fleet sim up did not become ready:"; cat sim.log
  echo "0 passed, 1 failed"; exit 1
fi

up() { kubectl --kubeconfig .fleet-sim/upstream.kubeconfig --cache-dir "$WORK/cache" --request-timeout=20s "$@"; }
down() { local c=$1; shift; kubectl --kubeconfig ".fleet-sim/clusters/$c.kubeconfig" --cache-dir "$WORK/cache-$c" --request-timeout=20s "$@"; }

# A local git repository with one bundle that targets env=prod.
mkdir -p repo/web
cat >repo/web/fleet.yaml <<'YAML'
defaultNamespace: web
YAML
cat >repo/web/deployment.yaml <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
YAML
git -C repo init -q -b main && git -C repo -c user.email=a@b -c user.name=readme add -A &&
  git -C repo -c user.email=a@b -c user.name=readme -c commit.gpgsign=false commit -qm web

cat >gitrepo.yaml <<YAML
apiVersion: fleet.cattle.io/v1alpha1
kind: GitRepo
metadata:
  name: web
  namespace: fleet-default
spec:
  repo: file://$WORK/repo
  branch: main
  targets:
  - clusterSelector:
      matchLabels:
        env: prod
YAML

check "clusters are registered upstream" eventually 120 expect_output 'sim-3' up get clusters.fleet.cattle.io -n fleet-default
check "label cluster sim-2 env=prod" up label clusters.fleet.cattle.io sim-2 env=prod -n fleet-default
check "apply the GitRepo" up apply -f gitrepo.yaml
check "the GitRepo becomes Ready (1/1)" eventually 180 expect_output '1/1' up get gitrepo web -n fleet-default
check "sim-2 runs the Deployment" eventually 120 down sim-2 get deployment web -n web
check "the Deployment becomes Available on sim-2" eventually 120 down sim-2 wait --for=condition=Available deployment/web -n web --timeout=5s
check "sim-1 does not get it" expect_failure 'NotFound|not found' down sim-1 get deployment web -n web
check "the Bundle is listed" expect_output 'web-web' up get bundles -n fleet-default
check "the cluster shows its bundles ready (the app and its own fleet-agent bundle)" eventually 120 expect_output '2/2' up get clusters.fleet.cattle.io sim-2 -n fleet-default

summary
