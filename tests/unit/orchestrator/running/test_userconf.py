from __future__ import annotations

from pathlib import Path

import mlperf_loadgen as lg
import pytest

from orchestrator.config import DEFAULT_TUNING, Device, Profile, RunSpec, Scenario
from orchestrator.running.userconf import render_user_conf, user_conf_entries


def _spec(profile: Profile = Profile.FULL, device: Device = Device.CPU) -> RunSpec:
    return RunSpec(
        backend="reference", device=device, profile=profile, tuning=DEFAULT_TUNING[device]
    )


def test_full_profile_sets_only_submitter_keys() -> None:
    entries = user_conf_entries(_spec(), Scenario.OFFLINE, 50_000)
    assert entries == {"target_qps": "20"}
    assert user_conf_entries(_spec(), Scenario.SINGLE_STREAM, 50_000) == {"target_latency": "50"}
    assert user_conf_entries(_spec(), Scenario.MULTI_STREAM, 50_000) == {"target_latency": "400"}
    assert user_conf_entries(_spec(), Scenario.SERVER, 50_000) == {"target_qps": "8"}


def test_small_dataset_overrides_performance_sample_count() -> None:
    entries = user_conf_entries(_spec(), Scenario.OFFLINE, 64)
    assert entries["performance_sample_count_override"] == "64"


def test_quick_profile_shortens_and_says_so(golden: Path) -> None:
    text = render_user_conf(_spec(Profile.QUICK), Scenario.SINGLE_STREAM, 64)
    assert text == (golden / "userconf" / "quick-singlestream-cpu.conf").read_text()
    assert "NOT valid for submission" in text


@pytest.mark.parametrize("scenario", list(Scenario))
def test_loadgen_accepts_every_rendered_file(tmp_path: Path, scenario: Scenario) -> None:
    """The real LoadGen parser reads each scenario's file (one FromConfig per fresh settings)."""
    conf = tmp_path / "user.conf"
    conf.write_text(render_user_conf(_spec(Profile.QUICK), scenario, 64))
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario.value)
    assert settings.FromConfig(str(conf), "resnet50", scenario.value) == 0
    assert settings.min_duration_ms == 1500


def test_quick_offline_query_is_sized_with_headroom(tmp_path: Path) -> None:
    """A --quick Offline query holds twice the expected rate's samples, so a SUT faster than its
    estimate still runs min_duration (else LoadGen says INVALID: min duration not met)."""
    assert user_conf_entries(_spec(Profile.QUICK), Scenario.OFFLINE, 64)["target_qps"] == "40"
    assert user_conf_entries(_spec(), Scenario.OFFLINE, 64)["target_qps"] == "20"  # full: as set
    conf = tmp_path / "user.conf"
    conf.write_text(render_user_conf(_spec(Profile.QUICK), Scenario.OFFLINE, 64))
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    assert settings.FromConfig(str(conf), "resnet50", "Offline") == 0
    assert settings.offline_expected_qps == 40
