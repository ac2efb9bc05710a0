"""What people read: in 80 columns and in a pipe no identifier or hint is cut, no word broken."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli.tables import (
    doctor_list,
    doctor_table,
    results_legend,
    results_list,
    results_table,
    runs_list,
    runs_table,
)
from orchestrator.console import Terminal
from orchestrator.errors import EngineUnavailable
from orchestrator.host.doctor import Check
from orchestrator.results.loadgen_log import result_from_logs
from orchestrator.results.manifest import AuditRecord, RunListing, RunManifest, TestRecord
from orchestrator.running.up import RunOutcome

BOX_DRAWING = re.compile("[\u2500-\u257f]")


def _consoles(width: int) -> list[Console]:
    """A pipe (not a terminal) and a terminal, both `width` columns, recording plain text."""
    return [
        Console(file=io.StringIO(), width=width, record=True),
        Console(file=io.StringIO(), width=width, record=True, force_terminal=True),
    ]


def _render(console: Console, show: Callable[[Terminal], None]) -> str:
    """What `show` prints through the Terminal gateway onto `console`, as plain text."""
    terminal = Terminal()
    terminal.out = console
    show(terminal)
    return console.export_text()


def _tokens(text: str) -> set[str]:
    return set(BOX_DRAWING.sub(" ", text).split())


def assert_readable(text: str, width: int, whole: list[str], words_of: list[str]) -> None:
    """`whole` strings each appear unbroken on one line; every word of `words_of` appears whole."""
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    for item in whole:
        assert any(item in line for line in text.splitlines()), item
    tokens = _tokens(text)
    for sentence in words_of:
        for word in sentence.split():
            assert word in tokens, (word, text)


LISTINGS = [
    RunListing("20261123-101010-reference-ab12", "complete", "reference", "cpu", "quick",
               "2026-11-23T10:10:10+00:00", 8, Path("runs/a")),
    RunListing("20261123-235959-dell-trt-f00d", "interrupted", "dell-trt", "cuda", "default",
               "2026-11-23T23:59:59+00:00", 1, Path("runs/b")),
]  # fmt: skip


@pytest.mark.parametrize("console", _consoles(80))
def test_runs_keep_whole_ids_in_80_columns(console: Console) -> None:
    text = _render(console, lambda t: t.table(runs_table(LISTINGS), narrow=runs_list(LISTINGS)))
    assert_readable(
        text,
        80,
        whole=[item.run_id for item in LISTINGS] + [item.started for item in LISTINGS],
        words_of=["complete interrupted reference dell-trt cuda quick default"],
    )


def test_runs_table_when_wide() -> None:
    console = Console(file=io.StringIO(), width=200, record=True)
    text = _render(console, lambda t: t.table(runs_table(LISTINGS), narrow=runs_list(LISTINGS)))
    assert "┃ run" in text  # the table, since it fits
    assert_readable(text, 200, whole=[item.run_id for item in LISTINGS], words_of=[])


CHECKS = [
    Check("docker engine", "fail",
          "cannot reach the Docker engine: Error while fetching server API version: "
          "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
          EngineUnavailable.default_hint),
    Check("NVIDIA runtime", "warn", "runtimes: io.containerd.runc.v2, runc",
          "install nvidia-container-toolkit and run `nvidia-ctk runtime configure`"),
    Check("base image nvcr.io/nvidia/tensorrt:24.12-py3", "warn",
          "not present (pulled on first `up`)", "offline: `up` falls back to mlorch/base:bookworm"),
    Check("free disk", "ok", "123.4 GiB free at /var/cache/mlorch-with-a-long-path"),
]  # fmt: skip


@pytest.mark.parametrize("console", [*_consoles(80), *_consoles(200)])
def test_doctor_never_cuts_hints_or_runtimes(console: Console) -> None:
    text = _render(console, lambda t: t.table(doctor_table(CHECKS), narrow=doctor_list(CHECKS)))
    assert_readable(
        text,
        console.width,
        whole=["io.containerd.runc.v2", "nvcr.io/nvidia/tensorrt:24.12-py3"],
        words_of=[c.hint or "" for c in CHECKS] + [c.detail for c in CHECKS],
    )


def _outcome(golden: Path) -> RunOutcome:
    logs = golden / "loadgen"
    results = [
        result_from_logs(logs / "SingleStream-performance", "SingleStream", "PerformanceOnly"),
        result_from_logs(logs / "MultiStream-performance", "MultiStream", "PerformanceOnly"),
        result_from_logs(logs / "Server-performance", "Server", "PerformanceOnly"),
        result_from_logs(logs / "Offline-performance", "Offline", "PerformanceOnly"),
        result_from_logs(logs / "Offline-performance-error", "Offline", "PerformanceOnly"),
        replace(
            result_from_logs(logs / "Offline-accuracy", "Offline", "AccuracyOnly"), value=100.0
        ),
    ]
    # the largest figures a fast GPU run shows must fit as well
    results[3] = replace(results[3], value=123_456.789)
    manifest = RunManifest(
        run_id="20261123-101010-reference-ab12",
        run_dir=Path("runs/20261123-101010-reference-ab12"),
        mlorch_version="0",
        spec={"backend": "reference", "device": "cpu", "profile": "quick"},
        host={},
        assets={"synthetic": True},
        invalid_because=[
            "quick: --quick profile: shortened durations and query counts",
            "duration: min_duration 1.5 s, the rules need 600 s (SingleStream, MultiStream, "
            "Server, Offline)",
        ],
    )
    return RunOutcome(manifest, results)


@pytest.mark.parametrize("console", _consoles(80))
def test_results_table_fits_80_columns_with_its_legend(golden: Path, console: Console) -> None:
    outcome = _outcome(golden)
    text = _render(
        console,
        lambda t: t.table(
            results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
        ),
    )
    assert "┃ scenario" in text  # the table itself fits: no list fallback needed
    legend = [line.plain for line in results_legend(outcome)]
    assert_readable(
        text,
        80,
        whole=[outcome.manifest.run_id, "123,456.789", "completed samples/s", "p99 latency (ms)"],
        words_of=legend,
    )
    rows = {
        line.split("│")[1].strip() + " " + line.split("│")[2].strip(): line.split("│")[5].strip()
        for line in text.splitlines()
        if line.startswith("│")
    }
    assert rows["SingleStream performance"] == "INVAL"
    assert rows["Offline accuracy"] == "acc"
    assert list(rows.values()).count("ERR") == 1  # the VALID-but-errored golden
    assert "SingleStream performance INVAL: early stopping not satisfied" in legend
    assert "Server performance INVAL: performance constraints, early stopping not satisfied" in (
        legend
    )
    assert "Offline performance ERR: error_runtime: Attempted to complete a sample twice." in (
        legend
    )
    assert "NOT submission-valid (closed division):" in legend
    assert "  quick: --quick profile: shortened durations and query counts" in legend
    # SingleStream/MultiStream: the early-stopping estimate, the raw percentile on the next row
    lines = text.splitlines()
    single = next(i for i, line in enumerate(lines) if "SingleStream │ performance" in line)
    assert "early-stopping p90 (ms)" in lines[single]
    assert "raw p90 latency (ms)" in lines[single + 1]
    assert "111.381" in lines[single + 1]  # the golden log's p90 (its estimate is 0: none)


def test_results_list_when_narrower_than_the_table(golden: Path) -> None:
    outcome = _outcome(golden)
    console = Console(file=io.StringIO(), width=60, record=True)
    text = _render(
        console,
        lambda t: t.table(
            results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
        ),
    )
    assert "┃" not in text
    assert_readable(text, 60, whole=["SingleStream performance"], words_of=["INVAL ERR acc"])


@pytest.mark.parametrize("console", _consoles(80))
def test_audit_rows_and_their_reasons_fit_80_columns(
    golden: Path, tmp_path: Path, console: Console
) -> None:
    from orchestrator.results.audits import AuditTest
    from orchestrator.results.compliance import verify_audit
    from orchestrator.running.up import AuditOutcome

    scenario_dir = tmp_path / "SingleStream"
    shutil.copytree(golden / "compliance" / "SingleStream", scenario_dir)
    # TEST04 made too fast: 1e9 / latency over 20 % above the performance run's
    summary = scenario_dir / "compliance" / "TEST04" / "mlperf_log_summary.txt"
    summary.write_text(
        re.sub(
            r"(Early stopping 90.0th percentile estimate): \d+", r"\1: 1000", summary.read_text()
        )
    )
    audits = []
    for test in AuditTest:
        folder = scenario_dir / "compliance" / test.value
        verification = verify_audit(test, "SingleStream", scenario_dir, folder, "float32")
        result = result_from_logs(folder, "SingleStream", "PerformanceOnly")
        audits.append(AuditOutcome(result, verification))
    outcome = _outcome(golden)
    outcome = RunOutcome(outcome.manifest, outcome.results, audits)
    outcome.manifest.spec["compliance"] = True
    outcome.manifest.compliance = [
        AuditRecord(scenario="Offline", test="TEST01", passed=False, status="skipped",
                    reasons=["needs the accuracy run to compare responses with (-m AccuracyOnly)"]),
    ]  # fmt: skip
    text = _render(
        console,
        lambda t: t.table(
            results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
        ),
    )
    assert "┃ scenario" in text
    legend = [line.plain for line in results_legend(outcome)]
    assert_readable(text, 80, whole=["TEST01", "TEST04"], words_of=legend)
    rows = {
        line.split("│")[1].strip() + " " + line.split("│")[2].strip(): line.split("│")[5].strip()
        for line in text.splitlines()
        if line.startswith("│")
    }
    assert rows["SingleStream TEST04"] == "FAIL"
    assert any(line.startswith("SingleStream TEST04 FAIL: audit early-stopping latency 0.001 ms")
               for line in legend)  # fmt: skip
    assert "FAIL: compliance audit failed verification (why below)" in " ".join(legend)
    assert (
        "compliance TEST01 not run: it needs the accuracy run to compare responses with "
        "(-m AccuracyOnly)" in legend
    )


@pytest.mark.parametrize("width", [80, 60])
def test_an_accuracy_run_shows_its_fp32_agreement(golden: Path, width: int) -> None:
    """dell-trt's accuracy runs: agreement with FP32 beside the accuracy, table or list."""
    outcome = _outcome(golden)
    outcome.manifest.tests.append(
        TestRecord(
            scenario="Offline",
            mode="AccuracyOnly",
            dir="dell-trt/Offline/accuracy",
            status="ok",
            result={"fp32_agreement": {"agree": 498, "total": 500, "percent": 99.6}},
        )
    )
    console = Console(file=io.StringIO(), width=width, record=True)
    text = _render(
        console,
        lambda t: t.table(
            results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
        ),
    )
    if width == 80:
        lines = text.splitlines()
        accuracy = next(i for i, line in enumerate(lines) if "Offline      │ accuracy" in line)
        assert "FP32 agreement (%)" in lines[accuracy + 1]
        assert "99.600" in lines[accuracy + 1]
    else:
        assert "(FP32 agreement 99.600 %)" in " ".join(text.split())
    assert text.count("FP32 agreement") == 1  # only the run that has one


def test_an_offline_run_that_outran_its_estimate_says_what_to_raise(golden: Path) -> None:
    outcome = _outcome(golden)
    offline = outcome.results[3]
    outcome.results[3] = replace(offline, valid=False, unmet=("min duration",), value=41.2)
    legend = [line.plain for line in results_legend(outcome)]
    assert (
        "Offline performance INVAL: min duration not satisfied; the SUT outran its expected "
        "rate: set [run.tuning] offline_expected_qps above 41" in legend
    )


def test_a_non_int8_compute_layer_is_named_in_the_legend() -> None:
    from orchestrator.cli.tables import _non_int8_lines

    recipe = {
        "guards": [
            {"encoding": "s8s8", "fraction": 1.0},
            {"engine": "abc123", "layer_precisions": {"non_int8_compute": []}},
            {"engine": "def456", "layer_precisions": {"non_int8_compute": ["conv_17", "fc"]}},
        ]
    }
    lines = [line.plain for line in _non_int8_lines(recipe)]
    assert lines == [
        "engine def456: not INT8: conv_17, fc (TensorRT ran these compute layers in another "
        "precision)"
    ]
    assert _non_int8_lines(None) == []
