#!/usr/bin/env bash
# The GPU smoke (tests/gpu/smoke.py), for a session lent a GPU machine. That machine has Python
# 3.12 with PyTorch, CuPy, cuda-bindings, nvidia-ml-py and pytest, but no network and no
# mlcommons-loadgen or pydantic: those travel as wheels.
#
#   ./scripts/gpu-smoke.sh --prepare   here: download the wheels into .gpu-wheels/ (ignored by
#                                      git; carry it to the GPU machine)
#   ./scripts/gpu-smoke.sh             there: install them beside the tree and run the smoke
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.gpu-wheels
PYTHON_VERSION=${GPU_SMOKE_PYTHON:-3.12}
# The packages the smoke imports that the GPU machine lacks (versions as pyproject resolves them).
PACKAGES=(mlcommons-loadgen==6.0.17 pydantic pydantic-core annotated-types typing-inspection)

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p "$WHEELS"
    pydantic=$(.venv/bin/python -c "import pydantic; print(pydantic.VERSION)")
    core=$(.venv/bin/python -c "import pydantic_core; print(pydantic_core.__version__)")
    .venv/bin/python -m pip download --quiet --no-deps --dest "$WHEELS" \
        --only-binary=:all: --python-version "$PYTHON_VERSION" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 \
        mlcommons-loadgen==6.0.17 "pydantic==$pydantic" "pydantic-core==$core" \
        annotated-types typing-inspection
    # LoadGen's sources: the smoke compiles the native issue path there if it has g++.
    .venv/bin/python -m pip download --quiet --no-deps --no-binary mlcommons-loadgen \
        --dest "$WHEELS" mlcommons-loadgen==6.0.17
    du -sh "$WHEELS"
    exit 0
fi

SITE=/tmp/mlorch-gpu-site
if [ -d "$WHEELS" ]; then
    python3 -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" \
        --target "$SITE" --upgrade "${PACKAGES[@]%%==*}" || echo "gpu-smoke: wheel install failed (the wheels are for Python $PYTHON_VERSION)"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The native LoadGen issue path, when this machine can compile it (tests/gpu runs both paths).
NATIVE=/tmp/mlorch-native
if python3 backends/common/native/build.py --sdist "$WHEELS" --out "$NATIVE" \
        --expect-version 6.0.17 >/tmp/mlorch-native.log 2>&1; then
    export MLORCH_NATIVE_LOADGEN="$NATIVE"
fi
tail -n 1 /tmp/mlorch-native.log || true
exec timeout 480 python3 -m tests.gpu.smoke
