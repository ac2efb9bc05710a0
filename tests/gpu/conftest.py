"""GPU tests: they need an NVIDIA GPU with a driver, cuda-bindings and CuPy (cupy-cuda13x).

Everything here is skipped on machines without them (the development host has none); run them
on a GPU machine with `python -m pytest tests/gpu`.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gpu_index() -> int:
    """Device 0, or a skip when CuPy, cuda-bindings or a usable GPU is missing."""
    pytest.importorskip("cupy")
    pytest.importorskip("cuda.bindings.runtime")
    from backends.dell_trt import cuda_rt

    try:
        count = cuda_rt.device_count()
    except cuda_rt.CudaError as error:
        pytest.skip(f"no usable CUDA device: {error}")
    if count < 1:
        pytest.skip("no CUDA device")
    return 0
