"""`mlorch up reference --quick --compliance -s SingleStream`: TEST01 and TEST04 each run as their
own LoadGen test in their own container (audit.config mounted read-only), verified on the host
against the scenario's performance and accuracy runs, recorded in the manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.results.audits import AuditTest, render_audit_config
from orchestrator.results.compliance import verify_audit
from tests.engine.conftest import mlorch

pytestmark = pytest.mark.engine

LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "container.log", "harness.json")


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, engine: DockerEngine
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("compliance")
    result = mlorch(
        "up", "reference", "--device", "cpu", "--quick", "--compliance", "-s", "SingleStream",
        cwd=work, env={"COLUMNS": "80"},
    )  # fmt: skip
    manifests = sorted((work / "runs").glob("*/manifest.json"))
    assert len(manifests) == 1, result.stderr[-4000:]
    return result, manifests[0].parent, json.loads(manifests[0].read_text())


def test_each_audit_ran_in_its_own_container_with_its_audit_config(
    audited: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    result, run_dir, manifest = audited
    assert result.returncode == 0, result.stderr[-4000:]  # a FAIL verdict is no crash
    assert manifest["status"] == "complete"
    assert [(t["scenario"], t["mode"]) for t in manifest["tests"]] == [
        ("SingleStream", "PerformanceOnly"),
        ("SingleStream", "AccuracyOnly"),
    ]
    scenario_dir = run_dir / "reference" / "SingleStream"
    for test in AuditTest:
        folder = scenario_dir / "compliance" / test.value
        assert (folder / "audit.config").read_text() == render_audit_config(test)
        for name in LOGS:
            assert (folder / name).stat().st_size > 0, folder / name
        harness = json.loads((folder / "harness.json").read_text())
        assert harness["mode"] == "PerformanceOnly"
        assert harness["audit_config"] == "/config/audit.config"  # the read-only mount
        assert "Found Audit Config file" in (folder / "mlperf_log_detail.txt").read_text()
        assert (folder / "verify_performance.txt").is_file()
        assert (folder / "verify_accuracy.txt").is_file() is (test is AuditTest.TEST01)
    responses = json.loads(
        (scenario_dir / "compliance" / "TEST01" / "mlperf_log_accuracy.json").read_text()
    )
    assert responses  # TEST01 logs the sampled responses in performance mode
    assert "[3/4] SingleStream TEST01" in result.stderr
    assert "[4/4] SingleStream TEST04" in result.stderr


def test_verdicts_are_recorded_and_reproducible(
    audited: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    _, run_dir, manifest = audited
    records = {record["test"]: record for record in manifest["compliance"]}
    assert set(records) == {"TEST01", "TEST04"}
    copy = tmp_path / "SingleStream"
    shutil.copytree(run_dir / "reference" / "SingleStream", copy)
    for test in AuditTest:
        record = records[test.value]
        assert record["scenario"] == "SingleStream"
        assert record["status"] == "verified"
        assert record["dir"] == f"reference/SingleStream/compliance/{test.value}"
        folder = run_dir / record["dir"]
        saved = json.loads((folder / "verification.json").read_text())
        assert saved["passed"] is record["passed"]
        assert saved["reasons"] == record["reasons"]
        assert bool(saved["reasons"]) is not saved["passed"]
        assert saved["checks"]["audit_config_applied"] is True  # LoadGen took the mounted file
        last = (folder / "verify_performance.txt").read_text().rstrip().splitlines()[-1]
        assert last.startswith(
            "TEST PASS" if saved["checks"]["performance"]["passed"] else "TEST FAIL"
        )
        # verifying again on the host gives the same verdict
        again = verify_audit(
            test, "SingleStream", copy, copy / "compliance" / test.value, "float32"
        )
        assert again.to_dict() == saved
    # the same model on the same samples: every logged response equals the accuracy run's
    accuracy = records["TEST01"]["checks"]["accuracy"]
    assert accuracy["passed"] is True
    assert accuracy["num_perf_log_qsl_idx_match"] > 0
    assert accuracy["num_perf_log_data_mismatch"] == 0
    # validity lists each audit that did not pass
    for test, record in records.items():
        if not record["passed"]:
            assert any(
                reason.startswith(f"compliance: {test} failed")
                for reason in manifest["invalid_because"]
            )


def test_results_table_shows_the_audit_rows(
    audited: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    result, _, manifest = audited
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for record in manifest["compliance"]:
        code = "PASS" if record["passed"] else "FAIL"
        assert any(record["test"] in row and code in row for row in rows), result.stdout
