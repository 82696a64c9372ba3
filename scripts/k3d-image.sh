#!/usr/bin/env bash
# Builds the fleet-rs image (the `fleet` binary: `fleet controller`, `fleet agent`, `fleet apply`)
# and imports it into every k3d cluster of the test bed.
set -euo pipefail
source "$(dirname "$0")/k3d-lib.sh"
require_k3d_tools

docker build -t "$IMAGE" -f - "$ROOT" <<'DOCKERFILE'
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fleet-cli --bin fleet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/fleet /usr/bin/fleet
USER 1000
ENTRYPOINT ["/usr/bin/fleet"]
DOCKERFILE

clusters=("$UPSTREAM")
for i in $(seq 1 "$CLUSTERS"); do clusters+=("$(downstream_name "$i")"); done
for c in "${clusters[@]}"; do
  if k3d cluster get "$c" >/dev/null 2>&1; then k3d image import "$IMAGE" -c "$c"; fi
done
