"""`mlorch compare` and the multi-backend `mlorch up A B` at the CLI edge (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import NO_ENGINE, assert_one_error, mlorch
from tests.support.report_fixtures import RUN_A, RUN_B, RUN_C


def test_compare_writes_the_report(golden: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = mlorch(
        "compare", RUN_A, RUN_B, "--runs-dir", str(golden / "runs"), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "At a glance" in result.stdout
    assert RUN_A in result.stdout
    assert RUN_B in result.stdout
    assert f"report: {out / 'report.html'}" in result.stderr
    assert {p.name for p in out.iterdir()} == {
        "report.html",
        "report.md",
        "plots",
        "comparison.json",
    }
    assert len(list((out / "plots").glob("*.svg"))) == 12  # 4 scenarios × 3 plots


def test_compare_takes_folders_and_defaults_the_output(golden: Path, tmp_path: Path) -> None:
    runs = golden / "runs"
    result = mlorch(
        "compare",
        str(runs / RUN_A),
        str(runs / RUN_C),
        "--runs-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [folder] = (tmp_path / "runs").glob("compare-*")
    assert (folder / "report.html").is_file()
    assert "interrupted" in result.stdout


def test_compare_unknown_run(golden: Path) -> None:
    result = mlorch(
        "compare", RUN_A, "20990101-000000-nope-0000", "--runs-dir", str(golden / "runs")
    )
    assert_one_error(result, 2, "unknown run '20990101-000000-nope-0000'")
    assert "mlorch runs" in result.stderr


def test_compare_needs_two_runs(golden: Path) -> None:
    result = mlorch("compare", RUN_A, "--runs-dir", str(golden / "runs"))
    assert_one_error(result, 2, "compare needs at least two runs")


def test_up_several_backends_validates_all_first(tmp_path: Path) -> None:
    result = mlorch("up", "reference", "refrence", "--device", "cpu", env=NO_ENGINE, cwd=tmp_path)
    assert_one_error(result, 2, "unknown backend 'refrence'")
    assert not (tmp_path / "runs").exists()  # nothing started


def test_up_several_backends_reports_every_failure(tmp_path: Path) -> None:
    """Without an engine both runs fail; each is recorded, the comparison is still written and
    the exit code is the first failure's (3: engine unavailable)."""
    result = mlorch(
        "up", "reference", "reference", "--device", "cpu", "--quick", env=NO_ENGINE, cwd=tmp_path
    )
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, result.stderr  # each backend as it fails, then the summary
    assert errors[-1] == "error: 2 of 2 backends failed: reference, reference (errors above)"
    assert errors[0] == errors[1]
    assert errors[0].startswith("error: reference: cannot reach the Docker engine")
    assert "backend 1/2: reference" in result.stderr
    assert "backend 2/2: reference" in result.stderr
    manifests = sorted((tmp_path / "runs").glob("*/manifest.json"))
    assert len(manifests) == 2
    assert {json.loads(m.read_text())["status"] for m in manifests} == {"failed"}
    [report] = (tmp_path / "runs").glob("compare-*/report.html")
    page = report.read_text()
    for manifest in manifests:
        assert manifest.parent.name in page
    assert "not reached" in page
    assert f"hint: the comparison shows what every backend did: {report.relative_to(tmp_path)}" in (
        result.stderr
    )


def test_up_one_backend_is_unchanged(tmp_path: Path) -> None:
    result = mlorch("up", "reference", "--device", "cpu", "--quick", env=NO_ENGINE, cwd=tmp_path)
    assert_one_error(result, 3, "cannot reach the Docker engine")
    assert "backend 1/" not in result.stderr
    assert not list((tmp_path / "runs").glob("compare-*"))
