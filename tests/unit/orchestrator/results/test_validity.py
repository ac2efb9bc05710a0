"""Submission validity judged from a run folder: fully valid (golden logs of a full-length run),
then quick, synthetic, user.conf overrides, missing compliance, failed tests, each named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.results.validity import judge_run, rule_code
from tests.support.submission_fixtures import (
    GOOD_ACCURACY,
    accuracy_values,
    performance_values,
    write_logs,
)

BACKEND = "reference"
SCENARIOS = ("SingleStream", "Offline")
OFFICIAL_MD5 = "f6a4da60cd5f084d97efc2c1ddb10beb"  # zenodo 4735647 resnet50_v1.onnx


def _manifest(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "status": "complete",
        "spec": {"backend": BACKEND, "profile": "full", "scenarios": list(SCENARIOS)},
        "assets": {"synthetic": False, "model_md5": OFFICIAL_MD5, "count": 50_000},
        "tests": [
            {"scenario": s, "mode": m, "status": "ok", "dir": f"{BACKEND}/{s}/{d}"}
            for s in SCENARIOS
            for m, d in (("PerformanceOnly", "performance"), ("AccuracyOnly", "accuracy"))
        ],
        "compliance": [
            {"scenario": s, "test": t, "passed": True, "reasons": []}
            for s in SCENARIOS
            for t in ("TEST01", "TEST04")
        ],
    }
    manifest.update(changes)
    return manifest


def _run(root: Path, perf: dict[str, Any] | None = None, conf: str = "") -> Path:
    """A run folder as a full-length `up` leaves it (logs with the keys the rules read)."""
    for scenario in SCENARIOS:
        folder = root / BACKEND / scenario
        write_logs(folder / "performance", {**performance_values(scenario), **(perf or {})})
        write_logs(folder / "accuracy", accuracy_values(scenario))
        (folder / "accuracy" / "accuracy.txt").write_text(GOOD_ACCURACY)
        (folder / "user.conf").write_text(f"*.{scenario}.target_qps = 100\n{conf}")
    return root


def _rules(root: Path, manifest: dict[str, Any], division: str = "closed") -> set[str]:
    return set(judge_run(root, manifest, division).codes())


def test_a_full_length_run_on_the_official_assets_is_valid(tmp_path: Path) -> None:
    validity = judge_run(_run(tmp_path), _manifest())
    assert validity.valid, validity.reasons()


def test_quick_profile_is_named_with_its_short_durations(tmp_path: Path) -> None:
    root = _run(tmp_path, perf={"effective_min_duration_ms": 1500})
    manifest = _manifest(spec={"backend": BACKEND, "profile": "quick", "scenarios": SCENARIOS})
    validity = judge_run(root, manifest)
    assert {"quick", "duration"} <= set(validity.codes())
    duration = next(u for u in validity.unmet if u.rule == "duration")
    assert duration.scenarios == SCENARIOS  # one line naming both scenarios
    assert "1.5 s" in duration.reason


def test_synthetic_assets_break_the_model_and_dataset_rules(tmp_path: Path) -> None:
    manifest = _manifest(assets={"synthetic": True, "model_md5": "0" * 32, "count": 64})
    reasons = judge_run(_run(tmp_path), manifest).reasons()
    assert any(r.startswith("model: synthetic random-weight model") for r in reasons)
    assert any(r.startswith("dataset: 64 synthetic images") for r in reasons)


def test_an_unofficial_model_is_named_by_its_md5(tmp_path: Path) -> None:
    manifest = _manifest(assets={"synthetic": False, "model_md5": "1" * 32, "count": 50_000})
    reasons = judge_run(_run(tmp_path), manifest).reasons()
    assert f"model: model md5 {'1' * 32} is not an official resnet50_v1.onnx" in reasons


def test_open_division_does_not_ask_for_the_official_model(tmp_path: Path) -> None:
    manifest = _manifest(assets={"synthetic": False, "model_md5": "1" * 32, "count": 50_000})
    assert "model" not in _rules(_run(tmp_path), manifest, division="open")


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("*.*.min_duration = 1000", "min_duration"),
        (
            "ResNet50.Offline.performance_sample_count_override = 64",
            "performance_sample_count_override",
        ),
        ("*.SingleStream.qsl_rng_seed = 1", "qsl_rng_seed"),
    ],
)
def test_a_user_conf_rule_key_is_named(tmp_path: Path, line: str, key: str) -> None:
    validity = judge_run(_run(tmp_path, conf=line + "\n"), _manifest())
    assert f"user.conf: sets {key} (SingleStream, Offline)" in validity.reasons()


def test_submitter_keys_are_allowed(tmp_path: Path) -> None:
    conf = "*.SingleStream.target_latency = 10\n*.Offline.target_qps = 50\n"
    assert "user.conf" not in _rules(_run(tmp_path, conf=conf), _manifest())


def test_other_seeds_in_the_log_are_named(tmp_path: Path) -> None:
    root = _run(tmp_path, perf={"effective_qsl_rng_seed": 1})
    assert "seeds" in _rules(root, _manifest())


def test_an_invalid_loadgen_verdict_and_logged_errors(tmp_path: Path) -> None:
    root = _run(tmp_path, perf={"result_validity": "INVALID"})
    assert "result" in _rules(root, _manifest())


def test_compliance_missing_or_failed(tmp_path: Path) -> None:
    root = _run(tmp_path)
    none = _manifest(compliance=[])
    reasons = judge_run(root, none).reasons()
    assert any(r.startswith("compliance: TEST01 not run") for r in reasons)
    failed = _manifest()
    failed["compliance"][0] = {
        "scenario": "SingleStream", "test": "TEST01", "passed": False,
        "reasons": ["qsl_idx 7 answered differently"],
    }  # fmt: skip
    reasons = judge_run(root, failed).reasons()
    assert "compliance: TEST01 failed: qsl_idx 7 answered differently (SingleStream)" in reasons


def test_compliance_verdicts_from_the_folder_when_the_manifest_has_none(tmp_path: Path) -> None:
    root = _run(tmp_path)
    manifest = _manifest()
    del manifest["compliance"]
    for scenario in SCENARIOS:
        for test in ("TEST01", "TEST04"):
            folder = root / BACKEND / scenario / "compliance" / test
            folder.mkdir(parents=True)
            passed = not (scenario == "Offline" and test == "TEST04")
            reasons = [] if passed else ["11.2 % faster than the performance run"]
            (folder / "verification.json").write_text(
                json.dumps(
                    {"test": test, "scenario": scenario, "passed": passed, "reasons": reasons}
                )
            )
    reasons = judge_run(root, manifest).reasons()
    assert reasons == [
        "compliance: TEST04 failed: 11.2 % faster than the performance run (Offline)"
    ]


def test_a_missing_or_failed_test_is_named(tmp_path: Path) -> None:
    root = _run(tmp_path)
    manifest = _manifest()
    manifest["tests"] = [t for t in manifest["tests"] if t["mode"] == "PerformanceOnly"]
    manifest["tests"][0]["status"] = "failed"
    reasons = judge_run(root, manifest).reasons()
    assert "missing: the performance test failed (SingleStream)" in reasons
    assert "missing: no accuracy test (SingleStream, Offline)" in reasons


def test_an_incomplete_run_and_a_low_accuracy(tmp_path: Path) -> None:
    root = _run(tmp_path)
    (root / BACKEND / "Offline" / "accuracy" / "accuracy.txt").write_text(
        "accuracy=70.000%, good=35000, total=50000\n"
    )
    validity = judge_run(root, _manifest(status="interrupted"))
    assert validity.reasons()[0] == "run: the run is interrupted"
    assert any(r.startswith("accuracy: top-1 70.000 %") for r in validity.reasons())


def test_a_partial_dataset_is_named(tmp_path: Path) -> None:
    manifest = _manifest(assets={"synthetic": False, "model_md5": OFFICIAL_MD5, "count": 1000})
    reasons = judge_run(_run(tmp_path), manifest).reasons()
    assert "dataset: 1000 images used, not 50,000" in reasons


def test_the_qsl_in_gpu_memory_needs_approval_in_the_closed_division(tmp_path: Path) -> None:
    root = _run(tmp_path)
    harness = {"scenarios": {"Offline": {"start_from_device": True}, "SingleStream": {}}}
    spec = {"backend": BACKEND, "profile": "full", "scenarios": SCENARIOS, "device": "cuda"}
    validity = judge_run(root, _manifest(spec={**spec, "harness": harness}))
    [approval] = validity.unmet
    assert approval.rule == "approval"
    assert approval.scenarios == ("Offline",)
    assert "start_from_device" in approval.reason
    assert judge_run(root, _manifest(spec={**spec, "harness": harness}), "open").valid
    off = {"scenarios": {"Offline": {"start_from_device": False}}}
    assert judge_run(root, _manifest(spec={**spec, "harness": off})).valid


def test_rule_codes_of_reason_lines() -> None:
    assert rule_code("quick: --quick profile") == "quick"
    assert rule_code("--skip-bad") == "dataset"  # manifests written before the rules were judged
    assert rule_code("something else") == "other"
