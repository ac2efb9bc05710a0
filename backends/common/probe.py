"""The measured pass a SUT container runs before its LoadGen test when the host asks it to size.

It drives a SUT built exactly as the test's (same model, harness, batch, threads, streams)
through its own issue path — `issue_queries` with sample objects, or `issue_fast` with id and
index lists — and counts the responses through the completion callable the SUT was built with,
in place of LoadGen's `QuerySamplesComplete`. No LoadGen test runs, so the one test the process
may run is still to come. Query shapes follow the scenario: bursts of samples (Offline), one
query of one sample at a time (SingleStream), of eight (MultiStream), and for Server both the
one-sample latency and the rate of a burst of one-sample queries.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from contract.sizing import (
    MULTI_STREAM_SAMPLES,
    PROBE_MAX_LATENCY_QUERIES,
    PROBE_SECONDS,
    Measurement,
)

WAIT_TIMEOUT_S = 120.0  # one query or burst of the pass; a SUT slower than this is broken
FIRST_BURST = 32  # at least; a SUT's `busy_samples` (a batch for every worker) can ask more
# A --quick Offline pass starts with one query of this many samples per worker and doubles it up
# to the worker's batch: on a slow SUT (a CPU, where the rate per sample hardly depends on the
# batch) one full batch per worker would cost a large share of a quick test.
QUICK_FIRST_BATCH = 4
SERVER_FIRST_BURST = 8
# A --quick Server pass: one warm-up and this many one-sample queries, no burst (its test is
# 16 queries, INVALID by design; the pass must stay within 10 % of it).
QUICK_SERVER_LATENCIES = 2
# A --quick SingleStream/MultiStream pass spends this share of the budget: its test is 64
# (SingleStream) queries, and the value it sizes only needs to be near (a test that outruns
# it is re-sized and run again).
QUICK_LATENCY_SHARE = 0.5
MAX_BURST = 1 << 20


class ProbeTimeout(RuntimeError):
    """The SUT did not answer a query of the measured pass in time."""


@dataclass(frozen=True)
class ProbeSample:
    """What LoadGen's QuerySample offers a classic SUT: a response id and a QSL index."""

    id: int
    index: int


class CompletionCounter:
    """Stands in for `QuerySamplesComplete`: counts the responses, wakes whoever waits."""

    def __init__(self) -> None:
        self._done = 0
        self._changed = threading.Condition()

    def __call__(self, responses: Sequence[Any]) -> None:
        with self._changed:
            self._done += len(responses)
            self._changed.notify_all()

    def wait_for(self, total: int, timeout_s: float | None = None) -> None:
        timeout_s = WAIT_TIMEOUT_S if timeout_s is None else timeout_s
        with self._changed:
            if not self._changed.wait_for(lambda: self._done >= total, timeout_s):
                raise ProbeTimeout(
                    f"sizing pass: the SUT answered {self._done} of {total} samples "
                    f"in {timeout_s:.0f} s"
                )

    @property
    def done(self) -> int:
        with self._changed:
            return self._done


Issue = Callable[[list[int], list[int]], None]


def _issuer(sut: Any) -> Issue:
    fast = getattr(sut, "issue_fast", None)
    if fast is not None:
        return fast  # type: ignore[no-any-return]

    def classic(ids: list[int], indices: list[int]) -> None:
        sut.issue_queries([ProbeSample(i, x) for i, x in zip(ids, indices, strict=True)])

    return classic


class _Pass:
    """Issue queries of loaded QSL indices, cycling over them, with fresh response ids."""

    def __init__(self, sut: Any, counter: CompletionCounter, indices: Sequence[int]) -> None:
        if not indices:
            raise ValueError("the sizing pass needs loaded samples")
        self.issue = _issuer(sut)
        self.flush: Callable[[], None] = sut.flush_queries
        self.counter = counter
        self.indices = list(indices)
        self.issued = 0
        # A harness of several workers needs a burst that fills them all, or its rate reads low.
        self.busy_samples = int(getattr(sut, "busy_samples", 0) or 0)
        self.first_burst = max(FIRST_BURST, self.busy_samples)
        self.workers = int(getattr(sut, "workers", 0) or 0)  # 0: not told

    def _next(self, count: int) -> tuple[list[int], list[int]]:
        ids = list(range(self.issued, self.issued + count))
        pool = self.indices
        self.issued += count
        return ids, [pool[i % len(pool)] for i in ids]

    def burst(self, samples: int, per_query: int) -> float:
        """Issue `samples` at once in queries of `per_query`; seconds until all are answered."""
        started = time.perf_counter()
        for start in range(0, samples, per_query):
            self.issue(*self._next(min(per_query, samples - start)))
        self.flush()
        self.counter.wait_for(self.issued)
        return time.perf_counter() - started

    def one_query(self, samples: int) -> float:
        """One query of `samples`, waited for: its latency in seconds."""
        started = time.perf_counter()
        self.issue(*self._next(samples))
        self.counter.wait_for(self.issued)
        return time.perf_counter() - started


@dataclass(frozen=True)
class _Burst:
    samples: int
    queries: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def _throughput(run: _Pass, budget_s: float, per_query: int, first: int) -> _Burst:
    """Bursts that grow from `first` samples until one lasts about half the budget; the last
    (largest) one counts."""
    size, spent = first, 0.0
    while True:
        burst = _Burst(size, -(-size // per_query), run.burst(size, per_query))
        spent += burst.seconds
        if spent >= budget_s or burst.seconds >= budget_s / 2 or size >= MAX_BURST:
            return burst
        size = min(MAX_BURST, max(2 * size, min(64 * size, int(burst.rate * budget_s / 2))))


def _ladder(run: _Pass, budget_s: float) -> _Burst:
    """Quick Offline: bursts of one query per worker of QUICK_FIRST_BATCH samples, the query
    doubling up to the worker's batch, then more full batches, until one burst lasts about half
    the budget; the last one counts. A slow SUT is measured in a fraction of one full batch's
    time; a fast one reaches its full batches as the plain pass does."""
    workers = run.workers
    batch = max(1, run.busy_samples // workers)
    per_query = min(QUICK_FIRST_BATCH, batch)
    size, spent = workers * per_query, 0.0
    while True:
        burst = _Burst(size, -(-size // per_query), run.burst(size, per_query))
        spent += burst.seconds
        if spent >= budget_s or burst.seconds >= budget_s / 2 or size >= MAX_BURST:
            return burst
        if per_query < batch:
            per_query = min(batch, 2 * per_query)
            size = workers * per_query
        else:
            size = min(MAX_BURST, max(2 * size, min(64 * size, int(burst.rate * budget_s / 2))))


def _latencies(run: _Pass, samples: int, budget_s: float, least: int = 5) -> list[float]:
    """One query at a time until the budget is spent (at least `least`, at most a few
    hundred)."""
    run.one_query(samples)  # the first query of a shape pays for lazy set-up; not counted
    latencies: list[float] = []
    spent = 0.0
    while len(latencies) < least or (
        spent < budget_s and len(latencies) < PROBE_MAX_LATENCY_QUERIES
    ):
        latency = run.one_query(samples)
        latencies.append(latency)
        spent += latency
    return latencies


def _latency_measurement(scenario: str, samples: int, latencies: list[float]) -> Measurement:
    seconds = sum(latencies)
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return Measurement(
        scenario,
        samples * len(latencies),
        len(latencies),
        seconds,
        samples * len(latencies) / seconds,
        latency_ms=statistics.median(latencies) * 1000,
        latency_p90_ms=p90 * 1000,
    )


def _quick_server(run: _Pass) -> Measurement:
    """A --quick Server pass: the single-sample latency, and a rate estimated from it and the
    workers the SUT names (1 when it names none: a low start, never an overload)."""
    single = _latency_measurement(
        "Server", 1, _latencies(run, 1, 0.0, least=QUICK_SERVER_LATENCIES)
    )
    assert single.latency_ms is not None
    rate = max(1, run.workers) * 1000.0 / single.latency_ms
    return replace(single, samples_per_second=rate, estimated=True)


def measure(
    make_sut: Callable[[CompletionCounter], Any],
    scenario: str,
    indices: Sequence[int],
    budget_s: float = PROBE_SECONDS,
    quick: bool = False,
) -> Measurement:
    """Measure `scenario` on a SUT built by `make_sut(complete)` over loaded QSL `indices`;
    the SUT is stopped afterwards, whatever happens. `quick`: the pass of a --quick test (its
    Offline pass climbs from small batches when the SUT says how many workers it has)."""
    counter = CompletionCounter()
    sut = make_sut(counter)
    try:
        run = _Pass(sut, counter, indices)
        if scenario == "Offline":
            if quick and run.workers > 0 and run.busy_samples >= run.workers:
                burst = _ladder(run, budget_s)
            else:
                burst = _throughput(run, budget_s, MAX_BURST, run.first_burst)
            return Measurement(scenario, burst.samples, 1, burst.seconds, burst.rate)
        latency_budget = budget_s * QUICK_LATENCY_SHARE if quick else budget_s
        if scenario == "SingleStream":
            return _latency_measurement(scenario, 1, _latencies(run, 1, latency_budget))
        if scenario == "MultiStream":
            samples = MULTI_STREAM_SAMPLES
            latencies = _latencies(run, samples, latency_budget)
            return _latency_measurement(scenario, samples, latencies)
        if scenario == "Server" and quick:
            return _quick_server(run)
        if scenario == "Server":
            single = _latency_measurement(scenario, 1, _latencies(run, 1, budget_s / 2))
            # one-sample queries: a few already keep every worker busy
            burst = _throughput(run, budget_s / 2, 1, SERVER_FIRST_BURST)
            return Measurement(
                scenario,
                burst.samples + single.samples,
                burst.queries + single.queries,
                burst.seconds + single.seconds,
                burst.rate,
                latency_ms=single.latency_ms,
                latency_p90_ms=single.latency_p90_ms,
            )
        raise ValueError(f"unknown scenario {scenario!r}")
    finally:
        sut.stop()
