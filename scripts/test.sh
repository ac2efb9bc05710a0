#!/usr/bin/env bash
# The project's test command: set up the host (idempotent; test and lint tools included), make sure
# the local base image exists, then run the whole suite with the virtual environment's Python —
# real dockerd, real containers, real LoadGen included. Arguments go to pytest.
#
#   ./scripts/test.sh --fast [ARGS]   the fast tier only: pure logic, parsers, the CLI through
#                                     Typer's runner, fakes; no Docker, LoadGen, subprocess,
#                                     browser, compiler, type checker or network (under a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/python-env.sh
source scripts/python-env.sh

FAST_TIER="not (engine or loadgen or network or browser or static or subprocess or heavy or slurm)"
if [[ "${1:-}" == "--fast" ]]; then
    shift
    [[ -x "$(mlorch_venv)/bin/python" ]] || ./scripts/setup-host.sh --dev --skip-engine
    export MLORCH_FAST_TIER=1
    exec "$(mlorch_venv)/bin/python" -m pytest -q -m "$FAST_TIER" tests/unit "$@"
fi

BOOTSTRAP_TIMEOUT_S=1800

./scripts/setup-host.sh --dev
# Builds the base when it is missing or holds another package set (quick when it is current).
timeout "$BOOTSTRAP_TIMEOUT_S" bash docker/bootstrap-base-image.sh mlorch/base:bookworm || {
    echo "test: bootstrapping mlorch/base:bookworm failed or took over ${BOOTSTRAP_TIMEOUT_S}s" >&2
    exit 1
}
export MLORCH_REQUIRE_ENGINE="${MLORCH_REQUIRE_ENGINE:-1}"
# The slowest tests are listed at the end: where the suite's time goes, run by run.
exec "$(mlorch_venv)/bin/python" -m pytest --durations=25 "$@"
