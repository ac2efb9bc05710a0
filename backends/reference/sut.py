"""Reference SUT semantics: ArgMax − 1 labels, ≤ max_batchsize batches, queue-fed workers.

SingleStream runs inline in LoadGen's issue thread; the other scenarios enqueue batches for a pool
of worker threads (queue bound: threads × 4), as the reference harness does. Any exception while
answering a batch ends the test at once (`backends.common.fatal.abort_test`): LoadGen would
otherwise wait for the lost responses until the host's timeout.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.common.dataset import PreprocessedImagenet
from backends.common.fatal import abort_test
from backends.common.loadgen_driver import STOP_TIMEOUT_S
from contract.resnet50 import ARGMAX_OUTPUT, SAMPLE_SHAPE


def visible_gpu_count() -> int:
    """GPUs this container can see (NVML honours NVIDIA_VISIBLE_DEVICES)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return len([d for d in visible.split(",") if d.strip()])


class OnnxRuntimeModel:
    """One onnxruntime session per GPU on cuda (workers spread over them), one on cpu."""

    def __init__(self, model_path: Path, device: str, intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self.sessions: list[Any] = []
        if device == "cuda":
            gpus = visible_gpu_count()
            if gpus == 0:
                raise RuntimeError("--device cuda but no GPU is visible inside the container")
            for gpu in range(gpus):
                providers: list[Any] = [
                    ("CUDAExecutionProvider", {"device_id": gpu}),
                    "CPUExecutionProvider",
                ]
                session = ort.InferenceSession(str(model_path), options, providers=providers)
                # onnxruntime silently falls back to CPU when CUDA libraries do not load.
                if session.get_providers()[0] != "CUDAExecutionProvider":
                    raise RuntimeError(
                        "onnxruntime did not get the CUDA execution provider "
                        f"(got {session.get_providers()}); check onnxruntime-gpu and CUDA/cuDNN"
                    )
                self.sessions.append(session)
        else:
            self.sessions.append(
                ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            )
        first = self.sessions[0]
        self.input_name = first.get_inputs()[0].name
        outputs = [o.name for o in first.get_outputs()]
        self.output_name = ARGMAX_OUTPUT if ARGMAX_OUTPUT in outputs else outputs[0]
        self.facts = {
            "onnxruntime": ort.__version__,
            "providers": [s.get_providers()[0] for s in self.sessions],
            "sessions": len(self.sessions),
        }

    def warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        """Run each session once per batch size before LoadGen starts its clock, as the
        reference harness does: first runs pay for allocations and kernel selection."""
        for worker in range(len(self.sessions)):
            for size in batch_sizes:
                self.predict(np.zeros((size, *SAMPLE_SHAPE), np.float32), worker)

    def predict(self, batch: np.ndarray, worker: int = 0) -> np.ndarray:
        """Top-1 index per image, in the model's 1001-class space."""
        session = self.sessions[worker % len(self.sessions)]
        output = session.run([self.output_name], {self.input_name: batch})[0]
        if self.output_name != ARGMAX_OUTPUT:
            output = np.argmax(output, axis=1)
        return np.asarray(output).reshape(-1)


def encode_responses(labels: np.ndarray) -> list[np.ndarray]:
    """Reference encoding: label (ArgMax − 1, background removed) as one float32."""
    shifted = labels.astype(np.int64) - 1
    return [np.array([value], dtype=np.float32) for value in shifted]


@dataclass
class _Batch:
    ids: list[int]
    indices: list[int]


class ReferenceSUT:
    """LoadGen SUT with the reference harness' threading model."""

    def __init__(
        self,
        model: OnnxRuntimeModel,
        qsl: PreprocessedImagenet,
        scenario: str,
        threads: int,
        max_batchsize: int,
        samples_complete: Callable[[list[Any]], None] | None = None,
    ) -> None:
        import mlperf_loadgen as lg

        self.model = model
        self.qsl = qsl
        self.max_batchsize = max_batchsize
        self.inline = scenario == "SingleStream"
        self._response = lg.QuerySampleResponse
        # LoadGen's, or the measured pass's counter (backends.common.probe)
        self._samples_complete = samples_complete or lg.QuerySamplesComplete
        # A burst of this many samples gives every worker a full batch (issued as one query per
        # worker, each worker takes one).
        self.workers = 1 if self.inline else max(1, threads)
        self.busy_samples = max(1, threads) * max_batchsize
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=threads * 4)
        self._workers: list[threading.Thread] = []
        if not self.inline:
            for worker in range(threads):
                thread = threading.Thread(
                    target=self._work, args=(worker,), name=f"sut-worker-{worker}", daemon=True
                )
                thread.start()
                self._workers.append(thread)

    def issue_queries(self, query_samples: list[Any]) -> None:
        ids = [sample.id for sample in query_samples]
        indices = [sample.index for sample in query_samples]
        if self.inline:
            self._run(_Batch(ids, indices), worker=0)
            return
        for start in range(0, len(ids), self.max_batchsize):
            stop = start + self.max_batchsize
            self._queue.put(_Batch(ids[start:stop], indices[start:stop]))

    def flush_queries(self) -> None:
        pass

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join(timeout=STOP_TIMEOUT_S)

    def _work(self, worker: int) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(item, worker)

    def _run(self, item: _Batch, worker: int) -> None:
        stage = "inference"
        try:
            labels = self.model.predict(self.qsl.batch(item.indices), worker)
            stage = "encoding"
            buffers = encode_responses(labels)
            responses = [
                self._response(sample_id, buf.ctypes.data, buf.nbytes)
                for sample_id, buf in zip(item.ids, buffers, strict=True)
            ]
            stage = "QuerySamplesComplete"
            self._samples_complete(responses)
        except BaseException as exc:
            abort_test(exc, stage)
