#!/usr/bin/env bash
# Removes the k3d test bed created by scripts/k3d-up.sh.
set -uo pipefail
source "$(dirname "$0")/k3d-lib.sh"
require_k3d_tools
k3d cluster delete "$UPSTREAM" >/dev/null 2>&1
for i in $(seq 1 "$CLUSTERS"); do k3d cluster delete "$(downstream_name "$i")" >/dev/null 2>&1; done
docker rm -f "$GIT_CONTAINER" "$CHARTS_CONTAINER" >/dev/null 2>&1
docker network rm "$NETWORK" >/dev/null 2>&1
rm -rf "$STATE"
echo "k3d test bed removed"
