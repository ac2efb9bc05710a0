"""`mlorch check SPEC`: the rules a run spec would break, and its estimated duration."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import DEFAULT_TUNING, Device, Mode, Profile, RunSpec, Scenario
from orchestrator.running.plan import human_duration
from orchestrator.submission import preflight
from orchestrator.submission.preflight import CheckReport, check_spec
from tests.support.cli import run_cli
from tests.support.specs import harness_record, run_spec

EDGE = (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM, Scenario.OFFLINE)


@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A model whose md5 counts as official here, and a 50 000-line val_map."""
    model = tmp_path / "resnet50_v1.onnx"
    model.write_bytes(b"stand-in for the official model")
    official = hashlib.md5(model.read_bytes()).hexdigest()
    monkeypatch.setattr(preflight, "official_md5s", lambda: frozenset({official}))
    dataset = tmp_path / "imagenet"
    dataset.mkdir()
    lines = (f"ILSVRC2012_val_{i + 1:08d}.JPEG {i % 1000}\n" for i in range(50_000))
    (dataset / "val_map.txt").write_text("".join(lines))
    return model, dataset


def spec(**values: Any) -> RunSpec:
    return run_spec(**{"profile": Profile.FULL, "scenarios": EDGE, **values})


def where(report: CheckReport) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in report.problems:
        found.setdefault(problem.where, []).append(problem.message)
    return found


def test_a_full_run_on_the_official_assets_breaks_no_rule(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    report = check_spec(spec(model=model, dataset=dataset), "open")
    assert report.problems == []
    # closed: at most the compliance runs (while `up` cannot run them)
    closed = check_spec(spec(model=model, dataset=dataset), "closed")
    assert {p.where for p in closed.problems} <= {"compliance"}


def test_estimate_uses_the_rule_minimums(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    report = check_spec(
        spec(model=model, dataset=dataset, scenarios=(Scenario.SINGLE_STREAM,), compliance=False)
    )
    estimate = next(note for note in report.notes if note.startswith("estimated"))
    # 600 s of performance (the CPU tuning reaches 100 queries sooner) and 50 000 images at the
    # CPU tuning's SingleStream latency
    latency_s = DEFAULT_TUNING[Device.CPU].single_stream_expected_latency_ms / 1000
    accuracy = human_duration(50_000 * latency_s)
    total = human_duration(600 + 50_000 * latency_s)
    assert estimate.startswith(f"estimated LoadGen time {total}: 1 performance 10 min, ")
    assert f"1 accuracy {accuracy} (50,000 images)" in estimate
    assert "compliance" not in estimate
    # the full profile audits by default: TEST01 + TEST04, each as long as the performance test
    audited = check_spec(spec(model=model, dataset=dataset, scenarios=(Scenario.SINGLE_STREAM,)))
    estimate = next(note for note in audited.notes if note.startswith("estimated"))
    total = human_duration(600 + 50_000 * latency_s + 1200)
    assert estimate.startswith(f"estimated LoadGen time {total}: ")
    assert "2 compliance 20 min" in estimate


def test_synthetic_assets(tmp_path: Path) -> None:
    found = where(check_spec(spec()))
    assert "synthetic random-weight model" in found["--model/--dataset"][0]


def test_model_md5_not_official(assets: tuple[Path, Path], tmp_path: Path) -> None:
    _, dataset = assets
    other = tmp_path / "other.onnx"
    other.write_bytes(b"some other model")
    found = where(check_spec(spec(model=other, dataset=dataset)))
    assert "is not an official resnet50_v1.onnx" in found[str(other)][0]


def test_model_missing(assets: tuple[Path, Path], tmp_path: Path) -> None:
    _, dataset = assets
    missing = tmp_path / "nowhere.onnx"
    found = where(check_spec(spec(model=missing, dataset=dataset)))
    assert found[str(missing)] == ["model file not found"]


def test_dataset_not_50000_images(assets: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = assets
    small = tmp_path / "small"
    small.mkdir()
    (small / "val_map.txt").write_text("a.JPEG 1\nb.JPEG 2\n")
    found = where(check_spec(spec(model=model, dataset=small)))
    assert found[str(small / "val_map.txt")] == ["lists 2 images, not 50,000"]
    # the user.conf override it forces is the consequence, not a second problem
    assert not any(key.endswith("user.conf") for key in found)


def test_count_below_the_dataset(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    found = where(check_spec(spec(model=model, dataset=dataset, dataset_count=1000)))
    assert found["--count"] == ["the run would use 1000 images, not 50,000"]


def test_skip_bad(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    found = where(check_spec(spec(model=model, dataset=dataset, skip_bad=True)))
    assert "not the full data set" in found["--skip-bad"][0]


def test_start_from_device_needs_approval(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    harness = harness_record(gpus=1, Offline={"start_from_device": True})
    values = {"backend": "dell-trt", "device": Device.CUDA, "tuning": DEFAULT_TUNING[Device.CUDA]}
    run = spec(model=model, dataset=dataset, harness=harness, **values)
    found = where(check_spec(run))
    assert "needs MLCommons approval" in found["Offline/start_from_device"][0]
    assert "SingleStream/start_from_device" not in found
    opened = where(check_spec(run, "open"))
    assert "Offline/start_from_device" not in opened


def test_quick_profile_and_its_rule_keys(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    found = where(check_spec(spec(model=model, dataset=dataset, profile=Profile.QUICK)))
    assert "never valid" in found["profile"][0]
    rule_keys = " ".join(found["SingleStream/user.conf"])
    assert "min_duration" in rule_keys


def test_rule_key_override_in_the_user_conf(
    assets: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, dataset = assets

    def entries(spec: RunSpec, scenario: Scenario, count: int) -> dict[str, str]:
        return {"target_latency": "50", "min_query_count": "10"}

    monkeypatch.setattr(preflight, "user_conf_entries", entries)
    found = where(check_spec(spec(model=model, dataset=dataset)))
    assert found["Offline/user.conf"] == ["would set the rule key min_query_count = 10"]


def test_no_accuracy_mode(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    found = where(check_spec(spec(model=model, dataset=dataset, modes=(Mode.PERFORMANCE,))))
    assert found["--mode"] == ["no accuracy runs: every scenario needs one"]


def test_no_performance_mode(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    found = where(check_spec(spec(model=model, dataset=dataset, modes=(Mode.ACCURACY,))))
    assert found["--mode"] == ["no performance runs: nothing to submit"]


def test_missing_scenario_and_inference(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    report = check_spec(spec(model=model, dataset=dataset, scenarios=(Scenario.SERVER,)))
    assert where(report)["--scenario"] == [
        "no SingleStream: the closed edge suite needs it",
        "no MultiStream: the closed edge suite needs it",
        "no Offline: the closed edge suite needs it",
    ]
    inferred = check_spec(spec(model=model, dataset=dataset, scenarios=(Scenario.SINGLE_STREAM,)))
    assert "--scenario" not in where(inferred)
    assert "Offline would be inferred from SingleStream (edge rule)" in inferred.notes


def test_compliance_off_in_closed(assets: tuple[Path, Path]) -> None:
    model, dataset = assets
    values: dict[str, Any] = {"model": model, "dataset": dataset}
    if "compliance" in RunSpec.model_fields:
        values["compliance"] = False
    found = where(check_spec(spec(**values), "closed"))
    assert "TEST01 and TEST04 are needed" in found["compliance"][0]
    assert "compliance" not in where(check_spec(spec(**values), "open"))


def _mlorch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args, cwd=cwd, columns=80, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )


def test_cli_checks_a_run_spec_toml(tmp_path: Path) -> None:
    run = tmp_path / "run.toml"
    run.write_text('[run]\nprofile = "quick"\nscenarios = ["Offline"]\n')
    result = _mlorch("check", str(run), "--backend", "reference", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 12, result.stderr
    assert "never valid" in result.stdout
    assert "estimated LoadGen time" in result.stderr + result.stdout
    lines = (result.stdout + result.stderr).splitlines()
    assert all(len(line) <= 80 for line in lines if str(tmp_path) not in line), lines
    no_backend = _mlorch("check", str(run), cwd=tmp_path)
    assert no_backend.returncode == 2
    assert "--backend" in no_backend.stderr


def test_cli_names_a_missing_path_as_such(tmp_path: Path) -> None:
    result = _mlorch("check", str(tmp_path / "no-tree"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"no such tree or run spec: {tmp_path / 'no-tree'}" in result.stderr
    assert "unknown backend" not in result.stderr


def test_dell_trt_on_real_data_needs_the_calibration_list(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, dataset = assets
    values = {
        "backend": "dell-trt",
        "model": model,
        "dataset": dataset,
        "harness": harness_record(),
    }
    found = where(check_spec(spec(**values)))
    assert "calibrates on the official" in found["--calibration-list"][0]
    missing = tmp_path / "cal.txt"
    found = where(check_spec(spec(**values, calibration_list=missing)))
    assert found[str(missing)] == ["calibration list not found"]
    assert "--calibration-list" not in found
    assert "--calibration-list" not in where(check_spec(spec(model=model, dataset=dataset)))
