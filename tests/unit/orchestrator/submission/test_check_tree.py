"""`mlorch check TREE`: one broken fixture per rule, each problem named with its path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.submission.layout import ScenarioPaths, SubmitterPaths
from orchestrator.submission.preflight import CheckReport
from orchestrator.submission.tree_check import check_tree
from tests.support.cli import run_cli
from tests.support.submission_fixtures import (
    SYSTEM_ID,
    make_tree,
    set_log_values,
    system_fields,
    write_scenario,
)

BASE = "closed/Acme"
SYSTEM = f"{BASE}/systems/{SYSTEM_ID}.json"
SS = f"{BASE}/results/{SYSTEM_ID}/resnet50/SingleStream"
OFFLINE = f"{BASE}/results/{SYSTEM_ID}/resnet50/Offline"


def scenario(paths: SubmitterPaths, name: str = "SingleStream") -> ScenarioPaths:
    return paths.scenario(SYSTEM_ID, name)


def edit_system(paths: SubmitterPaths, **changes: object) -> None:
    path = paths.system_json(SYSTEM_ID)
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def perf_detail(paths: SubmitterPaths, name: str = "SingleStream") -> Path:
    return scenario(paths, name).performance / "mlperf_log_detail.txt"


def accuracy_dir(paths: SubmitterPaths) -> Path:
    return scenario(paths).accuracy


def problems(report: CheckReport) -> list[tuple[str, str]]:
    return [(p.where, p.message) for p in report.problems]


def test_a_tree_that_meets_every_rule_passes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    report = check_tree(tmp_path)
    assert problems(report) == []
    assert report.ok


def test_an_inferred_edge_scenario_passes(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, scenarios=("SingleStream", "MultiStream"))
    write_scenario(scenario(paths, "Offline"), "Offline", source="SingleStream")
    assert problems(check_tree(tmp_path)) == []


Mutation = Callable[[SubmitterPaths], None]


def _big_file(paths: SubmitterPaths) -> None:
    with (paths.src / "weights.bin").open("wb") as handle:
        handle.truncate(51 * 1024 * 1024)  # sparse: no disk used


def _link(paths: SubmitterPaths) -> None:
    os.symlink("README.md", paths.src / "link.md")


def _remove(relative: str) -> Mutation:
    def mutate(paths: SubmitterPaths) -> None:
        target = paths.root / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return mutate


def _write(relative: str, text: str) -> Mutation:
    def mutate(paths: SubmitterPaths) -> None:
        (paths.root / relative).write_text(text)

    return mutate


def _perf(name: str = "SingleStream", **values: object) -> Mutation:
    return lambda paths: set_log_values(perf_detail(paths, name), **values)


def _test_perf(test: str, **values: object) -> Mutation:
    return lambda paths: set_log_values(
        scenario(paths).test_performance(test) / "mlperf_log_detail.txt", **values
    )


def _accuracy(**values: object) -> Mutation:
    return lambda paths: set_log_values(accuracy_dir(paths) / "mlperf_log_detail.txt", **values)


def _system(**changes: object) -> Mutation:
    return lambda paths: edit_system(paths, **changes)


def _infer_offline(source: str, system_type: str = "edge") -> Mutation:
    def mutate(paths: SubmitterPaths) -> None:
        shutil.rmtree(scenario(paths, "Offline").root)
        write_scenario(scenario(paths, "Offline"), "Offline", source=source)

    return mutate


def _infer_multistream_without_estimate(paths: SubmitterPaths) -> None:
    folder = scenario(paths, "MultiStream")
    shutil.rmtree(folder.root)
    write_scenario(folder, "MultiStream", source="SingleStream")
    set_log_values(folder.performance / "mlperf_log_detail.txt", early_stopping_latency_ms=0)


CASES: dict[str, tuple[Mutation, str, str]] = {
    # the MLCommons repository's own rules
    "file over 50 MB": (_big_file, f"{BASE}/src/weights.bin", "under 50 MB"),
    "symbolic link": (_link, f"{BASE}/src/link.md", "symbolic link"),
    "hidden name": (_write(f"{BASE}/src/.notes", "x"), f"{BASE}/src/.notes", "hidden"),
    "space in a name": (
        _write(f"{BASE}/src/my notes.txt", "x"),
        f"{BASE}/src/my notes.txt",
        "space",
    ),
    # the submitter's folders
    "src missing": (_remove(f"{BASE}/src"), f"{BASE}/src", "src/ must hold the code"),
    "results missing": (_remove(f"{BASE}/results"), f"{BASE}/results", "no results"),
    "system without results": (
        _write(f"{BASE}/systems/other.json", json.dumps(system_fields())),
        f"{BASE}/systems/other.json",
        "without results",
    ),
    "benchmark folder missing": (
        _remove(f"{BASE}/results/{SYSTEM_ID}/resnet50"),
        f"{BASE}/results/{SYSTEM_ID}/resnet50",
        "missing",
    ),
    # systems/<id>.json
    "system json missing": (_remove(SYSTEM), SYSTEM, "missing"),
    "system json unreadable": (_write(SYSTEM, "{not json"), SYSTEM, "unreadable"),
    "system field missing": (_system(host_storage_type=None), SYSTEM, "host_storage_type"),
    "system field empty": (_system(cooling=""), SYSTEM, "empty fields that need a value: cooling"),
    "division differs": (_system(division="open"), SYSTEM, "division 'open' differs"),
    "submitter differs": (_system(submitter="Other"), SYSTEM, "submitter 'Other' differs"),
    "status": (_system(status="unknown"), SYSTEM, "status 'unknown'"),
    "system_type": (_system(system_type="datacenter"), SYSTEM, "system_type 'datacenter'"),
    "accelerator count": (_system(accelerators_per_node="one"), SYSTEM, "not a number"),
    "is_network": (_system(is_network="true"), SYSTEM, "is_network"),
    # scenarios
    "scenario missing": (
        _remove(f"{BASE}/results/{SYSTEM_ID}/resnet50/MultiStream"),
        f"{BASE}/results/{SYSTEM_ID}/resnet50/MultiStream",
        "edge needs it",
    ),
    "scenario of another system type": (
        lambda paths: write_scenario(scenario(paths, "Server"), "Server"),
        f"{BASE}/results/{SYSTEM_ID}/resnet50/Server",
        "not a edge scenario",
    ),
    # files of a scenario
    "measurements.json missing": (
        _remove(f"{SS}/measurements.json"),
        f"{SS}/measurements.json",
        "missing",
    ),
    "measurements.json field empty": (
        _write(f"{SS}/measurements.json", json.dumps({"input_data_types": "fp32"})),
        f"{SS}/measurements.json",
        "retraining",
    ),
    "user.conf missing": (_remove(f"{SS}/user.conf"), f"{SS}/user.conf", "missing"),
    "README.md empty": (_write(f"{SS}/README.md", ""), f"{SS}/README.md", "empty"),
    "performance log missing": (
        _remove(f"{SS}/performance/run_1/mlperf_log_summary.txt"),
        f"{SS}/performance/run_1/mlperf_log_summary.txt",
        "missing",
    ),
    "accuracy.txt missing": (
        _remove(f"{SS}/accuracy/accuracy.txt"),
        f"{SS}/accuracy/accuracy.txt",
        "missing",
    ),
    "malformed detail log": (
        _write(f"{SS}/performance/run_1/mlperf_log_detail.txt", ":::MLLOG {oops\nmore\n"),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "malformed",
    ),
    # performance rules from the detail log
    "duration": (
        _perf(effective_min_duration_ms=10_000),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "600 s",
    ),
    "query count": (
        _perf(effective_min_sample_count=10),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "minimum 10 samples",
    ),
    "performance sample count": (
        _perf(effective_performance_sample_count=64),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "performance sample count 64",
    ),
    "seed": (
        _perf(effective_qsl_rng_seed=1),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "qsl_rng_seed 1",
    ),
    "verdict": (
        _perf(result_validity="INVALID"),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "INVALID",
    ),
    "loadgen error": (
        _perf(error_runtime="boom"),
        f"{SS}/performance/run_1/mlperf_log_detail.txt",
        "error",
    ),
    # edge inference
    "inferred from a scenario that cannot stand for it": (
        _infer_offline("Server"),
        f"{OFFLINE}/performance/run_1/mlperf_log_detail.txt",
        "Server logs cannot stand for Offline",
    ),
    "inferred MultiStream without an early-stopping estimate": (
        _infer_multistream_without_estimate,
        f"{BASE}/results/{SYSTEM_ID}/resnet50/MultiStream/performance/run_1/mlperf_log_detail.txt",
        "early_stopping_latency_ms",
    ),
    # accuracy
    "dataset size": (
        _accuracy(effective_accuracy_sample_count=64),
        f"{SS}/accuracy/mlperf_log_detail.txt",
        "covered 64 samples",
    ),
    "accuracy below target": (
        _write(
            f"{SS}/accuracy/accuracy.txt",
            "accuracy=70.000%, good=35000, total=50000\nhash=" + "ab" * 32 + "\n",
        ),
        f"{SS}/accuracy/mlperf_log_detail.txt",
        "below the closed target",
    ),
    "no hash line": (
        _write(f"{SS}/accuracy/accuracy.txt", "accuracy=76.500%, good=38250, total=50000\n"),
        f"{SS}/accuracy/accuracy.txt",
        "hash=",
    ),
    "accuracy log not truncated": (
        _write(f"{SS}/accuracy/mlperf_log_accuracy.json", "[" + " " * 20_000 + "]"),
        f"{SS}/accuracy/mlperf_log_accuracy.json",
        "not truncated",
    ),
    # compliance
    "compliance test missing": (_remove(f"{SS}/TEST04"), f"{SS}/TEST04", "did not run"),
    "compliance verdict file missing": (
        _remove(f"{SS}/TEST01/verify_accuracy.txt"),
        f"{SS}/TEST01/verify_accuracy.txt",
        "missing",
    ),
    "compliance failed": (
        _write(f"{SS}/TEST04/verify_performance.txt", "TEST FAIL\n"),
        f"{SS}/TEST04/verify_performance.txt",
        "did not pass",
    ),
    "compliance extra file": (
        _write(f"{SS}/TEST01/performance/run_1/notes.txt", "x"),
        f"{SS}/TEST01/performance/run_1",
        "notes.txt",
    ),
    "compliance seeds": (
        _test_perf("TEST04", effective_schedule_rng_seed=3),
        f"{SS}/TEST04/performance/run_1/mlperf_log_detail.txt",
        "schedule_rng_seed 3",
    ),
    "compliance duration": (
        _test_perf("TEST01", effective_min_duration_ms=1000),
        f"{SS}/TEST01/performance/run_1/mlperf_log_detail.txt",
        "600 s",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_names_the_path_it_concerns(tmp_path: Path, case: str) -> None:
    mutate, where, fragment = CASES[case]
    paths = make_tree(tmp_path)
    mutate(paths)
    report = check_tree(tmp_path)
    assert not report.ok
    found = problems(report)
    assert any(w == where and fragment in message for w, message in found), found


def test_not_a_tree(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")
    report = check_tree(tmp_path)
    assert problems(report) == [(".", "no closed/ or open/ folder: not a submission tree")]


def test_open_division_needs_no_compliance_nor_every_scenario(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, scenarios=("Offline",))
    (tmp_path / "closed").rename(tmp_path / "open")
    edit_system(SubmitterPaths(tmp_path, "open", paths.submitter), division="open")
    offline = SubmitterPaths(tmp_path, "open", paths.submitter).scenario(SYSTEM_ID, "Offline")
    shutil.rmtree(offline.test("TEST01"))
    shutil.rmtree(offline.test("TEST04"))
    assert problems(check_tree(tmp_path)) == []


def _check_cli(tree: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("check", str(tree), columns=80)


def test_cli_exit_status_and_80_columns(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    paths = make_tree(tree)
    passed = _check_cli(tree)
    assert passed.returncode == 0, passed.stderr
    assert "every check passed" in passed.stdout
    set_log_values(perf_detail(paths), effective_min_duration_ms=60_000)
    (scenario(paths, "Offline").test("TEST04") / "verify_performance.txt").write_text("FAIL\n")
    failed = _check_cli(tree)
    assert failed.returncode == 12, failed.stderr
    assert f"✗ {SS}\n    performance/run_1/mlperf_log_detail.txt: min_duration 60 s" in (
        failed.stdout
    )
    assert f"✗ {OFFLINE}\n    TEST04/verify_performance.txt: TEST04 did not pass" in failed.stdout
    assert "error: check failed: 2 problem(s)" in failed.stderr
    lines = (failed.stdout + failed.stderr).splitlines()
    assert all(len(line) <= 80 for line in lines if str(tree) not in line), lines
