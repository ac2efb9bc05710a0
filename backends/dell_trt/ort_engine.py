"""The CPU twin engine: the U8S8 Q/DQ model on onnxruntime's CPU provider, as harness slots.

Each slot owns an int8 input buffer and an int32 output buffer for `capacity` samples and one
worker thread. `submit` gathers the batch from the INT8 sample store into the input buffer (in
the caller's thread) and wakes the worker; the worker runs the session (onnxruntime releases the
GIL) and signals; `wait` blocks on that signal and returns a view of the labels.

Measured on the 2-core AVX2 test host (benchmarks/twin_engine.py): one single-threaded session
per core ("1 slot per core") does the most samples per CPU-second, ~7 % more than one slot whose
session spreads a batch over both cores (intra-op synchronisation); batch 32 to 128 and spinning
make no measurable difference; graph optimization must be "all" (at "extended" the int8
convolutions run at FP32 speed). The single multi-threaded slot has the lower latency per batch.

CPUs without an int8 dot-product instruction (VNNI) run u8s8 convolutions with 16-bit pairwise
sums that can saturate; `exact_int8` (onnxruntime's `session.x64quantprecision`) trades speed for
exact sums there, and `facts` records which kind of CPU ran the twin.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends.common.dataset import Int8Samples
from backends.common.loadgen_driver import STOP_TIMEOUT_S
from contract.resnet50 import SAMPLE_SHAPE

DEFAULT_CAPACITY = 32
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class EngineFailed(RuntimeError):
    """Inference failed inside a slot's worker."""


def int8_dot_product() -> str:
    """The CPU's int8 dot-product support as onnxruntime's x86 kernels use it."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "vnni (exact u8s8 sums)"
    if "avx2" in flags:
        return "avx2 without vnni (u8s8 pairwise sums saturate at 16 bits)"
    return "no avx2"


def session_options(
    threads: int,
    spinning: bool = True,
    optimization: str = "all",
    int8_qdq: bool = False,
    exact_int8: bool = False,
) -> Any:
    """onnxruntime CPU session options for one twin session."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # "0" lets x86 rewrite int8 activations to uint8 (its fast path); U8S8 is uint8 already.
    options.add_session_config_entry("session.qdqisint8allowed", "1" if int8_qdq else "0")
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


class OrtCpuSlot:
    """One worker thread with its own input/output buffers (the harness Slot contract)."""

    def __init__(self, session: Any, store: Int8Samples, capacity: int, name: str) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(int8)":
            raise ValueError(f"the twin model must take one int8 input, got {inputs}")
        if len(outputs) != 1 or outputs[0].type != "tensor(int32)":
            raise ValueError(f"the twin model must answer int32 labels, got {outputs}")
        self.capacity = capacity
        self._session = session
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self._store = store
        self._input = np.zeros((capacity, *SAMPLE_SHAPE), np.int8)
        self._output = np.zeros(capacity, np.int32)
        self._count = 0
        self._error: BaseException | None = None
        self._closing = False
        self._start = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, indices: Sequence[int]) -> None:
        count = len(indices)
        if not 0 < count <= self.capacity:
            raise ValueError(f"batch of {count} for a slot of capacity {self.capacity}")
        if not self._done.is_set():
            raise RuntimeError("submit before the previous batch was waited for")
        store = self._store
        # rows() validated the indices, so "clip" is a no-op that spares np.take its buffering.
        np.take(store.array, store.rows(indices), axis=0, out=self._input[:count], mode="clip")
        self._count = count
        self._error = None
        self._done.clear()
        self._start.set()

    def wait(self) -> np.ndarray:
        self._done.wait()
        if self._error is not None:
            raise EngineFailed(f"{self._thread.name}: {self._error}") from self._error
        return self._output[: self._count]

    def run_direct(self, batch: np.ndarray) -> np.ndarray:
        """Run one int8 batch in the caller's thread (warm-up, guard)."""
        return np.asarray(self._session.run([self._output_name], {self._input_name: batch})[0])

    def _work(self) -> None:
        while True:
            self._start.wait()
            self._start.clear()
            if self._closing:
                return
            try:
                count = self._count
                labels = self._session.run(
                    [self._output_name], {self._input_name: self._input[:count]}
                )[0]
                self._output[:count] = labels
            except BaseException as error:  # handed to wait(), which raises it in the harness
                self._error = error
            finally:
                self._done.set()

    def close(self) -> None:
        self._done.wait(STOP_TIMEOUT_S)
        self._closing = True
        self._start.set()
        self._thread.join(STOP_TIMEOUT_S)


class OrtCpuDevice:
    """The CPU twin as an InferenceDevice: `slots` workers over one or `slots` sessions.

    `slots=0` means one per core; `threads_per_slot=0` shares the cores among the slots.
    """

    def __init__(
        self,
        model_path: Path,
        store: Int8Samples,
        slots: int = 0,
        threads_per_slot: int = 0,
        capacity: int = DEFAULT_CAPACITY,
        *,
        shared_session: bool = False,
        spinning: bool = True,
        optimization: str = "all",
        int8_qdq: bool = False,
        exact_int8: bool = False,
    ) -> None:
        import onnxruntime as ort

        cores = os.cpu_count() or 1
        slots = slots or cores  # 0: one slot per core
        if slots < 1 or capacity < 1:
            raise ValueError("slots and capacity must be at least 1")
        threads = threads_per_slot or max(1, cores // slots)
        options = session_options(threads, spinning, optimization, int8_qdq, exact_int8)

        def new_session() -> Any:
            return ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )

        shared = new_session() if shared_session else None
        self.name = "cpu"
        self.slots = [
            OrtCpuSlot(shared or new_session(), store, capacity, f"twin-slot-{index}")
            for index in range(slots)
        ]
        self.facts = {
            "onnxruntime": ort.__version__,
            "model": model_path.name,
            "slots": slots,
            "threads_per_slot": threads,
            "capacity": capacity,
            "shared_session": shared_session,
            "spinning": spinning,
            "optimization": optimization,
            "qdqisint8allowed": int8_qdq,
            "exact_int8": exact_int8,
            "cpu_int8_dot_product": int8_dot_product(),
        }

    def warm_up(self, batch_sizes: Sequence[int] = ()) -> None:
        """Run every slot once per batch size (default: 1 and capacity) before timing starts."""
        for slot in self.slots:
            for size in batch_sizes or (1, slot.capacity):
                slot.run_direct(np.zeros((size, *SAMPLE_SHAPE), np.int8))

    def close(self) -> None:
        for slot in self.slots:
            slot.close()
