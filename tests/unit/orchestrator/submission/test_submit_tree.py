"""`mlorch submit` from run folders built from golden LoadGen logs: layout file by file, system
fields (asked for by name, never a dummy), two backends side by side, and the atomic swap."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ResultError
from orchestrator.submission import tree as tree_module
from orchestrator.submission.layout import (
    LOG_FILES,
    SCENARIOS_BY_TYPE,
    ScenarioPaths,
    SubmitterPaths,
)
from orchestrator.submission.system import SYSTEM_FIELDS, MissingSystemFields
from orchestrator.submission.tree import build_submission
from orchestrator.submission.tree_check import check_tree
from tests.support.submission_fixtures import FACTS, SYSTEM, make_run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def facts(tmp_path: Path) -> Path:
    path = tmp_path / "facts.toml"
    path.write_text(FACTS)
    return path


def submit(
    refs: list[Path], output: Path, facts: Path | None, division: str = "closed"
) -> tree_module.SubmissionOutcome:
    return build_submission(
        [str(ref) for ref in refs],
        output,
        division=division,
        submitter="Acme",
        facts_file=facts,
        runs_dir=output.parent,
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.subprocess
def test_tree_holds_every_file_of_the_layout_and_nothing_else(
    golden: Path, runs: Path, facts: Path, tmp_path: Path
) -> None:
    run = make_run(golden, runs)
    output = tmp_path / "tree"
    outcome = submit([run], output, facts)
    system_id = "lab1-cpu-reference"
    assert [s.description.system_id for s in outcome.plan.systems] == [system_id]
    base = "closed/Acme"
    expected = {f"{base}/systems/{system_id}.json", f"{base}/src/README.md"}
    for scenario in SCENARIOS_BY_TYPE["datacenter,edge"]:
        folder = f"{base}/results/{system_id}/resnet50/{scenario}"
        expected |= {f"{folder}/{name}" for name in ("measurements.json", "user.conf", "README.md")}
        expected |= {f"{folder}/performance/run_1/{name}" for name in LOG_FILES}
        expected |= {
            f"{folder}/accuracy/{name}"
            for name in (*LOG_FILES, "mlperf_log_accuracy.json", "accuracy.txt")
        }
    assert set(snapshot(output)) == expected
    # copied byte for byte from the run, except the truncated accuracy log and its hash line
    scenario = ScenarioPaths(output / base / "results" / system_id / "resnet50" / "Offline")
    source = run / "reference" / "Offline"
    for name in LOG_FILES:
        assert (scenario.performance / name).read_bytes() == (
            source / "performance" / name
        ).read_bytes()
    assert (scenario.user_conf).read_bytes() == (source / "user.conf").read_bytes()
    full = (source / "accuracy" / "mlperf_log_accuracy.json").read_bytes()
    assert (
        f"hash={hashlib.sha256(full).hexdigest()}"
        in (scenario.accuracy / "accuracy.txt").read_text()
    )
    measurements = json.loads(scenario.measurements.read_text())
    assert measurements["input_data_types"] == "fp32"
    assert "synthetic" in measurements["starting_weights_filename"]
    readme = scenario.readme.read_text()
    assert "mlorch up reference" in readme
    assert "NOT" in readme or "not" in readme  # says the run is not submission-valid
    # the tree's layout is right: what check finds are the quick run's rule problems only
    layout_words = ("missing", "empty", "unreadable", "not a JSON", "hidden", "link")
    report = check_tree(output)
    assert not [p for p in report.problems if any(w in p.message for w in layout_words)
                and "TEST0" not in p.where]  # fmt: skip


def test_a_missing_system_field_is_asked_for_by_name(
    golden: Path, runs: Path, tmp_path: Path
) -> None:
    run = make_run(golden, runs)
    output = tmp_path / "tree"
    with pytest.raises(MissingSystemFields) as caught:
        submit([run], output, None)
    message = caught.value.message
    for name in ("status", "cooling", "host_memory_configuration"):
        assert name in message
        assert f'{name} = ""' in caught.value.details  # the TOML to fill in
    assert "host_processor_model_name" not in message  # detected
    assert not output.exists()  # nothing written


@pytest.mark.subprocess
def test_supplied_facts_fill_the_system_json_and_nothing_is_a_dummy(
    golden: Path, runs: Path, facts: Path, tmp_path: Path
) -> None:
    run = make_run(golden, runs)
    output = tmp_path / "tree"
    submit([run], output, facts)
    system = json.loads((output / "closed/Acme/systems/lab1-cpu-reference.json").read_text())
    assert list(system) == list(SYSTEM_FIELDS)
    assert all(isinstance(v, str) and v.strip() for v in system.values()), system
    lowered = " ".join(system.values()).lower()
    for dummy in ("dummy", "tbd", "unknown", "todo", "xxx"):
        assert dummy not in lowered
    assert system["status"] == "available"
    assert system["cooling"] == "air"
    assert system["host_memory_configuration"] == "12x 64 GB DDR5-4800"
    assert system["host_processor_model_name"] == SYSTEM["cpu_model"]
    assert system["host_processor_core_count"] == "96"
    assert system["system_name"].startswith("Dell Inc. PowerEdge R7615")
    assert system["accelerators_per_node"] == "0"
    assert system["framework"].startswith("onnxruntime 1.31.1")
    assert system["division"] == "closed"
    assert system["submitter"] == "Acme"


@pytest.mark.subprocess
def test_reference_and_dell_trt_sit_side_by_side(
    golden: Path, runs: Path, facts: Path, tmp_path: Path
) -> None:
    reference = make_run(golden, runs)
    dell = make_run(golden, runs, backend="dell-trt")
    output = tmp_path / "tree"
    outcome = submit([reference, dell], output, facts)
    ids = sorted(s.description.system_id for s in outcome.plan.systems)
    assert ids == ["lab1-cpu-dell-trt", "lab1-cpu-reference"]
    paths = SubmitterPaths(output, "closed", "Acme")
    for system_id in ids:
        assert paths.system_json(system_id).is_file()
        for scenario in SCENARIOS_BY_TYPE["datacenter,edge"]:
            assert paths.scenario(system_id, scenario).measurements.is_file()
    dell_measurements = json.loads(
        paths.scenario("lab1-cpu-dell-trt", "Offline").measurements.read_text()
    )
    assert dell_measurements["input_data_types"] == "int8"
    src = (paths.src / "README.md").read_text()
    assert "`dell-trt`" in src
    assert "`reference`" in src


@pytest.mark.subprocess
def test_a_second_submit_merges_and_keeps_the_other_system(
    golden: Path, runs: Path, facts: Path, tmp_path: Path
) -> None:
    output = tmp_path / "tree"
    submit([make_run(golden, runs)], output, facts)
    outcome = submit([make_run(golden, runs, backend="dell-trt")], output, facts)
    assert outcome.tree.replaced
    systems = sorted(p.name for p in (output / "closed/Acme/results").iterdir())
    assert systems == ["lab1-cpu-dell-trt", "lab1-cpu-reference"]
    src = (output / "closed/Acme/src/README.md").read_text()
    assert "`dell-trt`" in src
    assert "`reference`" in src


@pytest.mark.subprocess
@pytest.mark.parametrize("fault", [ResultError("disk went away"), KeyboardInterrupt()])
def test_a_failed_merge_leaves_the_previous_tree_intact(
    golden: Path,
    runs: Path,
    facts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: BaseException,
) -> None:
    output = tmp_path / "tree"
    submit([make_run(golden, runs)], output, facts)
    before = snapshot(output)
    dell = make_run(golden, runs, backend="dell-trt")
    calls = {"n": 0}
    real_copy = tree_module._copy_files

    def failing_copy(source: Path, target: Path, names: Any, *, required: bool = True) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # in the middle of the second system's scenarios
            raise fault
        real_copy(source, target, names, required=required)

    monkeypatch.setattr(tree_module, "_copy_files", failing_copy)
    with pytest.raises(type(fault)):
        submit([dell], output, facts)
    assert snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tree")) == [
        ".tree.lock"
    ]  # no half-written staging folder left beside it


@pytest.mark.subprocess
def test_a_failed_swap_puts_the_previous_tree_back(
    golden: Path, runs: Path, facts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where renameat2(RENAME_EXCHANGE) is missing: rename aside, rename in; the second rename
    failing must restore the first."""
    output = tmp_path / "tree"
    submit([make_run(golden, runs)], output, facts)
    before = snapshot(output)
    monkeypatch.setattr(tree_module, "_exchange", lambda first, second: False)
    real_rename = Path.rename

    def rename(self: Path, target: Any) -> Path:
        if self.name.startswith(".tree.partial-"):
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        submit([make_run(golden, runs, backend="dell-trt")], output, facts)
    monkeypatch.undo()
    assert snapshot(output) == before
