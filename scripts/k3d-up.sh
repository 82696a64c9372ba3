#!/usr/bin/env bash
# Creates the k3d test bed of the acceptance features (FLEET_E2E_BACKEND=k3d):
#   - an upstream cluster with charts/fleet-rs installed (rendered by our own chart engine,
#     `fleet helm template`, and applied with kubectl),
#   - FLEET_E2E_CLUSTERS downstream clusters, registered upstream as Clusters sim-1 … sim-N
#     through spec.kubeConfigSecret (the controller deploys their agents),
#   - a git server (git daemon) and a Helm chart repository (static HTTP) in containers on the
#     same Docker network, serving folders of $FLEET_E2E_STATE_DIR.
# Writes $FLEET_E2E_STATE_DIR/env, which scripts/test-e2e sources.
set -euo pipefail
source "$(dirname "$0")/k3d-lib.sh"
require_k3d_tools
mkdir -p "$STATE/downstream" "$STATE/git" "$STATE/charts"

docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null

create_cluster() {
  local name=$1
  if ! k3d cluster get "$name" >/dev/null 2>&1; then
    k3d cluster create "$name" --network "$NETWORK" --wait --timeout 300s \
      --k3s-arg "--disable=traefik@server:0" --no-lb
  fi
}
create_cluster "$UPSTREAM"
for i in $(seq 1 "$CLUSTERS"); do create_cluster "$(downstream_name "$i")"; done

"$ROOT/scripts/k3d-image.sh"

# Git server: bare repositories the features create under $STATE/git.
if ! docker container inspect "$GIT_CONTAINER" >/dev/null 2>&1; then
  docker run -d --name "$GIT_CONTAINER" --network "$NETWORK" -v "$STATE/git:/srv/git" \
    --entrypoint sh alpine/git:latest -c \
    "git config --global --add safe.directory '*' && exec git daemon --reuseaddr --export-all --base-path=/srv/git /srv/git" >/dev/null
fi
# Chart repository: charts and index.yaml the features write under $STATE/charts.
if ! docker container inspect "$CHARTS_CONTAINER" >/dev/null 2>&1; then
  docker run -d --name "$CHARTS_CONTAINER" --network "$NETWORK" -v "$STATE/charts:/srv" \
    python:3-alpine python -m http.server 8080 --directory /srv >/dev/null
fi

# Kubeconfigs: from the host (for the tests) and from inside the Docker network (for the
# controller running in the upstream cluster).
k3d kubeconfig get "$UPSTREAM" >"$STATE/upstream.yaml"
export KUBECONFIG=$STATE/upstream.yaml
internal_kubeconfig() { k3d kubeconfig get "$1" | sed -E "s#server: https://[^ ]+#server: https://k3d-$1-server-0:6443#"; }
upstream_ca=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d)

# Install the chart with our own engine.
kubectl create namespace cattle-fleet-system --dry-run=client -o yaml | kubectl apply -f -
for ns in fleet-default fleet-local; do kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -; done
repo=${IMAGE%:*} tag=${IMAGE##*:}
cargo run -q -p fleet-cli --bin fleet -- helm template fleet-rs "$ROOT/charts/fleet-rs" \
  --namespace cattle-fleet-system --include-crds \
  --set "image.repository=$repo,image.tag=$tag,image.pullPolicy=Never" \
  --set "agentImage.repository=$repo,agentImage.tag=$tag,agentImage.pullPolicy=Never" \
  --set "apiServerURL=https://k3d-$UPSTREAM-server-0:6443" \
  --set-string "apiServerCA=$upstream_ca" \
  | kubectl apply --server-side --force-conflicts -f -
kubectl -n cattle-fleet-system rollout status deployment/fleet-controller --timeout=300s

# Register the downstream clusters (manager-initiated: the controller deploys the agents).
for i in $(seq 1 "$CLUSTERS"); do
  ds=$(downstream_name "$i")
  k3d kubeconfig get "$ds" >"$STATE/downstream/sim-$i.yaml"
  kubectl -n fleet-default create secret generic "sim-$i-kubeconfig" \
    --from-literal=value="$(internal_kubeconfig "$ds")" --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f - <<YAML
apiVersion: fleet.cattle.io/v1alpha1
kind: Cluster
metadata:
  name: sim-$i
  namespace: fleet-default
spec:
  kubeConfigSecret: sim-$i-kubeconfig
YAML
done
for i in $(seq 1 "$CLUSTERS"); do
  kubectl -n fleet-default wait "cluster/sim-$i" --timeout=300s \
    --for=jsonpath='{.status.agent.namespace}'=cattle-fleet-system
done

cat >"$STATE/env" <<ENV
export FLEET_E2E_BACKEND=k3d
export FLEET_E2E_UPSTREAM_KUBECONFIG=$STATE/upstream.yaml
export FLEET_E2E_DOWNSTREAM_KUBECONFIGS=$STATE/downstream
export FLEET_E2E_GIT_ROOT=$STATE/git
export FLEET_E2E_GIT_URL=git://$GIT_CONTAINER:9418
export FLEET_E2E_CHART_ROOT=$STATE/charts
export FLEET_E2E_CHART_REPO_URL=http://$CHARTS_CONTAINER:8080
ENV
echo "k3d test bed ready: source $STATE/env, or run scripts/test-e2e"
