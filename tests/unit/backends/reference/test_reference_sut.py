"""Reference SUT semantics without LoadGen: encoding, batching, threading, CUDA provider check."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from backends.reference import sut as sut_mod
from backends.reference.__main__ import warm_up_batch_sizes
from backends.reference.sut import ReferenceSUT, encode_responses


def test_labels_are_argmax_minus_one_as_float32() -> None:
    buffers = encode_responses(np.array([1, 501, 1000]))
    assert [b.dtype for b in buffers] == [np.float32] * 3
    assert [float(b[0]) for b in buffers] == [0.0, 500.0, 999.0]
    assert all(b.nbytes == 4 for b in buffers)


class _Recorder(ReferenceSUT):
    def __init__(self, scenario: str, threads: int = 2, max_batchsize: int = 32) -> None:
        self.batches: list[tuple[list[int], str]] = []
        self.lock = threading.Lock()
        super().__init__(
            model=None,
            qsl=None,
            scenario=scenario,
            threads=threads,  # type: ignore[arg-type]
            max_batchsize=max_batchsize,
        )

    def _run(self, item: Any, worker: int) -> None:
        with self.lock:
            self.batches.append((item.indices, threading.current_thread().name))


def _samples(n: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=1000 + i, index=i) for i in range(n)]


def test_offline_splits_into_max_batches_on_worker_threads() -> None:
    sut = _Recorder("Offline")
    sut.issue_queries(_samples(70))
    sut.stop()
    sizes = sorted(len(indices) for indices, _ in sut.batches)
    assert sizes == [6, 32, 32]
    assert all(name.startswith("sut-worker-") for _, name in sut.batches)
    assert sorted(i for indices, _ in sut.batches for i in indices) == list(range(70))


def test_single_stream_runs_inline() -> None:
    sut = _Recorder("SingleStream")
    sut.issue_queries(_samples(1))
    assert sut.batches == [([0], threading.current_thread().name)]
    assert sut._workers == []
    sut.stop()


def test_multistream_query_is_one_batch() -> None:
    sut = _Recorder("MultiStream")
    sut.issue_queries(_samples(8))
    sut.stop()
    assert [len(indices) for indices, _ in sut.batches] == [8]


def test_warm_up_shapes_follow_the_scenario() -> None:
    assert warm_up_batch_sizes("SingleStream", 32, 64) == (1,)
    assert warm_up_batch_sizes("Server", 32, 64) == (1,)
    assert warm_up_batch_sizes("MultiStream", 32, 64) == (8,)
    assert warm_up_batch_sizes("Offline", 32, 20) == (20,)


class _FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers


def test_cuda_without_cuda_provider_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnxruntime

    monkeypatch.setattr(sut_mod, "visible_gpu_count", lambda: 2)
    monkeypatch.setattr(
        onnxruntime, "InferenceSession", lambda *a, **k: _FakeSession(["CPUExecutionProvider"])
    )
    with pytest.raises(RuntimeError, match="did not get the CUDA execution provider"):
        sut_mod.OnnxRuntimeModel(tmp_path / "m.onnx", "cuda")


def test_cuda_without_gpus_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sut_mod, "visible_gpu_count", lambda: 0)
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        sut_mod.OnnxRuntimeModel(tmp_path / "m.onnx", "cuda")


def test_one_session_per_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import onnxruntime

    created: list[Any] = []

    class Session(_FakeSession):
        def __init__(self, path: str, options: Any, providers: list[Any]) -> None:
            super().__init__(["CUDAExecutionProvider", "CPUExecutionProvider"])
            created.append(providers[0])

        def get_inputs(self) -> list[Any]:
            return [SimpleNamespace(name="input_tensor:0")]

        def get_outputs(self) -> list[Any]:
            return [SimpleNamespace(name="ArgMax:0"), SimpleNamespace(name="softmax_tensor:0")]

    monkeypatch.setattr(sut_mod, "visible_gpu_count", lambda: 3)
    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    model = sut_mod.OnnxRuntimeModel(tmp_path / "m.onnx", "cuda")
    assert created == [("CUDAExecutionProvider", {"device_id": g}) for g in range(3)]
    assert model.facts["sessions"] == 3
