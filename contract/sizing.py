"""Self-sizing: how a short measured pass of the SUT becomes LoadGen's expected rate or latency.

LoadGen schedules a performance test from what the SUT is expected to do: Offline sends one query
of `expected_qps × min_duration × 1.1` samples (a faster SUT finishes early: INVALID, minimum
duration not met); SingleStream and MultiStream generate `min_duration / expected_latency`
queries (a faster SUT runs out of them: ERR "Ran out of generated queries"). A guess that is off
by more than LoadGen's slack therefore breaks the run, on a fast host as on a slow one.

The rules below turn a measurement into the value LoadGen is given. Host and SUT containers both
use them: a container measures right before its LoadGen test and applies the value in that same
process; the host sizes later tests from the cached measurement. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# The tuning key (RunSpec.tuning, [run.tuning]) that sizes each scenario's performance test.
TUNING_KEY = {
    "Offline": "offline_expected_qps",
    "Server": "server_target_qps",
    "SingleStream": "single_stream_expected_latency_ms",
    "MultiStream": "multi_stream_expected_latency_ms",
}
SCENARIOS = tuple(TUNING_KEY)
MULTI_STREAM_SAMPLES = 8  # samples per MultiStream query (ResNet50, v6.1)
SERVER_LATENCY_BOUND_MS = 15.0  # ResNet50 Server: p99 latency bound
# LoadGen's p99 early stopping passes a Server test from about 460 queries when none is late, and
# needs more for each late one. A tune probe runs this many, and so does a --quick Server test
# whose target was tried (tuned, or given by the user): its verdict then means what tune's did.
SERVER_EARLY_STOPPING_QUERIES = 1024

# Offline: expected QPS = measured rate × this. LoadGen adds its own 1.1, so the test lasts at
# least its minimum duration unless it runs more than 1.375× faster than the measured pass.
OFFLINE_RATE_HEADROOM = 1.25
# A --quick run sizes its Offline query for this many times the expected rate more: a smoke test
# has no second try, and a longer query costs only seconds there.
QUICK_OFFLINE_HEADROOM = 2.0
# SingleStream / MultiStream: expected latency = measured median × this. Expecting a shorter
# latency only makes LoadGen generate more queries than it issues (it stops at the minimum
# duration and count); expecting a longer one runs out of queries. A test 2× faster than the
# pass still has enough.
LATENCY_HEADROOM = 0.5
# Server: the first target QPS = this fraction of the rate the harness sustained in a burst of
# single-sample queries. `mlorch tune` searches the highest VALID one from there.
SERVER_START_FRACTION = 0.5

# How long a container's measured pass aims to last (at least five queries, or one burst that
# fills every worker, whatever that takes), and its bounds.
PROBE_SECONDS = 0.15
PROBE_MAX_LATENCY_QUERIES = 256


@dataclass(frozen=True)
class Measurement:
    """What a short pass of the SUT (same process, harness and settings as its test) did.

    `samples_per_second`: sustained rate; `latency_ms`: median latency of one query of the
    scenario's shape (1 sample; 8 for MultiStream), None where the pass measured none (Offline).
    """

    scenario: str
    samples: int
    queries: int
    seconds: float
    samples_per_second: float
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    # The rate is an estimate (workers ÷ the measured single-sample latency), not a measured
    # burst: a --quick Server pass, whose test is too short to be VALID anyway. A full run
    # measures again rather than start from it.
    estimated: bool = False

    def __post_init__(self) -> None:
        if self.scenario not in TUNING_KEY:
            raise ValueError(f"unknown scenario {self.scenario!r}")
        if not (self.samples_per_second > 0 and math.isfinite(self.samples_per_second)):
            raise ValueError(f"a measured rate must be positive, got {self.samples_per_second}")
        if self.scenario in ("SingleStream", "MultiStream", "Server") and not self.latency_ms:
            raise ValueError(f"a {self.scenario} measurement needs a latency")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """A measurement read back from harness.json or the sizing cache; ValueError if damaged."""
        try:
            return cls(
                scenario=str(data["scenario"]),
                samples=int(data["samples"]),
                queries=int(data["queries"]),
                seconds=float(data["seconds"]),
                samples_per_second=float(data["samples_per_second"]),
                latency_ms=_optional_float(data.get("latency_ms")),
                latency_p90_ms=_optional_float(data.get("latency_p90_ms")),
                estimated=bool(data.get("estimated", False)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a sizing measurement: {exc}") from exc

    @property
    def server_feasible(self) -> bool:
        """Whether one sample alone fits the Server latency bound (if not, no target QPS is
        VALID with this harness on this host). The median decides: a pass has a handful of
        single-sample queries, whose "p90" is their slowest, and one scheduler hiccup on a
        shared host must not declare a feasible SUT infeasible."""
        return self.latency_ms is None or self.latency_ms < SERVER_LATENCY_BOUND_MS


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def tuning_value(measurement: Measurement) -> float:
    """The tuning value (RunSpec.tuning units: qps or ms) a measurement sizes its scenario to."""
    scenario = measurement.scenario
    if scenario == "Offline":
        return significant(measurement.samples_per_second * OFFLINE_RATE_HEADROOM)
    if scenario == "Server":
        return significant(measurement.samples_per_second * SERVER_START_FRACTION)
    assert measurement.latency_ms is not None  # checked on construction
    return significant(measurement.latency_ms * LATENCY_HEADROOM)


def loadgen_value(scenario: str, tuning: float, quick: bool) -> float:
    """What LoadGen is given for a scenario's tuning value (qps, or ms of latency): the same
    number, except a --quick Offline query sized with its extra headroom."""
    if scenario == "Offline" and quick:
        return significant(tuning * QUICK_OFFLINE_HEADROOM)
    return tuning


def significant(value: float) -> float:
    """Four significant digits: user.conf stays readable, sizing keeps its headroom."""
    if value <= 0:
        raise ValueError(f"a sized value must be positive, got {value}")
    digits = 3 - math.floor(math.log10(value))
    return round(value, digits) if digits > 0 else float(round(value, digits))
