#!/usr/bin/env bash
# Shared settings of the k3d test bed (sourced by scripts/k3d-*.sh and scripts/test-e2e).
#
#   FLEET_E2E_CLUSTERS   downstream clusters (default 3): k3d clusters fleet-rs-ds-N, registered
#                        upstream as Clusters sim-1 … sim-N (the names the features use)
#   FLEET_E2E_STATE_DIR  kubeconfigs, served git repositories and charts (default target/k3d)
#   FLEET_E2E_IMAGE      the fleet-rs image to build and import (default fleet-rs:e2e)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTERS=${FLEET_E2E_CLUSTERS:-3}
STATE=${FLEET_E2E_STATE_DIR:-$ROOT/target/k3d}
IMAGE=${FLEET_E2E_IMAGE:-fleet-rs:e2e}
NETWORK=fleet-rs-e2e
UPSTREAM=fleet-rs-upstream
GIT_CONTAINER=fleet-rs-git
CHARTS_CONTAINER=fleet-rs-charts

die() { echo "error: $*" >&2; exit 2; }

# Fails fast, saying what is missing, when Docker, k3d or kubectl cannot be used.
require_k3d_tools() {
  command -v docker >/dev/null 2>&1 || die "the k3d backend needs Docker, and \`docker\` is not installed (see README: Acceptance features on k3d)"
  docker info >/dev/null 2>&1 || die "the k3d backend needs a running Docker daemon: \`docker info\` failed"
  command -v k3d >/dev/null 2>&1 || die "the k3d backend needs k3d (https://k3d.io), and \`k3d\` is not installed"
  command -v kubectl >/dev/null 2>&1 || die "the k3d backend needs kubectl, and \`kubectl\` is not installed"
}

downstream_name() { echo "fleet-rs-ds-$1"; }
