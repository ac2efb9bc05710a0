"""How long a run will take, estimated before it starts.

LoadGen runs a performance test until both the minimum duration and the minimum query count are
met; the rules' values for ResNet50 (compiled into LoadGen 6.0.17, round v6.1) make Offline need
24 576 samples, so a slow SUT takes much longer than the 600 s floor. Estimates use the tuning's
expected rates, which is also what LoadGen schedules against.
"""

from __future__ import annotations

from contract.sizing import loadgen_value
from orchestrator.config import Mode, RunSpec, Scenario
from orchestrator.results.rules import RULES

# LoadGen sizes the one Offline query as target_qps × min_duration × 1.1 samples: a SUT faster
# than its expected rate finishes it early and the run is INVALID (min duration not met). A
# --quick run sizes its query with extra headroom (contract.sizing.loadgen_value).
OFFLINE_QUERY_MARGIN = 1.1


def offline_target_qps(spec: RunSpec) -> float:
    """The Offline target_qps user.conf gives LoadGen."""
    return loadgen_value(Scenario.OFFLINE.value, spec.tuning.offline_expected_qps, spec.quick_run)


def expected_rate(spec: RunSpec, scenario: Scenario) -> float:
    """Samples per second the tuning says the SUT sustains in `scenario`."""
    tuning = spec.tuning
    if scenario is Scenario.SINGLE_STREAM:
        return 1000.0 / tuning.single_stream_expected_latency_ms
    if scenario is Scenario.MULTI_STREAM:
        return RULES[scenario].samples_per_query * 1000.0 / tuning.multi_stream_expected_latency_ms
    if scenario is Scenario.SERVER:
        return tuning.server_target_qps
    return tuning.offline_expected_qps


def estimate_seconds(spec: RunSpec, scenario: Scenario, mode: Mode, count: int) -> float:
    """Expected LoadGen time of one test (excluding container start and warm-up)."""
    rate = expected_rate(spec, scenario)
    if mode is Mode.ACCURACY:
        return count / rate
    rules = RULES[scenario]
    min_duration_ms = spec.quick.min_duration_ms if spec.quick_run else rules.min_duration_ms
    min_queries = spec.quick.min_query_count(scenario) if spec.quick_run else rules.min_query_count
    samples = min_queries * rules.samples_per_query
    if scenario is Scenario.OFFLINE:
        sized = offline_target_qps(spec) * min_duration_ms / 1000.0 * OFFLINE_QUERY_MARGIN
        samples = max(samples, round(sized))
    return max(min_duration_ms / 1000.0, samples / rate)


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
