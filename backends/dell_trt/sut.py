"""LoadGen side of dell-trt: the fast-issue SUT around the LWIS harness, and its responses.

Responses carry the int32 label (0-999), 4 bytes per sample, pointing into the labels array;
LoadGen copies what it logs inside QuerySamplesComplete, so the array only has to live until
that call returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.common.fatal import abort_test
from backends.common.loadgen_driver import STOP_TIMEOUT_S
from backends.dell_trt.harness import ErrorFn, InferenceDevice, LwisHarness
from contract.dell_trt.recipe import LABEL_BYTES

if TYPE_CHECKING:
    from backends.common.native import NativeLoadGen

# Distinct label buffers whose responses are kept: a few per slot is plenty; beyond that the
# labels are temporaries (non-int32 engine output) and caching them would only grow memory.
_MAX_CACHED_BUFFERS = 256


def int32_labels(labels: np.ndarray) -> np.ndarray:
    """The labels as the responses point at them: int32, C-contiguous (a view when they are)."""
    if labels.dtype != np.int32 or not labels.flags.c_contiguous:
        return np.ascontiguousarray(labels, dtype=np.int32)
    return labels


class LabelResponder:
    """Completes LoadGen samples with int32 labels in one QuerySamplesComplete per call.

    Building a QuerySampleResponse costs ~1 µs in pybind11; re-setting the id of a prepared one
    ~0.2 µs. A response depends only on (id, address, size), so the prepared responses of a
    label buffer are kept by its address and only their ids change. Safe across threads: two
    live label arrays never share an address, and each completion thread finishes with a
    buffer before its slot is reused.
    """

    def __init__(self, samples_complete: Callable[[list[Any]], None] | None = None) -> None:
        import mlperf_loadgen as lg

        self._response = lg.QuerySampleResponse
        self._set_id = lg.QuerySampleResponse.id.fset
        # LoadGen's, or the measured pass's counter (backends.common.probe)
        self._samples_complete = samples_complete or lg.QuerySamplesComplete
        self._prepared: dict[int, list[Any]] = {}

    def complete(self, ids: Sequence[int], labels: np.ndarray) -> None:
        labels = int32_labels(labels)
        count = len(ids)
        if len(labels) != count:
            raise ValueError(f"{len(labels)} labels for {count} samples")
        address = labels.ctypes.data
        prepared = self._prepared.get(address)
        if prepared is None or len(prepared) < count:
            prepared = [
                self._response(0, pointer, LABEL_BYTES)
                for pointer in range(address, address + LABEL_BYTES * count, LABEL_BYTES)
            ]
            if len(self._prepared) >= _MAX_CACHED_BUFFERS:
                self._prepared.clear()
            self._prepared[address] = prepared
        responses = prepared if len(prepared) == count else prepared[:count]
        any(map(self._set_id, responses, ids))  # C-level loop; the setter returns None
        self._samples_complete(responses)  # `labels` is alive until this returns


class NativeResponder:
    """Completes a batch through the native library: one call, the responses built in C++
    (no Python object per sample). `ids` is a uint64 view into LoadGen's QuerySample array
    (a big issue) or a short list (a small one)."""

    def __init__(self, native: NativeLoadGen) -> None:
        self._native = native

    def complete(self, ids: Sequence[int] | np.ndarray, labels: np.ndarray) -> None:
        if not isinstance(ids, np.ndarray):
            ids = np.array(ids, dtype=np.uint64)
        self._native.complete(ids, int32_labels(labels))  # `labels` is alive until this returns


class LwisSUT:
    """LoadGen fast-issue SUT: LoadGen's issue callback is the harness' `issue` itself.

    With `native` (and no `samples_complete`), it also serves the native issue path:
    `issue_native` takes LoadGen's QuerySample array and batches complete through the library.
    """

    def __init__(
        self,
        devices: Sequence[InferenceDevice],
        batch_size: int,
        deque_timeout_us: int,
        on_error: ErrorFn,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        samples_complete: Callable[[list[Any]], None] | None = None,
        native: NativeLoadGen | None = None,
    ) -> None:
        self.responder: LabelResponder | NativeResponder
        # The native issue callback, or None: the driver runs the native path only with it.
        self.issue_native: Callable[[np.ndarray], None] | None = None
        if native is not None and samples_complete is None:
            self.responder = NativeResponder(native)
            self.issue_native = self._issue_native
        else:
            self.responder = LabelResponder(samples_complete)
        # A burst of this many samples keeps every slot of every device busy.
        self.busy_samples = batch_size * sum(len(device.slots) for device in devices)
        self.harness = LwisHarness(
            devices, batch_size, deque_timeout_us, self.responder.complete, on_error
        )
        self.stop_timeout_s = stop_timeout_s
        # Bound once: LoadGen calls the harness directly, with no extra Python frame.
        self.issue_fast = self.harness.issue
        self.harness.start()

    def _issue_native(self, samples: np.ndarray) -> None:
        """The native path's issue callback: LoadGen's QuerySample array (SAMPLE_DTYPE)."""
        self.harness.issue(samples["id"], samples["index"])

    def flush_queries(self) -> None:
        self.harness.flush()

    def stop(self) -> None:
        self.harness.stop(self.stop_timeout_s)

    def stats(self) -> dict[str, Any]:
        return self.harness.stats()


def fail_process(exc: BaseException) -> None:
    """`on_error` for a LoadGen process: LoadGen has no abort, so report and end it at once
    (the host reads the `mlorch-fatal` line and names the error)."""
    abort_test(exc, "dell-trt harness")
