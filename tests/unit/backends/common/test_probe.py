"""The measured pass of self-sizing, over fake SUTs of both issue paths (no LoadGen, no
timing assertions: only what was issued, in which shapes, and what came back)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from backends.common import probe
from backends.common.probe import CompletionCounter, ProbeTimeout, measure
from contract.sizing import MULTI_STREAM_SAMPLES, TUNING_KEY


class _Response:
    def __init__(self, sample_id: int) -> None:
        self.id = sample_id


class ClassicSUT:
    """issue_queries(QuerySample-likes), answered on a worker thread as the reference does."""

    def __init__(
        self,
        complete: Callable[[list[Any]], None],
        busy: int = 0,
        workers: int = 0,
        seconds_per_sample: float = 0.0,
    ) -> None:
        self.complete = complete
        self.queries: list[int] = []
        self.indices: set[int] = set()
        self.stopped = False
        self.busy_samples = busy
        self.workers = workers
        self.seconds_per_sample = seconds_per_sample

    def issue_queries(self, samples: list[Any]) -> None:
        self.queries.append(len(samples))
        self.indices.update(s.index for s in samples)
        responses = [_Response(s.id) for s in samples]
        threading.Thread(target=self.complete, args=(responses,)).start()

    def flush_queries(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


class FastSUT(ClassicSUT):
    """issue_fast(ids, indices), answered inline."""

    def issue_fast(self, ids: list[int], indices: list[int]) -> None:
        self.queries.append(len(ids))
        self.indices.update(indices)
        time.sleep(self.seconds_per_sample * len(ids))
        self.complete([_Response(i) for i in ids])

    def issue_queries(self, samples: list[Any]) -> None:
        raise AssertionError("a SUT with issue_fast is driven through it")


def _measure(
    kind: type[ClassicSUT], scenario: str, quick: bool = False, **sut: Any
) -> tuple[Any, ClassicSUT]:
    built: list[ClassicSUT] = []

    def make(complete: CompletionCounter) -> ClassicSUT:
        built.append(kind(complete, **sut))
        return built[0]

    measurement = measure(make, scenario, [3, 5, 7], budget_s=0.02, quick=quick)
    return measurement, built[0]


@pytest.mark.parametrize("kind", [ClassicSUT, FastSUT])
@pytest.mark.parametrize("scenario", list(TUNING_KEY))
def test_each_scenario_is_measured_in_its_query_shape(
    kind: type[ClassicSUT], scenario: str
) -> None:
    measurement, sut = _measure(kind, scenario)
    assert measurement.scenario == scenario
    assert measurement.samples_per_second > 0
    assert sut.stopped
    assert sut.indices <= {3, 5, 7}  # only loaded samples
    if scenario == "SingleStream":
        assert set(sut.queries) == {1}
    elif scenario == "MultiStream":
        assert set(sut.queries) == {MULTI_STREAM_SAMPLES}
    elif scenario == "Server":
        assert set(sut.queries) == {1}
    else:
        assert len(sut.queries) >= 1
        assert measurement.latency_ms is None
    if scenario != "Offline":
        assert measurement.latency_ms is not None
        assert measurement.latency_ms > 0
        assert measurement.queries >= 5


def test_the_first_burst_fills_every_worker() -> None:
    _, sut = _measure(FastSUT, "Offline", busy=500)
    assert sut.queries[0] == 500
    _, told = _measure(FastSUT, "Offline", busy=64, workers=2)  # a full run: a full batch each
    assert told.queries[0] == 64


def test_a_quick_offline_pass_climbs_from_small_batches_per_worker() -> None:
    """--quick: one query per worker, 4 samples first, doubling to the worker's batch of 32,
    then more full batches while the SUT is fast; a slow SUT is measured on the first rung."""
    _, fast = _measure(FastSUT, "Offline", quick=True, busy=64, workers=2)
    assert fast.queries[:8] == [4, 4, 8, 8, 16, 16, 32, 32]
    assert all(0 < size <= 32 for size in fast.queries[8:])  # then full batches (+ a rest)
    # 4 samples take 0.01 s here: the first burst already lasts half the 0.02 s budget
    measured, slow = _measure(
        FastSUT, "Offline", quick=True, busy=64, workers=2, seconds_per_sample=0.0025
    )
    assert slow.queries == [4, 4]
    assert measured.samples == 8
    _, untold = _measure(FastSUT, "Offline", quick=True, busy=64)  # workers unknown: as before
    assert untold.queries[0] == 64


def test_a_quick_server_pass_estimates_its_rate_from_the_single_sample_latency() -> None:
    """--quick Server: a warm-up and two one-sample queries, no burst (its test is only 16
    queries); the rate is the workers over the latency, and says it was estimated."""
    measured, sut = _measure(FastSUT, "Server", quick=True, workers=2, seconds_per_sample=0.01)
    assert sut.queries == [1, 1, 1]
    assert measured.estimated
    assert measured.queries == 2
    assert measured.latency_ms is not None
    assert measured.samples_per_second == pytest.approx(2000 / measured.latency_ms)
    unnamed, _ = _measure(FastSUT, "Server", quick=True, seconds_per_sample=0.01)
    assert unnamed.samples_per_second == pytest.approx(1000 / unnamed.latency_ms)  # 1 worker
    full, full_sut = _measure(FastSUT, "Server", workers=2)
    assert not full.estimated
    assert len(full_sut.queries) > 3  # latencies, then bursts


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream"])
def test_a_quick_latency_pass_spends_half_the_budget(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets: list[float] = []
    real = probe._latencies

    def recording(run: Any, samples: int, budget_s: float, least: int = 5) -> list[float]:
        budgets.append(budget_s)
        return real(run, samples, budget_s, least)

    monkeypatch.setattr(probe, "_latencies", recording)
    _measure(FastSUT, scenario)
    _measure(FastSUT, scenario, quick=True)
    assert budgets == [0.02, 0.02 * probe.QUICK_LATENCY_SHARE]


def test_a_sut_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "WAIT_TIMEOUT_S", 0.05)

    class Silent(ClassicSUT):
        def issue_queries(self, samples: list[Any]) -> None:
            pass

    with pytest.raises(ProbeTimeout, match="answered 0 of"):
        _measure(Silent, "SingleStream")


def test_the_sut_is_stopped_when_the_pass_fails() -> None:
    built: list[ClassicSUT] = []

    def make(complete: CompletionCounter) -> ClassicSUT:
        built.append(ClassicSUT(complete))
        return built[0]

    with pytest.raises(ValueError, match="needs loaded samples"):
        measure(make, "Offline", [])
    assert built[0].stopped
