"""The MLCommons checker behind `mlorch check --official`: reading its output, and (when
MLORCH_MLC_INFERENCE names a checkout of mlcommons/inference) running it on a tree mlorch built.
Nothing of the checkout is part of this repository."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.submission.official import (
    read_verdict,
    run_official_checker,
    summarize_errors,
)
from orchestrator.submission.tree import build_submission
from tests.support.cli import run_cli
from tests.support.submission_fixtures import FACTS, make_run

CHECKOUT = os.environ.get("MLORCH_MLC_INFERENCE")


def test_verdict_and_error_lines_are_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    base = f"{tree}/closed/Acme/results/box/resnet50"
    output = "\n".join(
        [
            "[2026-01-01 10:00:00,000 main.py:10 INFO] Loading things",
            f"[2026-01-01 10:00:00,001 perf.py:202 ERROR] {base}/Offline/performance/run_1/"
            "mlperf_log_detail.txt duration too short",
            f"[2026-01-01 10:00:00,002 perf.py:202 ERROR] {base}/Server/performance/run_1/"
            "mlperf_log_detail.txt duration too short",
            f"[2026-01-01 10:00:00,003 base.py:58 ERROR] Some checks failed for: {base}/Server/",
            "[2026-01-01 10:00:00,004 perf.py:269 ERROR] Early stopping was not met",
            "[2026-01-01 10:00:00,005 main.py:361 ERROR] SUMMARY: submission has errors",
        ]
    )
    verdict = read_verdict(("checker",), 1, output, 60)
    assert not verdict.passed
    assert verdict.summary == "SUMMARY: submission has errors"
    assert verdict.errors[0].startswith("perf.py:202: ")
    lines, left_out = summarize_errors(verdict.errors, tree)
    assert lines == [
        "<scenario>/performance/run_1/mlperf_log_detail.txt duration too short [Offline, Server]",
        "Early stopping was not met",
    ]
    assert left_out == 2  # the "Some checks failed" and SUMMARY lines


def test_a_passing_and_a_killed_checker() -> None:
    passed = read_verdict(("checker",), 0, "[x main.py:1 INFO] SUMMARY: submission looks OK", 9)
    assert passed.passed
    assert passed.errors == ()
    killed = read_verdict(("checker",), None, "", 9)
    assert not killed.passed
    assert "killed after 9 s" in killed.summary


def test_a_folder_without_the_checker_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tools/submission"):
        run_official_checker(tmp_path, tmp_path)


def test_cli_refuses_official_on_a_spec(tmp_path: Path) -> None:
    result = run_cli("check", "reference", "--device", "cpu", "--official", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--official checks a tree" in result.stderr


# Errors a quick run on the synthetic assets cannot avoid; anything else would be mlorch's.
EXPECTED = (
    "performance_sample_count, found 64",
    "Test duration less than 600s",
    "Early stopping condition was not met",
    "does not cover all dataset",
)


@pytest.mark.skipif(not CHECKOUT, reason="MLORCH_MLC_INFERENCE (a checkout) is not set")
def test_official_checker_accepts_the_layout_of_a_golden_tree(golden: Path, tmp_path: Path) -> None:
    assert CHECKOUT is not None
    runs = tmp_path / "runs"
    runs.mkdir()
    facts = tmp_path / "facts.toml"
    facts.write_text(FACTS)
    tree = tmp_path / "tree"
    run = make_run(golden, runs)
    build_submission(
        [str(run)], tree, division="open", submitter="Acme", facts_file=facts, runs_dir=runs
    )
    verdict = run_official_checker(Path(CHECKOUT), tree, timeout_s=300)
    assert verdict.returncode is not None, verdict.output_tail
    assert "SUMMARY" in verdict.summary, verdict.output_tail
    lines, _ = summarize_errors(verdict.errors, tree)
    ours = [line for line in lines if not any(text in line for text in EXPECTED)]
    assert ours == [], ours
    shutil.rmtree(tree)
