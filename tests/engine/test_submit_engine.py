"""`mlorch submit` and `mlorch check` on the session's real quick run (real containers and
LoadGen): the tree file by file against the v6.1 layout, then the preflight's verdict on it.
With MLORCH_MLC_INFERENCE (a checkout of mlcommons/inference) the official checker runs too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.submission.layout import LOG_FILES, SCENARIOS_BY_TYPE, SubmitterPaths
from tests.engine.conftest import mlorch
from tests.support.submission_fixtures import CI_HOST_FACTS

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def submitted(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    result, runs = quick_run
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = sorted(p for p in runs.iterdir() if (p / "manifest.json").is_file())
    work = tmp_path_factory.mktemp("submit")
    facts = work / "facts.toml"
    facts.write_text(CI_HOST_FACTS)
    tree = work / "tree"
    done = mlorch(
        "submit", str(run), "--output", str(tree), "--submitter", "Acme",
        "--system-facts", str(facts), cwd=work, env={"COLUMNS": "80"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return run, tree, done


def test_tree_follows_the_layout_file_by_file(
    submitted: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    run, tree, _ = submitted
    manifest = json.loads((run / "manifest.json").read_text())
    paths = SubmitterPaths(tree, "closed", "Acme")
    (system,) = [p.stem for p in paths.systems.glob("*.json")]
    assert system.endswith("-cpu-reference")
    fields = json.loads(paths.system_json(system).read_text())
    assert all(str(value).strip() for value in fields.values())
    assert fields["system_type"] == "datacenter,edge"  # the run has Server
    assert (paths.src / "README.md").stat().st_size > 0
    expected: set[str] = set()
    for scenario in SCENARIOS_BY_TYPE["datacenter,edge"]:
        folder = paths.scenario(system, scenario)
        expected |= {str(path.relative_to(tree)) for path in folder.required_files()}
        source = run / "reference" / scenario
        for name in LOG_FILES:  # the logs are the run's, byte for byte
            copied = (folder.performance / name).read_bytes()
            assert copied == (source / "performance" / name).read_bytes()
        assert folder.user_conf.read_bytes() == (source / "user.conf").read_bytes()
        assert (folder.accuracy / "mlperf_log_accuracy.json").stat().st_size <= 10 * 1024
        assert "hash=" in (folder.accuracy / "accuracy.txt").read_text()
        assert json.loads(folder.measurements.read_text())["retraining"] == "No"
        assert manifest["run_id"] in folder.readme.read_text()
    files = {
        str(p.relative_to(tree))
        for p in tree.rglob("*")
        if p.is_file() and "telemetry" not in p.parts
    }
    assert files == expected | {
        str(paths.system_json(system).relative_to(tree)),
        str((paths.src / "README.md").relative_to(tree)),
    }
    # mlorch's telemetry sits in sub-folders the checker does not list
    assert list(tree.rglob("telemetry/host.csv"))


def test_check_names_the_quick_runs_problems_with_their_paths(
    submitted: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    _, tree, _ = submitted
    result = mlorch("check", str(tree), cwd=tree.parent, env={"COLUMNS": "80"})
    assert result.returncode == 12, result.stderr
    out = result.stdout
    assert "performance/run_1/mlperf_log_detail.txt: min_duration 1.5 s" in out
    assert "accuracy/mlperf_log_detail.txt: the accuracy run covered 64 samples" in out
    for scenario in SCENARIOS_BY_TYPE["datacenter,edge"]:
        assert f"/resnet50/{scenario}" in out
    assert "systems/" not in out  # every system field is there
    lines = (result.stdout + result.stderr).splitlines()
    assert all(len(line) <= 80 for line in lines if str(tree) not in line), lines


@pytest.mark.skipif(
    not os.environ.get("MLORCH_MLC_INFERENCE"), reason="MLORCH_MLC_INFERENCE is not set"
)
def test_official_checker_on_the_tree(
    submitted: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    _, tree, _ = submitted
    checkout = os.environ["MLORCH_MLC_INFERENCE"]
    result = mlorch("check", str(tree), "--official", checkout, cwd=tree.parent)
    assert result.returncode == 12
    assert "MLCommons checker: SUMMARY: submission has errors" in result.stdout
    assert "Test duration less than 600s" in result.stdout  # a quick run never is 600 s
    assert "systems/" not in result.stdout.split("MLCommons checker")[1]
