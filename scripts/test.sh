#!/usr/bin/env bash
# The project's test command: set up the host (idempotent), make sure the local base image exists,
# then run the whole suite — real dockerd, real containers, real LoadGen included.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-host.sh
if ! docker image inspect mlorch/base:bookworm >/dev/null 2>&1; then
    bash docker/bootstrap-base-image.sh mlorch/base:bookworm
fi
export MLORCH_REQUIRE_ENGINE="${MLORCH_REQUIRE_ENGINE:-1}"
exec python3 -m pytest "$@"
