"""A thin, checked layer over the CUDA runtime of cuda-python (`cuda.bindings.runtime`).

Every cuda-bindings call returns a tuple that starts with a `cudaError_t`; here each call is
checked and a failure raises `CudaError` naming the call and CUDA's own error name and text.
Handles travel as plain ints (`int(stream)` is also what TensorRT's `execute_async_v3` takes), and
every resource has an explicit, idempotent `close()`; nothing is left to garbage collection,
which could run after the CUDA context is gone.

The cuda-bindings wrappers release the GIL around the driver call, so a thread blocked in
`Event.synchronize()` lets the other Python threads run.

Imported only inside the GPU image (it needs cuda-bindings); `gpu_device` imports it lazily.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cuda.bindings import runtime as cudart

_SUCCESS = cudart.cudaError_t.cudaSuccess
_NOT_READY = cudart.cudaError_t.cudaErrorNotReady
_H2D = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
_D2H = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
_D2D = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice


class CudaError(RuntimeError):
    """A CUDA runtime call failed."""

    def __init__(self, call: str, code: int, name: str, text: str) -> None:
        super().__init__(f"{call} failed: {name} ({code}): {text}")
        self.call = call
        self.code = code
        self.name = name


def _error(call: str, err: Any) -> CudaError:
    name_result = cudart.cudaGetErrorName(err)
    text_result = cudart.cudaGetErrorString(err)
    name = _text(name_result[1]) if name_result[0] == _SUCCESS else str(err)
    text = _text(text_result[1]) if text_result[0] == _SUCCESS else "unknown error"
    return CudaError(call, int(err), name, text)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _ok(call: str, result: tuple[Any, ...]) -> Any:
    """The value(s) after the error code of a cuda-bindings result; raise on an error code."""
    if result[0] != _SUCCESS:
        raise _error(call, result[0])
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else result[1:]


# --- device -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    multiprocessors: int
    total_memory: int  # bytes

    @property
    def sm(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def device_count() -> int:
    return int(_ok("cudaGetDeviceCount", cudart.cudaGetDeviceCount()))


def set_device(device: int) -> None:
    """Make `device` current for the calling thread (the runtime's current device is per thread)."""
    _ok("cudaSetDevice", cudart.cudaSetDevice(device))


def current_device() -> int:
    return int(_ok("cudaGetDevice", cudart.cudaGetDevice()))


def device_info(device: int) -> DeviceInfo:
    props: cudart.cudaDeviceProp = _ok(
        "cudaGetDeviceProperties", cudart.cudaGetDeviceProperties(device)
    )
    return DeviceInfo(
        index=device,
        name=_text(props.name).rstrip("\x00").strip(),
        compute_capability=(int(props.major), int(props.minor)),
        multiprocessors=int(props.multiProcessorCount),
        total_memory=int(props.totalGlobalMem),
    )


def memory_info() -> tuple[int, int]:
    """(free, total) bytes of the current device."""
    free, total = _ok("cudaMemGetInfo", cudart.cudaMemGetInfo())
    return int(free), int(total)


def driver_version() -> int:
    """The CUDA version the driver supports, e.g. 13020 for 13.2 (0 when no driver is loaded)."""
    return int(_ok("cudaDriverGetVersion", cudart.cudaDriverGetVersion()))


def runtime_version() -> int:
    return int(_ok("cudaRuntimeGetVersion", cudart.cudaRuntimeGetVersion()))


def version_text(version: int) -> str:
    """13020 → '13.2'."""
    return f"{version // 1000}.{version % 1000 // 10}"


# --- raw calls on int handles (the classes below own the handles) -----------------------------


def stream_create(non_blocking: bool = True) -> int:
    flags = cudart.cudaStreamNonBlocking if non_blocking else cudart.cudaStreamDefault
    return int(_ok("cudaStreamCreateWithFlags", cudart.cudaStreamCreateWithFlags(flags)))


def stream_destroy(stream: int) -> None:
    _ok("cudaStreamDestroy", cudart.cudaStreamDestroy(stream))


def stream_synchronize(stream: int) -> None:
    _ok("cudaStreamSynchronize", cudart.cudaStreamSynchronize(stream))


def stream_wait_event(stream: int, event: int) -> None:
    _ok("cudaStreamWaitEvent", cudart.cudaStreamWaitEvent(stream, event, 0))


def event_create(blocking_sync: bool = False) -> int:
    flags = cudart.cudaEventDisableTiming
    if blocking_sync:  # the waiting thread sleeps instead of spinning on a core
        flags |= cudart.cudaEventBlockingSync
    return int(_ok("cudaEventCreateWithFlags", cudart.cudaEventCreateWithFlags(flags)))


def event_destroy(event: int) -> None:
    _ok("cudaEventDestroy", cudart.cudaEventDestroy(event))


def event_record(event: int, stream: int) -> None:
    _ok("cudaEventRecord", cudart.cudaEventRecord(event, stream))


def event_synchronize(event: int) -> None:
    _ok("cudaEventSynchronize", cudart.cudaEventSynchronize(event))


def event_query(event: int) -> bool:
    """True when all work before the event is done, False while it is pending."""
    result = cudart.cudaEventQuery(event)
    if result[0] == _NOT_READY:
        return False
    _ok("cudaEventQuery", result)
    return True


def host_alloc(nbytes: int) -> int:
    """Page-locked host memory (required for truly asynchronous copies)."""
    return int(_ok("cudaHostAlloc", cudart.cudaHostAlloc(nbytes, cudart.cudaHostAllocDefault)))


def host_free(ptr: int) -> None:
    _ok("cudaFreeHost", cudart.cudaFreeHost(ptr))


def device_alloc(nbytes: int) -> int:
    return int(_ok("cudaMalloc", cudart.cudaMalloc(nbytes)))


def device_free(ptr: int) -> None:
    _ok("cudaFree", cudart.cudaFree(ptr))


def memset_async(ptr: int, value: int, nbytes: int, stream: int) -> None:
    _ok("cudaMemsetAsync", cudart.cudaMemsetAsync(ptr, value, nbytes, stream))


def copy_htod_async(dst: int, src: int, nbytes: int, stream: int) -> None:
    _ok("cudaMemcpyAsync", cudart.cudaMemcpyAsync(dst, src, nbytes, _H2D, stream))


def copy_dtoh_async(dst: int, src: int, nbytes: int, stream: int) -> None:
    _ok("cudaMemcpyAsync", cudart.cudaMemcpyAsync(dst, src, nbytes, _D2H, stream))


def copy_dtod_async(dst: int, src: int, nbytes: int, stream: int) -> None:
    _ok("cudaMemcpyAsync", cudart.cudaMemcpyAsync(dst, src, nbytes, _D2D, stream))


def has_batch_copy() -> bool:
    """Whether this cuda-bindings offers cudaMemcpyBatchAsync (CUDA 12.8+)."""
    return hasattr(cudart, "cudaMemcpyBatchAsync")


@functools.cache
def _stream_ordered() -> list[Any]:
    """One attribute set for every copy of a batch: sources read in stream order, and a hint
    that the driver should overlap the copies with compute work on the SMs (the other slots'
    inference runs meanwhile); a hint only, it never changes what is copied."""
    attrs = cudart.cudaMemcpyAttributes()
    attrs.srcAccessOrder = cudart.cudaMemcpySrcAccessOrder.cudaMemcpySrcAccessOrderStream
    attrs.flags = cudart.cudaMemcpyFlags.cudaMemcpyFlagPreferOverlapWithCompute
    return [attrs]


def copy_batch_async(
    dsts: Sequence[int], srcs: Sequence[int], sizes: Sequence[int], stream: int
) -> None:
    """Many independent copies in one call (one Python→C crossing instead of len(dsts)); each
    address may be device memory or pinned host memory (unified addressing).

    The copies run in stream order as a whole but in no order among themselves, so the
    destinations must not overlap.
    """
    count = len(dsts)
    _ok(
        "cudaMemcpyBatchAsync",
        cudart.cudaMemcpyBatchAsync(
            list(dsts), list(srcs), list(sizes), count, _stream_ordered(), [0], 1, stream
        ),
    )


def capture_begin(stream: int) -> None:
    # Thread-local mode: only this thread's unsafe calls (e.g. cudaMalloc) break the capture.
    mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    _ok("cudaStreamBeginCapture", cudart.cudaStreamBeginCapture(stream, mode))


def capture_end(stream: int) -> int:
    return int(_ok("cudaStreamEndCapture", cudart.cudaStreamEndCapture(stream)))


def graph_instantiate(graph: int) -> int:
    return int(_ok("cudaGraphInstantiate", cudart.cudaGraphInstantiate(graph, 0)))


def graph_launch(graph_exec: int, stream: int) -> None:
    _ok("cudaGraphLaunch", cudart.cudaGraphLaunch(graph_exec, stream))


def graph_destroy(graph: int) -> None:
    _ok("cudaGraphDestroy", cudart.cudaGraphDestroy(graph))


def graph_exec_destroy(graph_exec: int) -> None:
    _ok("cudaGraphExecDestroy", cudart.cudaGraphExecDestroy(graph_exec))


def capture_graph(stream: int, record: Callable[[], None]) -> int:
    """Capture the work `record()` enqueues on `stream` into an executable graph (its handle).

    The intermediate graph is destroyed once instantiated; on failure the capture is ended so the
    stream is usable again.
    """
    capture_begin(stream)
    try:
        record()
    except BaseException:
        with contextlib.suppress(CudaError):
            graph_destroy(capture_end(stream))
        raise
    graph = capture_end(stream)
    try:
        return graph_instantiate(graph)
    finally:
        graph_destroy(graph)


# --- owned resources ---------------------------------------------------------------------------


def host_array(ptr: int, nbytes: int, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    """A numpy array over `nbytes` of host memory at `ptr` (no copy, no ownership).

    The array (and views of it) must not be used after the memory is freed.
    """
    raw = (ctypes.c_ubyte * nbytes).from_address(ptr)
    flat: np.ndarray = np.ctypeslib.as_array(raw)
    view: np.ndarray = flat.view(np.dtype(dtype))[: int(np.prod(shape))]
    return view.reshape(tuple(shape))


class _Owned:
    """One CUDA handle with an idempotent `close()`."""

    _handle: int

    def __init__(self, handle: int, release: Callable[[int], None]) -> None:
        self._handle = handle
        self._release: Callable[[int], None] | None = release

    @property
    def handle(self) -> int:
        if self._release is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._handle

    def __int__(self) -> int:
        return self.handle

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(self._handle)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stream(_Owned):
    def __init__(self, non_blocking: bool = True) -> None:
        super().__init__(stream_create(non_blocking), stream_destroy)

    def synchronize(self) -> None:
        stream_synchronize(self.handle)

    def wait(self, event: Event) -> None:
        """Make later work on this stream wait for `event` (no host blocking)."""
        stream_wait_event(self.handle, event.handle)


class Event(_Owned):
    def __init__(self, blocking_sync: bool = False) -> None:
        super().__init__(event_create(blocking_sync), event_destroy)

    def record(self, stream: Stream) -> None:
        event_record(self.handle, stream.handle)

    def synchronize(self) -> None:
        """Block (without the GIL) until the work recorded before the event is done."""
        event_synchronize(self.handle)

    def done(self) -> bool:
        return event_query(self.handle)


class PinnedHostBuffer(_Owned):
    """Page-locked host memory with numpy views over it."""

    def __init__(self, nbytes: int) -> None:
        super().__init__(host_alloc(nbytes), host_free)
        self.nbytes = nbytes

    def array(self, dtype: Any, shape: Sequence[int]) -> np.ndarray:
        count = int(np.prod(shape))
        if count * np.dtype(dtype).itemsize > self.nbytes:
            raise ValueError(f"{shape} of {np.dtype(dtype)} does not fit in {self.nbytes} bytes")
        return host_array(self.handle, self.nbytes, dtype, shape)


class DeviceBuffer(_Owned):
    def __init__(self, nbytes: int) -> None:
        super().__init__(device_alloc(nbytes), device_free)
        self.nbytes = nbytes


class GraphExec(_Owned):
    """An instantiated CUDA graph."""

    def __init__(self, stream: Stream, record: Callable[[], None]) -> None:
        super().__init__(capture_graph(stream.handle, record), graph_exec_destroy)

    def launch(self, stream: Stream) -> None:
        graph_launch(self.handle, stream.handle)
