"""Detail/summary parsing on golden LoadGen 6.0.17 logs from real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ResultError
from orchestrator.results.loadgen_log import (
    parse_detail_text,
    parse_summary_text,
    result_from_logs,
    unmet_constraints,
)


@pytest.mark.parametrize(
    ("folder", "scenario", "metric", "unit", "valid"),
    [
        ("SingleStream-performance", "SingleStream", "p90 latency", "ms", False),
        ("MultiStream-performance", "MultiStream", "p99 latency", "ms", None),
        ("Server-performance", "Server", "completed samples/s", "samples/s", False),
        ("Offline-performance", "Offline", "samples/s", "samples/s", True),
    ],
)
def test_performance_results(
    golden: Path, folder: str, scenario: str, metric: str, unit: str, valid: bool | None
) -> None:
    result = result_from_logs(golden / "loadgen" / folder, scenario, "PerformanceOnly")
    assert result.metric == metric
    assert result.unit == unit
    assert result.loadgen_version == "6.0.17"
    assert result.value is not None
    assert result.value > 0
    if valid is not None:
        assert result.valid is valid
    assert result.errors == ()


def test_values_match_the_summary(golden: Path) -> None:
    folder = golden / "loadgen" / "SingleStream-performance"
    result = result_from_logs(folder, "SingleStream", "PerformanceOnly")
    summary = parse_summary_text((folder / "mlperf_log_summary.txt").read_text())
    p90_ns = int(summary["90.0th percentile latency (ns)"])
    assert result.value == pytest.approx(p90_ns / 1e6)
    assert summary["Result is"] == "INVALID"
    assert result.unmet == ("early stopping",)


def test_server_unmet_constraints(golden: Path) -> None:
    text = (golden / "loadgen" / "Server-performance" / "mlperf_log_summary.txt").read_text()
    assert set(unmet_constraints(parse_summary_text(text))) == {
        "performance constraints",
        "early stopping",
    }


def test_offline_summary_value(golden: Path) -> None:
    folder = golden / "loadgen" / "Offline-performance"
    summary = parse_summary_text((folder / "mlperf_log_summary.txt").read_text())
    result = result_from_logs(folder, "Offline", "PerformanceOnly")
    assert result.value == pytest.approx(float(summary["Samples per second"]), rel=1e-3)
    assert summary["Scenario"] == "Offline"
    assert summary["Mode"] == "PerformanceOnly"


def test_accuracy_result_has_no_validity(golden: Path) -> None:
    result = result_from_logs(golden / "loadgen" / "Offline-accuracy", "Offline", "AccuracyOnly")
    assert result.valid is None
    assert result.metric == "accuracy"


def test_detail_collects_errors_and_warnings() -> None:
    text = "\n".join(
        [
            ':::MLLOG {"key": "loadgen_version", "value": "6.0.17 @ x", "metadata": {}}',
            ':::MLLOG {"key": "error_invalid_config", "value": "Multiple conf files are used", '
            '"metadata": {"is_error": true}}',
            ':::MLLOG {"key": "generic_message", "value": "hi", "metadata": {"is_warning": true}}',
            "not an mllog line",
        ]
    )
    log = parse_detail_text(text)
    assert log.errors == ["error_invalid_config: Multiple conf files are used"]
    assert log.warnings == ["generic_message: hi"]
    assert log.get("loadgen_version") == "6.0.17 @ x"


def test_malformed_detail_line_is_a_result_error() -> None:
    with pytest.raises(ResultError, match="malformed"):
        parse_detail_text(':::MLLOG {"key": ')


def test_scenario_mismatch_is_rejected(golden: Path) -> None:
    with pytest.raises(ResultError, match="effective_scenario"):
        result_from_logs(golden / "loadgen" / "Offline-performance", "Server", "PerformanceOnly")


def test_missing_logs(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no mlperf_log_detail"):
        result_from_logs(tmp_path, "Offline", "PerformanceOnly")
