"""cuda_rt.py against the REAL cuda-bindings wheel of the GPU image (13.2.0).

Two checks, no GPU needed: every `cudart.X` (and member of an annotated cudart object) that
cuda_rt.py uses exists with a fitting signature; and every wrapper, run against the real module
on this GPU-less machine, reaches the CUDA call it names (arguments accepted by the binding) and
turns the driver's refusal into a `CudaError` naming that call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.api_surface import Api, check_source
from tests.support.paths import REPO
from tests.support.real_wheels import Prepared, WheelUnavailable, cuda_bindings, prepare


def pinned_cuda_bindings() -> str:
    """The cuda-bindings version the GPU image pins (the catalog's requirement where it has one)."""
    from orchestrator.images import catalog

    requirement = getattr(catalog, "CUDA_BINDINGS", "cuda-bindings==13.2.0")
    return str(requirement).split("==", 1)[1]


CUDA_BINDINGS_VERSION = pinned_cuda_bindings()
CUDA_PATHFINDER_VERSION = "1.9.0"  # cuda-bindings 13.x imports it (requires ~=1.1)
CUDA_RT = REPO / "backends" / "dell_trt" / "cuda_rt.py"
MODULES = {"cuda.bindings.runtime"}
HEADER = "from cuda.bindings import runtime as cudart\n\n"


@pytest.fixture(scope="module")
def cuda_wheel(test_cache: Path) -> Prepared:
    try:
        return prepare(cuda_bindings(CUDA_BINDINGS_VERSION, CUDA_PATHFINDER_VERSION), test_cache)
    except WheelUnavailable as error:
        pytest.skip(f"cuda-bindings {CUDA_BINDINGS_VERSION} unavailable: {error}")


@pytest.fixture(scope="module")
def cudart_api(cuda_wheel: Prepared) -> Api:
    return Api(cuda_wheel.api())


def test_cuda_rt_uses_only_api_that_exists(cudart_api: Api) -> None:
    assert cudart_api.version == CUDA_BINDINGS_VERSION
    report = check_source(CUDA_RT.read_text(), cudart_api, MODULES)
    assert not report.findings, "\n".join(map(str, report.findings))
    assert not report.missing_optional
    checked = report.names()
    for expected in (
        "cudaStreamCreateWithFlags",
        "cudaStreamNonBlocking",
        "cudaEventCreateWithFlags",
        "cudaEventBlockingSync",
        "cudaStreamWaitEvent",
        "cudaHostAlloc",
        "cudaMemcpyAsync",
        "cudaMemcpyKind.cudaMemcpyDeviceToDevice",
        "cudaMemcpyBatchAsync",
        "cudaMemcpyAttributes.srcAccessOrder",
        "cudaMemcpyAttributes.flags",
        "cudaMemcpyFlags.cudaMemcpyFlagPreferOverlapWithCompute",
        "cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal",
        "cudaGraphInstantiate",
        "cudaGraphLaunch",
        "cudaDeviceProp.multiProcessorCount",
        "cudaDeviceProp.totalGlobalMem",
        "cudaError_t.cudaErrorNotReady",
    ):
        assert expected in checked, f"{expected} was not seen in cuda_rt.py"


def test_cuda_rt_fits_the_cuda12_stacks_bindings(test_cache: Path) -> None:
    """The CUDA 12 stack (older drivers) pins cuda-bindings 12.9.x: the same calls must exist."""
    from orchestrator.images.catalog import CUDA12_STACK

    version = CUDA12_STACK.pins["cuda-bindings"].split("==", 1)[1]
    try:
        wheel = prepare(cuda_bindings(version, CUDA_PATHFINDER_VERSION), test_cache)
    except WheelUnavailable as error:
        pytest.skip(f"cuda-bindings {version} unavailable: {error}")
    api = Api(wheel.api())
    assert api.version == version
    report = check_source(CUDA_RT.read_text(), api, MODULES)
    assert not report.findings, "\n".join(map(str, report.findings))
    assert not report.missing_optional  # batch copies (12.8+) and their overlap flag included


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("ptr = cudart.cudaMallocc(16)\n", r"cudaMallocc does not exist"),
        (
            "cudart.cudaMemcpyAsync(1, 2, 16, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)\n",
            r"cudaMemcpyAsync called with 4 positional arguments",
        ),
        (
            "def sms(props: cudart.cudaDeviceProp) -> int:\n    return props.multiprocessorCount\n",
            r"cudaDeviceProp\.multiprocessorCount does not exist",
        ),
        (
            "mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadlocal\n",
            r"cudaStreamCaptureModeThreadlocal does not exist",
        ),
        (
            "cudart.cudaStreamWaitEvent(1, 2)\n",
            r"cudaStreamWaitEvent called with 2 positional arguments",
        ),
        (
            "flag = cudart.cudaMemcpyFlags.cudaMemcpyFlagPreferOverlapWithComputing\n",
            r"cudaMemcpyFlagPreferOverlapWithComputing does not exist",
        ),
    ],
)
def test_the_check_catches(cudart_api: Api, snippet: str, message: str) -> None:
    findings = [str(f) for f in check_source(HEADER + snippet, cudart_api, MODULES).findings]
    assert any(re.search(message, f) for f in findings), findings


DRY_RUN = r"""
import ctypes, json
import numpy as np
from backends.dell_trt import cuda_rt as rt

try:
    rt.device_count()
except rt.CudaError:
    pass
else:
    print(json.dumps({"gpu": True}))
    raise SystemExit(0)

S, E, P = 0x3000, 0x1000, 0x2000  # never dereferenced: the driver refuses before
calls = {
    "cudaSetDevice": lambda: rt.set_device(0),
    "cudaGetDevice": lambda: rt.current_device(),
    "cudaGetDeviceProperties": lambda: rt.device_info(0),
    "cudaMemGetInfo": lambda: rt.memory_info(),
    "cudaStreamCreateWithFlags": lambda: rt.Stream(),
    "cudaStreamSynchronize": lambda: rt.stream_synchronize(S),
    "cudaStreamWaitEvent": lambda: rt.stream_wait_event(S, E),
    "cudaStreamDestroy": lambda: rt.stream_destroy(S),
    "cudaEventCreateWithFlags": lambda: rt.Event(blocking_sync=True),
    "cudaEventRecord": lambda: rt.event_record(E, S),
    "cudaEventSynchronize": lambda: rt.event_synchronize(E),
    "cudaEventQuery": lambda: rt.event_query(E),
    "cudaEventDestroy": lambda: rt.event_destroy(E),
    "cudaHostAlloc": lambda: rt.PinnedHostBuffer(1024),
    "cudaFreeHost": lambda: rt.host_free(P),
    "cudaMalloc": lambda: rt.DeviceBuffer(1024),
    "cudaFree": lambda: rt.device_free(P),
    "cudaMemsetAsync": lambda: rt.memset_async(P, 0, 16, S),
    "cudaMemcpyAsync": lambda: rt.copy_htod_async(P, P + 64, 16, S),
    "cudaMemcpyBatchAsync": lambda: rt.copy_batch_async([P, P + 16], [P + 64, P + 80], [16, 16], S),
    "cudaStreamBeginCapture": lambda: rt.capture_graph(S, lambda: None),
    "cudaStreamEndCapture": lambda: rt.capture_end(S),
    "cudaGraphInstantiate": lambda: rt.graph_instantiate(P),
    "cudaGraphLaunch": lambda: rt.graph_launch(P, S),
    "cudaGraphDestroy": lambda: rt.graph_destroy(P),
    "cudaGraphExecDestroy": lambda: rt.graph_exec_destroy(P),
}
results = {}
for name, call in calls.items():
    try:
        call()
        results[name] = "no error"
    except rt.CudaError as error:
        results[name] = [error.call, error.name, str(error)]
    except Exception as error:
        results[name] = repr(error)

memory = ctypes.create_string_buffer(64)
view = rt.host_array(ctypes.addressof(memory), 64, np.int32, (2, 4))
view[:] = np.arange(8, dtype=np.int32).reshape(2, 4)
print(json.dumps({
    "gpu": False,
    "results": results,
    "driver": rt.driver_version(),
    "runtime": rt.version_text(rt.runtime_version()),
    "host_array": memory.raw[:32] == np.arange(8, dtype=np.int32).tobytes(),
    "batch_copy": rt.has_batch_copy(),
    "batch_copy_attributes": [
        (int(a.srcAccessOrder), int(a.flags)) for a in rt._stream_ordered()
    ],
    "expected_attributes": [
        int(rt.cudart.cudaMemcpySrcAccessOrder.cudaMemcpySrcAccessOrderStream),
        int(rt.cudart.cudaMemcpyFlags.cudaMemcpyFlagPreferOverlapWithCompute),
    ],
}))
"""


@pytest.mark.subprocess
def test_every_wrapper_reaches_its_call_and_raises_cuda_error(cuda_wheel: Prepared) -> None:
    result = cuda_wheel.run(DRY_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    if out["gpu"]:
        pytest.skip("a CUDA driver is present: the dry run would call it with bogus handles")
    refused = ("cudaErrorInsufficientDriver", "cudaErrorNoDevice")
    for name, outcome in out["results"].items():
        assert isinstance(outcome, list), f"{name}: {outcome}"
        call, error_name, message = outcome
        assert call == name
        assert error_name in refused
        assert message.startswith(f"{name} failed: {error_name}")
    assert out["driver"] == 0
    assert out["runtime"] == ".".join(CUDA_BINDINGS_VERSION.split(".")[:2])
    assert out["host_array"] is True
    assert out["batch_copy"] is True
    # One attribute set for all copies: stream-ordered sources, overlap with compute preferred.
    assert out["batch_copy_attributes"] == [out["expected_attributes"]]
    assert out["expected_attributes"][1] != 0  # not cudaMemcpyFlagDefault


GPU_DEVICE_WITHOUT_GPU = r"""
import json
import numpy as np
from backends.dell_trt import cuda_rt
from backends.dell_trt.gpu_device import GpuDevice, GpuDeviceConfig

class Runner:
    contexts, max_batch, closed = 2, 8, 0
    def prepare_shape(self, context, batch, stream): pass
    def enqueue(self, context, batch, d_input, d_output, stream): pass
    def close(self): Runner.closed += 1

class Store:
    array = np.zeros((4, 3, 224, 224), np.int8)
    def rows(self, indices): return np.asarray(indices, np.int64)

try:
    GpuDevice(Runner(), Store(), GpuDeviceConfig(batch_size=8, copy_streams=2))
    outcome = "constructed"
except cuda_rt.CudaError as error:
    outcome = error.call
print(json.dumps({"outcome": outcome, "runner_closed": Runner.closed}))
"""


@pytest.mark.subprocess
def test_gpu_device_without_a_gpu_fails_cleanly_and_closes_the_runner(
    cuda_wheel: Prepared,
) -> None:
    result = cuda_wheel.run(GPU_DEVICE_WITHOUT_GPU)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"outcome": "cudaSetDevice", "runner_closed": 1}
