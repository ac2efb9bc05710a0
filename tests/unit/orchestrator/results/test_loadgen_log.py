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
        ("SingleStream-performance", "SingleStream", "early-stopping p90", "ms", False),
        ("MultiStream-performance", "MultiStream", "early-stopping p99", "ms", None),
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
    if unit == "ms":  # these golden runs stopped before early stopping could estimate
        assert result.value is None
        assert result.percentile_ms is not None
        assert result.percentile_ms > 0
    else:
        assert result.value is not None
        assert result.value > 0
        assert result.percentile_metric is None
    if valid is not None:
        assert result.valid is valid
    assert result.errors == ()


def test_values_match_the_summary(golden: Path) -> None:
    folder = golden / "loadgen" / "SingleStream-performance"
    result = result_from_logs(folder, "SingleStream", "PerformanceOnly")
    summary = parse_summary_text((folder / "mlperf_log_summary.txt").read_text())
    p90_ns = int(summary["90.0th percentile latency (ns)"])
    assert result.percentile_metric == "p90 latency"
    assert result.percentile_ms == pytest.approx(p90_ns / 1e6)
    assert summary["Result is"] == "INVALID"
    assert result.unmet == ("early stopping",)
    # 32 queries: LoadGen logs an estimate of 0, which is no result (the checker refuses it)
    assert result.value is None
    assert result.early_stopping_ms is None


@pytest.mark.parametrize(
    "run", ["20261123-171232-reference-0375", "20261123-172128-reference-4108"]
)
def test_single_stream_headline_is_the_early_stopping_estimate(golden: Path, run: str) -> None:
    """The figure the official checker reads (early_stopping_latency_ss), raw p90 beside it."""
    folder = golden / "runs" / run / "reference" / "SingleStream" / "performance"
    result = result_from_logs(folder, "SingleStream", "PerformanceOnly")
    log = parse_detail_text((folder / "mlperf_log_detail.txt").read_text())
    assert result.metric == "early-stopping p90"
    assert result.value == pytest.approx(log.get("early_stopping_latency_ss") / 1e6)
    assert result.percentile_ms == pytest.approx(
        log.get("result_90.00_percentile_latency_ns") / 1e6
    )
    assert result.value != result.percentile_ms
    assert result.to_dict()["percentile_ms"] == result.percentile_ms  # recorded in result.json


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


def _copy_with_detail(golden_folder: Path, target: Path, detail: str) -> Path:
    """A test folder holding the golden summary and the given detail log text."""
    target.mkdir()
    summary = golden_folder / "mlperf_log_summary.txt"
    (target / "mlperf_log_summary.txt").write_text(summary.read_text())
    (target / "mlperf_log_detail.txt").write_text(detail)
    return target


def test_malformed_middle_line_is_a_result_error(golden: Path, tmp_path: Path) -> None:
    folder = golden / "loadgen" / "Offline-performance"
    lines = (folder / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)
    lines[39] = lines[39][:60] + "\n"  # line 40 cut short, but lines follow it
    damaged = _copy_with_detail(folder, tmp_path / "t", "".join(lines))
    with pytest.raises(ResultError, match=r"mlperf_log_detail.txt:40: malformed"):
        result_from_logs(damaged, "Offline", "PerformanceOnly")


def test_malformed_last_line_with_its_newline_is_an_error() -> None:
    """A complete (newline-ended) last line that does not parse is damage, not a cut-off write."""
    with pytest.raises(ResultError, match="malformed"):
        parse_detail_text(':::MLLOG {"key": \n')


def test_truncated_last_line_is_tolerated_with_a_warning(golden: Path, tmp_path: Path) -> None:
    """LoadGen killed mid-write: the last line has no end; the rest of the log still counts."""
    folder = golden / "loadgen" / "Offline-performance"
    text = (folder / "mlperf_log_detail.txt").read_text()
    cut = text[: text.rindex(":::MLLOG ") + 57]  # the last line stops inside its JSON
    assert not cut.endswith("\n")
    lineno = cut.count("\n") + 1
    truncated = _copy_with_detail(folder, tmp_path / "t", cut)
    result = result_from_logs(truncated, "Offline", "PerformanceOnly")
    intact = result_from_logs(folder, "Offline", "PerformanceOnly")
    assert result.value == intact.value
    assert result.valid is True
    assert result.errors == ()
    assert result.warnings == (
        f"mlperf_log_detail.txt:{lineno}: last line cut short (LoadGen stopped mid-write); ignored",
    )
    assert result.to_dict()["warnings"] == list(result.warnings)  # recorded in result.json


def test_logged_error_makes_a_valid_result_invalid(golden: Path) -> None:
    """Real LoadGen 6.0.17 log of a SUT that completed one sample twice: LoadGen's verdict is
    VALID, its log carries error_runtime; the result is not valid."""
    folder = golden / "loadgen" / "Offline-performance-error"
    summary = parse_summary_text((folder / "mlperf_log_summary.txt").read_text())
    assert summary["Result is"] == "VALID"
    assert (
        parse_detail_text((folder / "mlperf_log_detail.txt").read_text()).get("result_validity")
        == "VALID"
    )
    result = result_from_logs(folder, "Offline", "PerformanceOnly")
    assert result.valid is False
    assert result.errors == ("error_runtime: Attempted to complete a sample twice.",)
    assert result.value is not None


def test_error_counted_but_not_shown_still_invalidates(golden: Path, tmp_path: Path) -> None:
    """num_errors says 1 but the error line is gone (log damaged): still an error."""
    folder = golden / "loadgen" / "Offline-performance-error"
    text = (folder / "mlperf_log_detail.txt").read_text()
    without = "".join(
        line for line in text.splitlines(keepends=True) if '"key": "error_runtime"' not in line
    )
    assert without != text
    result = result_from_logs(
        _copy_with_detail(folder, tmp_path / "t", without), "Offline", "PerformanceOnly"
    )
    assert result.valid is False
    assert result.errors == ("num_errors: LoadGen counted 1, the log shows 0",)


def test_logged_error_makes_an_accuracy_run_invalid(golden: Path, tmp_path: Path) -> None:
    folder = golden / "loadgen" / "Offline-accuracy"
    error_line = next(
        line
        for line in (golden / "loadgen" / "Offline-performance-error" / "mlperf_log_detail.txt")
        .read_text()
        .splitlines(keepends=True)
        if '"key": "error_runtime"' in line
    )
    lines = (folder / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)
    lines.insert(len(lines) // 2, error_line)
    result = result_from_logs(
        _copy_with_detail(folder, tmp_path / "t", "".join(lines)), "Offline", "AccuracyOnly"
    )
    assert result.valid is False
    assert result.errors == ("error_runtime: Attempted to complete a sample twice.",)


def test_scenario_mismatch_is_rejected(golden: Path) -> None:
    with pytest.raises(ResultError, match="effective_scenario"):
        result_from_logs(golden / "loadgen" / "Offline-performance", "Server", "PerformanceOnly")


def test_missing_logs(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no mlperf_log_detail"):
        result_from_logs(tmp_path, "Offline", "PerformanceOnly")
