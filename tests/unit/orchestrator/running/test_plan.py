from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import DEFAULT_TUNING, Device, Mode, Profile, RunSpec, Scenario
from orchestrator.results.rules import RULES
from orchestrator.running.plan import estimate_seconds, human_duration


def _spec(profile: Profile) -> RunSpec:
    return RunSpec(
        backend="reference", device=Device.CPU, profile=profile, tuning=DEFAULT_TUNING[Device.CPU]
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("scenario", list(Scenario))
def test_rules_match_the_loadgen_embedded_conf(tmp_path: Path, scenario: Scenario) -> None:
    """Read in a fresh process: LoadGen applies its embedded mlperf.conf only once per process."""
    empty = tmp_path / "user.conf"
    empty.write_text("\n")
    code = (
        "import mlperf_loadgen as lg; s = lg.TestSettings(); "
        f"s.scenario = lg.TestScenario.{scenario.value}; "
        f"s.FromConfig({str(empty)!r}, 'resnet50', {scenario.value!r}); "
        "print(s.min_duration_ms, s.min_query_count)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    duration, queries = (int(v) for v in out.stdout.split())
    assert duration == RULES[scenario].min_duration_ms
    assert queries == RULES[scenario].min_query_count


def test_full_offline_on_cpu_is_bounded_by_the_sample_count() -> None:
    seconds = estimate_seconds(_spec(Profile.FULL), Scenario.OFFLINE, Mode.PERFORMANCE, 50_000)
    assert seconds == pytest.approx(24_576 / 20)
    assert estimate_seconds(_spec(Profile.FULL), Scenario.SERVER, Mode.PERFORMANCE, 50_000) == 600


def test_quick_and_accuracy_estimates() -> None:
    quick = _spec(Profile.QUICK)
    assert estimate_seconds(quick, Scenario.SINGLE_STREAM, Mode.PERFORMANCE, 64) == pytest.approx(
        64 * 0.05
    )
    assert estimate_seconds(quick, Scenario.OFFLINE, Mode.ACCURACY, 64) == pytest.approx(64 / 20)
    # the quick Offline query: 2 × 20/s × 1.5 s × 1.1 = 66 samples, at the expected 20/s
    offline = estimate_seconds(quick, Scenario.OFFLINE, Mode.PERFORMANCE, 64)
    assert offline == pytest.approx(66 / 20)


def test_human_duration() -> None:
    assert human_duration(42) == "42 s"
    assert human_duration(600) == "10 min"
    assert human_duration(4 * 3600) == "4.0 h"
