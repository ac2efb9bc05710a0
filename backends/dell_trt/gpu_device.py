"""The GPU inference device of the LWIS-style harness: one GPU, N copy-stream slots, M inference
streams, optional CUDA graphs, optional device-resident samples. Engine-agnostic: the network runs
through a `Runner` (TensorRT's `trt_engine.TrtRunner`, or a stand-in that launches its own kernels).

One batch on slot s (copy stream C_s, inference stream I_s = I[s mod M]):

    gather the batch's rows from the staged samples into d_input on C_s ─► record h2d_done
    I_s waits h2d_done ─► runner.enqueue(...) or the CUDA graph of the padded batch size
    ─► record infer_done ─► C_s waits infer_done ─► D2H of the int32 labels ─► record d2h_done
    wait(): cudaEventSynchronize(d2h_done) (GIL released) → int32 view of the pinned output

With CUDA graphs, a batch runs the graph of the smallest captured size that holds it (inputs
padded); the default sizes (`default_graph_sizes`) keep that padding within MAX_PADDING (15 %) at
every batch size. `check_batch_sizes` names the batches an engine check should feed: the smallest,
a prime, the first padded one and the full batch.

Slots sharing an inference stream run their inference back to back while their copies overlap.
Each slot owns one execution context (one optimization profile), so two slots never share
context state; the harness waits for a slot before giving it the next batch.

Staging: after every LoadGen load (`GpuDevice.samples_loaded`, outside the timed path) the loaded
INT8 samples are copied once into pinned host memory, as LWIS keeps its sample library, or with
`start_from_device` into device memory. A batch is then gathered by copies straight from the
staged rows into the slot's device input (consecutive rows merged into one copy): host to device
over PCIe, or device to device. No CPU memcpy sits on the timed path: a host-side `np.take`
would run at a few GB/s on the one submitting thread, below what one H100 consumes (~90 k
samples/s × 150 KB). With cuda-bindings' `cudaMemcpyBatchAsync` (CUDA 12.8+) the whole gather
is one call; the per-run fallback costs one Python→CUDA call (a few µs) per run of rows, ~1 ms
of host time for a batch of 256 random rows.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from contract.dell_trt.recipe import LABEL_BYTES
from contract.resnet50 import SAMPLE_ELEMENTS

if TYPE_CHECKING:
    from backends.dell_trt import cuda_rt

SAMPLE_BYTES = SAMPLE_ELEMENTS  # one INT8 sample
# A padded CUDA graph run may do at most this much more work than the batch needs (1.15: 15 %).
MAX_PADDING = 1.15
GATHER_METHODS = ("auto", "batch", "loop")


class Runner(Protocol):
    """Runs the network on device buffers. One execution context per copy-stream slot."""

    contexts: int  # how many independent execution contexts (one optimization profile each)
    max_batch: int

    def prepare_shape(self, context: int, batch: int, stream: int) -> None:
        """Host-side setup for running `batch` samples on `context` (before any graph capture)."""

    def enqueue(self, context: int, batch: int, d_input: int, d_output: int, stream: int) -> None:
        """Enqueue inference of `batch` INT8 samples at `d_input` → int32 labels at `d_output`.

        Only stream work: the call must be capturable into a CUDA graph once the same batch size
        ran un-captured after `prepare_shape`.
        """

    def close(self) -> None: ...


class SampleStore(Protocol):
    """The in-memory INT8 samples LoadGen loaded (`backends.common.dataset.Int8Samples`)."""

    @property
    def array(self) -> np.ndarray: ...  # (n_loaded, 3, 224, 224) int8, C-contiguous

    def rows(self, indices: Sequence[int]) -> np.ndarray: ...  # QSL indices → rows of `array`


@dataclass(frozen=True)
class GpuDeviceConfig:
    device: int = 0
    batch_size: int = 1  # slot capacity; also the engine profiles' max batch
    copy_streams: int = 1
    inference_streams: int = 1
    use_graphs: bool = False
    # None → default_graph_sizes(batch_size): padding ≤ MAX_PADDING at any batch size
    graph_sizes: tuple[int, ...] | None = None
    start_from_device: bool = False  # stage the samples in device memory, not pinned host memory
    gather: str = "auto"  # one cudaMemcpyBatchAsync per batch, or one copy per run of rows
    blocking_sync: bool = False  # wait() sleeps on the event instead of spinning a core

    def __post_init__(self) -> None:
        for name in ("batch_size", "copy_streams", "inference_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.inference_streams > self.copy_streams:
            raise ValueError(
                f"inference_streams ({self.inference_streams}) > copy_streams "
                f"({self.copy_streams}): the extra inference streams would never be used"
            )
        if self.gather not in GATHER_METHODS:
            raise ValueError(f"gather must be one of {', '.join(GATHER_METHODS)}")
        if self.graph_sizes is not None:
            sizes = self.graph_sizes
            if not sizes or any(not 1 <= size <= self.batch_size for size in sizes):
                raise ValueError(f"graph_sizes must lie in 1..{self.batch_size}, got {sizes}")

    def captured_sizes(self) -> tuple[int, ...]:
        if not self.use_graphs:
            return ()
        if self.graph_sizes is not None:  # the full batch always: warmed up, never eager
            return tuple(sorted({*self.graph_sizes, self.batch_size}))
        return default_graph_sizes(self.batch_size)


# --- plain logic (tested without a GPU) ---------------------------------------------------------


def default_graph_sizes(capacity: int, max_padding: float = MAX_PADDING) -> tuple[int, ...]:
    """The fewest graph sizes 1 = s_0 < s_1 < … < capacity such that any batch n ≤ capacity runs
    in a graph of at most `max_padding` × n samples.

    A batch n in (s_{i-1}, s_i] runs as s_i, the worst case being n = s_{i-1} + 1, so each next
    size is the largest one that keeps that case within bounds:
    s_i = min(capacity, ⌊max_padding · (s_{i-1} + 1)⌋). That is every size while padding by one
    sample would cost more (1…6 at 15 %), then sizes about `max_padding` apart, then the capacity
    itself: 44 graphs for 2048, where powers of two would run a batch of 129 as 256 (2×).
    Computed in exact arithmetic on the decimal written (1.15 is 23/20), so the bound holds for
    every n.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if max_padding < 1:
        raise ValueError(f"max_padding must be at least 1, got {max_padding}")
    factor = Fraction(repr(max_padding))  # 1.15 → 23/20 exactly
    sizes = [1]
    while sizes[-1] < capacity:
        smallest = sizes[-1] + 1  # the smallest batch the next graph must hold
        sizes.append(min(capacity, max(smallest, math.floor(factor * smallest))))
    return tuple(sizes)


def graph_size_for(batch: int, sizes: Sequence[int]) -> int | None:
    """The smallest captured size ≥ `batch` (inputs padded, extra outputs ignored), or None."""
    at = bisect.bisect_left(sizes, batch)
    return sizes[at] if at < len(sizes) else None


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def check_batch_sizes(capacity: int, graph_sizes: Sequence[int]) -> tuple[int, ...]:
    """The batch sizes an engine check feeds through a slot of `capacity` whose CUDA graphs have
    `graph_sizes` (empty: no graphs), sorted and distinct, each in 1..capacity:

    - 1, the smallest batch;
    - a prime p, the largest prime ≤ capacity that is not itself a graph size (so it runs padded,
      and no kernel tuned for a power-of-two batch hides an odd-batch bug), or the largest prime
      ≤ capacity when every prime is captured;
    - one past a graph boundary: s + 1 for the smallest captured size s whose successor is not
      captured (the first padded graph run), when there is one;
    - the capacity, the full batch.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    captured = sorted({size for size in graph_sizes if 1 <= size <= capacity})
    in_use = set(captured)
    chosen = {1, capacity}
    primes = (n for n in range(capacity, 1, -1) if _is_prime(n))  # descending
    largest = next(primes, None)
    if largest is not None:
        padded = (
            largest
            if largest not in in_use
            else next((p for p in primes if p not in in_use), largest)
        )
        chosen.add(padded)
    boundary = next((size + 1 for size in captured if size + 1 not in in_use), capacity + 1)
    if boundary <= capacity:
        chosen.add(boundary)
    return tuple(sorted(chosen))


def inference_stream_for(slot: int, inference_streams: int) -> int:
    """Slots take the inference streams round-robin: slot s uses stream s mod M."""
    return slot % inference_streams


def row_runs(rows: Sequence[int] | np.ndarray) -> list[tuple[int, int, int]]:
    """(destination row, source row, count) for each run of consecutive source rows."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    source = np.asarray(rows, dtype=np.int64)
    n = len(source)
    if n == 0:
        return runs
    breaks = np.flatnonzero(np.diff(source) != 1) + 1
    for end in [*breaks.tolist(), n]:
        runs.append((start, int(source[start]), end - start))
        start = end
    return runs


def gather_copies(
    rows: Sequence[int] | np.ndarray, dst: int, src: int, row_bytes: int
) -> tuple[list[int], list[int], list[int]]:
    """Device addresses (dsts, srcs, sizes) that gather `rows` of `src` into `dst` in order."""
    dsts, srcs, sizes = [], [], []
    for to, start, count in row_runs(rows):
        dsts.append(dst + to * row_bytes)
        srcs.append(src + start * row_bytes)
        sizes.append(count * row_bytes)
    return dsts, srcs, sizes


# --- the device ----------------------------------------------------------------------------------

_thread_device = threading.local()


def bind_thread(rt: Any, device: int, *, force: bool = False) -> None:
    """The CUDA runtime's current device is per thread: set it once on every calling thread
    (`force`: whatever this thread's record says, e.g. before teardown). Every switch of the
    current device goes through here, so the record stays true."""
    if force or getattr(_thread_device, "index", None) != device:
        rt.set_device(device)
        _thread_device.index = device


class GpuSlot:
    """One copy stream: pinned + device buffers for `capacity` samples, three events, one
    execution context and (with graphs) one executable graph per captured batch size."""

    def __init__(
        self,
        owner: GpuDevice,
        index: int,
        infer_stream: cuda_rt.Stream,
        stack: ExitStack,
    ) -> None:
        rt = owner.rt
        config = owner.config
        self.capacity = config.batch_size
        self.index = index
        self.context = index
        self._owner = owner
        self._infer_stream = infer_stream
        self.copy_stream = stack.enter_context(rt.Stream())
        host_out = stack.enter_context(rt.PinnedHostBuffer(self.capacity * LABEL_BYTES))
        self._host_out_ptr = host_out.handle
        self._host_out = host_out.array(np.int32, (self.capacity,))
        self.d_input = stack.enter_context(rt.DeviceBuffer(self.capacity * SAMPLE_BYTES)).handle
        self.d_output = stack.enter_context(rt.DeviceBuffer(self.capacity * LABEL_BYTES)).handle
        # Padded graph runs read rows past the batch: make them defined (zeros) once.
        rt.memset_async(self.d_input, 0, self.capacity * SAMPLE_BYTES, self.copy_stream.handle)
        self._h2d_done = stack.enter_context(rt.Event())
        self._infer_done = stack.enter_context(rt.Event())
        self._d2h_done = stack.enter_context(rt.Event(blocking_sync=config.blocking_sync))
        self._graph_sizes: tuple[int, ...] = ()
        self._graphs: dict[int, cuda_rt.GraphExec] = {}
        self._pending = 0
        self._error: BaseException | None = None

    # Warm-up ---------------------------------------------------------------------------------

    def warm_up(self, sizes: Sequence[int], capture: bool, stack: ExitStack) -> None:
        """Run every size once un-captured (TensorRT needs that after a shape change), then,
        with `capture`, record one graph per size."""
        runner = self._owner.runner
        stream = self._infer_stream
        self.copy_stream.synchronize()
        for size in sizes:
            runner.prepare_shape(self.context, size, stream.handle)
            runner.enqueue(self.context, size, self.d_input, self.d_output, stream.handle)
            stream.synchronize()
            if capture:
                graph = self._owner.rt.GraphExec(
                    stream,
                    lambda size=size: runner.enqueue(
                        self.context, size, self.d_input, self.d_output, stream.handle
                    ),
                )
                self._graphs[size] = stack.enter_context(graph)
        if capture:
            self._graph_sizes = tuple(sorted(self._graphs))
            # Launch every graph once, so that a bad one fails here and not in the timed run.
            for graph in self._graphs.values():
                graph.launch(stream)
            stream.synchronize()

    @property
    def graph_sizes(self) -> tuple[int, ...]:
        return self._graph_sizes

    # The Slot contract -------------------------------------------------------------------------

    def submit(self, indices: Sequence[int]) -> None:
        """Gather the samples at `indices` and enqueue their inference; never blocks on the GPU.

        A failure is kept and raised by the next `wait()`.
        """
        n = len(indices)
        self._pending = n
        self._error = None
        try:
            if not 1 <= n <= self.capacity:
                raise ValueError(f"batch of {n} samples for a slot of capacity {self.capacity}")
            self._enqueue(indices, n)
        except BaseException as error:  # surfaced by wait(), where the harness expects it
            self._error = error
            # Work enqueued before the failure must not race the next submit's gather.
            with contextlib.suppress(self._owner.rt.CudaError):
                self.copy_stream.synchronize()
                self._infer_stream.synchronize()

    def _enqueue(self, indices: Sequence[int], n: int) -> None:
        owner = self._owner
        rt = owner.rt
        bind_thread(rt, owner.config.device)
        copy = self.copy_stream.handle
        owner.gather(owner.store.rows(indices), self.d_input, copy)
        rt.event_record(self._h2d_done.handle, copy)
        infer = self._infer_stream.handle
        rt.stream_wait_event(infer, self._h2d_done.handle)
        size = graph_size_for(n, self._graph_sizes)
        if size is not None:
            rt.graph_launch(self._graphs[size].handle, infer)
        else:
            owner.runner.enqueue(self.context, n, self.d_input, self.d_output, infer)
        rt.event_record(self._infer_done.handle, infer)
        rt.stream_wait_event(copy, self._infer_done.handle)
        rt.copy_dtoh_async(self._host_out_ptr, self.d_output, n * LABEL_BYTES, copy)
        rt.event_record(self._d2h_done.handle, copy)

    def wait(self) -> np.ndarray:
        """Block until the submitted batch is done; its int32 labels (a view, valid until the
        next submit)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._pending == 0:
            raise RuntimeError("wait() without a submitted batch")
        self._d2h_done.synchronize()
        n, self._pending = self._pending, 0
        labels: np.ndarray = self._host_out[:n]
        return labels


class GpuDevice:
    """One GPU as an `InferenceDevice`: `slots` (one per copy stream) over a shared runner."""

    def __init__(self, runner: Runner, store: SampleStore, config: GpuDeviceConfig) -> None:
        """Take ownership of `runner` (closed by `close()`), allocate everything and warm up."""
        from backends.dell_trt import cuda_rt

        self.rt = cuda_rt
        self.runner = runner
        self.store = store
        self.config = config
        self.staged: cuda_rt.DeviceBuffer | cuda_rt.PinnedHostBuffer | None = None
        self.staged_rows = 0
        self._samples_stack = ExitStack()
        self._stack = ExitStack()
        self._stack.callback(runner.close)
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise

    def _open(self) -> None:
        rt, config, runner = self.rt, self.config, self.runner
        if runner.contexts < config.copy_streams:
            raise ValueError(
                f"the engine has {runner.contexts} execution contexts (optimization profiles) "
                f"for {config.copy_streams} copy streams; rebuild it with one profile per stream"
            )
        if runner.max_batch < config.batch_size:
            raise ValueError(
                f"the engine's profiles stop at batch {runner.max_batch} < batch_size "
                f"{config.batch_size}"
            )
        bind_thread(rt, config.device)
        self.info = rt.device_info(config.device)
        self.name = f"gpu{config.device} {self.info.name}"
        self._gather_batched = config.gather == "batch" or (
            config.gather == "auto" and rt.has_batch_copy()
        )
        stack = self._stack
        self._stack.callback(self._samples_stack.close)
        self.inference_streams = [
            stack.enter_context(rt.Stream()) for _ in range(config.inference_streams)
        ]
        self.slots: list[GpuSlot] = [
            GpuSlot(
                self,
                index,
                self.inference_streams[inference_stream_for(index, config.inference_streams)],
                stack,
            )
            for index in range(config.copy_streams)
        ]
        captured = config.captured_sizes()
        sizes = captured or tuple(sorted({1, config.batch_size}))
        for slot in self.slots:
            slot.warm_up(sizes, capture=bool(captured), stack=stack)
        # What ran, for harness.json (open_gpu_device adds the engine's own facts).
        self.facts: dict[str, Any] = {
            "gpu": self.info.name,
            "compute_capability": self.info.sm,
            "cuda_runtime": rt.version_text(rt.runtime_version()),
            "cuda_driver": rt.version_text(rt.driver_version()),
            "batch_size": config.batch_size,
            "copy_streams": config.copy_streams,
            "inference_streams": config.inference_streams,
            "graph_sizes": list(captured),
            "staging": "device memory" if config.start_from_device else "pinned host memory",
            "gather": "cudaMemcpyBatchAsync" if self._gather_batched else "one copy per run",
            "blocking_sync": config.blocking_sync,
        }
        # Last in the stack, so first on close: let in-flight work finish before freeing.
        stack.callback(self._synchronize_quietly)

    def samples_loaded(self) -> None:
        """Call after every LoadGen load and unload: copy the loaded samples into the staging
        buffer the batches are gathered from (pinned host memory, or device memory with
        `start_from_device`), once per load, outside the timed path."""
        rt = self.rt
        bind_thread(rt, self.config.device)
        array = np.ascontiguousarray(self.store.array)
        nbytes = max(array.nbytes, 1)
        self._synchronize_quietly()  # no batch may still read the previous samples
        buffer = self.staged
        if buffer is None or buffer.nbytes < nbytes:
            self._samples_stack.close()
            self.staged = None
            kind = rt.DeviceBuffer if self.config.start_from_device else rt.PinnedHostBuffer
            buffer = self._samples_stack.enter_context(kind(nbytes))
        if isinstance(buffer, rt.PinnedHostBuffer):
            np.copyto(buffer.array(np.int8, array.shape), array)
        else:
            stream = self.slots[0].copy_stream
            rt.copy_htod_async(buffer.handle, array.ctypes.data, array.nbytes, stream.handle)
            stream.synchronize()
        self.staged = buffer
        self.staged_rows = len(array)

    def gather(self, rows: np.ndarray, d_input: int, stream: int) -> None:
        """Enqueue the copies of staged `rows` into `d_input`, in order, on `stream`."""
        if self.staged is None:
            raise RuntimeError("samples_loaded() was not called after the LoadGen load")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.staged_rows):
            raise RuntimeError("samples_loaded() was not called after the last LoadGen load")
        dsts, srcs, sizes = gather_copies(rows, d_input, self.staged.handle, SAMPLE_BYTES)
        if self._gather_batched and len(dsts) > 1:
            self.rt.copy_batch_async(dsts, srcs, sizes, stream)
        elif self.config.start_from_device:
            for dst, src, size in zip(dsts, srcs, sizes, strict=True):
                self.rt.copy_dtod_async(dst, src, size, stream)
        else:
            for dst, src, size in zip(dsts, srcs, sizes, strict=True):
                self.rt.copy_htod_async(dst, src, size, stream)

    def _synchronize_quietly(self) -> None:
        for stream in [*(slot.copy_stream for slot in self.slots), *self.inference_streams]:
            # After a sticky error closing must still release what it can.
            with contextlib.suppress(self.rt.CudaError):
                stream.synchronize()

    def close(self) -> None:
        """Finish in-flight work, then release graphs, events, buffers, streams and the runner,
        with this device current (the caller may have another GPU current: its last one)."""
        bind_thread(self.rt, self.config.device, force=True)
        self._stack.close()
