"""Parsers for LoadGen's `mlperf_log_detail.txt` and `mlperf_log_summary.txt`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError

MLLOG_PREFIX = ":::MLLOG "
SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY_LOG = "mlperf_log_accuracy.json"


@dataclass
class DetailLog:
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def parse_detail_text(text: str) -> DetailLog:
    """Parse `:::MLLOG {json}` lines; the last value of a key wins; errors/warnings are kept.

    A malformed last line with no newline after it is what LoadGen leaves when it is killed
    mid-write: it is skipped with a warning. A malformed line anywhere else is a ResultError.
    """
    log = DetailLog()
    lines = text.splitlines()
    truncated_at = len(lines) if lines and not text.endswith(("\n", "\r")) else None
    for lineno, line in enumerate(lines, 1):
        if not line.startswith(MLLOG_PREFIX):
            continue
        try:
            entry = json.loads(line[len(MLLOG_PREFIX) :])
        except json.JSONDecodeError as exc:
            if lineno == truncated_at:
                log.warnings.append(
                    f"{DETAIL}:{lineno}: last line cut short (LoadGen stopped mid-write); ignored"
                )
                continue
            raise ResultError(f"{DETAIL}:{lineno}: malformed MLLOG line ({exc.msg})") from exc
        if not isinstance(entry, dict):
            raise ResultError(f"{DETAIL}:{lineno}: MLLOG line is not a JSON object")
        key = entry.get("key")
        if not isinstance(key, str):
            continue
        value = entry.get("value")
        log.values[key] = value
        meta = entry.get("metadata") or {}
        if meta.get("is_error") or key.startswith("error_"):
            log.errors.append(f"{key}: {value}")
        elif meta.get("is_warning") or key.startswith("warning_"):
            log.warnings.append(f"{key}: {value}")
    counted = log.values.get("num_errors")
    if isinstance(counted, int) and counted > len(log.errors):
        log.errors.append(f"num_errors: LoadGen counted {counted}, the log shows {len(log.errors)}")
    return log


def parse_summary_text(text: str) -> dict[str, str]:
    """`key : value` lines of the summary (first occurrence wins)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not line.startswith("="):
            pairs.setdefault(key.strip(), value.strip())
    return pairs


# scenario → (detail key, label, unit, scale applied to the raw value): the headline result, the
# figure the official checker reads (round v6.1). SingleStream and MultiStream report LoadGen's
# early-stopping estimate of the percentile, not the percentile itself.
METRICS: dict[str, tuple[str, str, str, float]] = {
    "SingleStream": ("early_stopping_latency_ss", "early-stopping p90", "ms", 1e-6),
    "MultiStream": ("early_stopping_latency_ms", "early-stopping p99", "ms", 1e-6),
    "Server": ("result_completed_samples_per_sec", "completed samples/s", "samples/s", 1.0),
    "Offline": ("result_samples_per_second", "samples/s", "samples/s", 1.0),
}
EARLY_STOPPING = {
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
}
# scenario → (detail key, label) of the raw percentile shown beside the early-stopping estimate
PERCENTILES: dict[str, tuple[str, str]] = {
    "SingleStream": ("result_90.00_percentile_latency_ns", "p90 latency"),
    "MultiStream": ("result_99.00_percentile_latency_ns", "p99 latency"),
}


@dataclass(frozen=True)
class TestResult:
    """One LoadGen test, reduced to what reports and submissions need."""

    scenario: str
    mode: str
    loadgen_version: str | None
    valid: bool | None  # None when not judged (accuracy runs); False whenever errors were logged
    metric: str
    value: float | None
    unit: str
    early_stopping_ms: float | None
    mean_latency_ms: float | None
    min_duration_ms: int | None
    duration_s: float | None
    samples: int | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    unmet: tuple[str, ...] = ()  # constraints the summary reports as not satisfied
    # SingleStream/MultiStream: the raw percentile beside the early-stopping headline
    percentile_metric: str | None = None
    percentile_ms: float | None = None

    @property
    def display_value(self) -> str:
        return "—" if self.value is None else f"{self.value:,.3f} {self.unit}"

    @classmethod
    def from_dict(cls, data: dict[str, Any], scenario: str, mode: str) -> TestResult:
        """A result as `to_dict` wrote it (a manifest's test record); what is missing or of
        another kind is left empty."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {key: data[key] for key in known if key in data}
        values.update(scenario=scenario, mode=mode)
        for key in ("errors", "warnings", "unmet"):
            values[key] = tuple(values.get(key) or ())
        defaults = {"loadgen_version": None, "valid": None, "metric": "", "value": None,
                    "unit": "", "early_stopping_ms": None, "mean_latency_ms": None,
                    "min_duration_ms": None, "duration_s": None, "samples": None}  # fmt: skip
        return cls(**{**defaults, **values})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = list(self.errors)
        data["warnings"] = list(self.warnings)
        data["unmet"] = list(self.unmet)
        return data


def unmet_constraints(summary: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the '<constraint> satisfied : NO' lines of a summary, e.g. 'early stopping'."""
    return tuple(
        key.removesuffix(" satisfied").strip().lower()
        for key, value in summary.items()
        if key.endswith("satisfied") and value.strip().upper() == "NO"
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def result_from_logs(folder: Path, scenario: str, mode: str) -> TestResult:
    """Read a test's folder into a TestResult."""
    detail_path = folder / DETAIL
    if not detail_path.is_file():
        raise ResultError(
            f"LoadGen wrote no {DETAIL} in {folder}",
            hint="the SUT container log in the same folder says why",
        )
    log = parse_detail_text(detail_path.read_text(errors="replace"))
    effective = log.get("effective_scenario", scenario)
    if effective != scenario:
        raise ResultError(f"{detail_path}: effective_scenario {effective!r}, expected {scenario!r}")
    ns_to_ms = 1e-6
    early_key = EARLY_STOPPING.get(scenario)
    early = _float(log.get(early_key)) if early_key else None
    if not early:  # LoadGen logs 0 when too few queries ran for an estimate
        early = None
    percentile_metric, percentile_ms = None, None
    if mode == "AccuracyOnly":
        metric, value, unit, valid = "accuracy", None, "%", None
    else:
        key, metric, unit, scale = METRICS[scenario]
        raw = _float(log.get(key))
        if scenario in EARLY_STOPPING and not raw:
            raw = None  # 0: too few queries for an estimate, which the checker rejects
        value = raw * scale if raw is not None else None
        if scenario in PERCENTILES:
            percentile_key, percentile_metric = PERCENTILES[scenario]
            percentile = _float(log.get(percentile_key))
            percentile_ms = percentile * ns_to_ms if percentile is not None else None
        validity = log.get("result_validity")
        valid = None if validity is None else validity == "VALID"
    if log.errors:  # LoadGen's own verdict does not account for the errors it logged
        valid = False
    mean = _float(log.get("result_mean_latency_ns"))
    duration_ns = _float(log.get("generated_query_duration"))
    summary_path = folder / SUMMARY
    summary = (
        parse_summary_text(summary_path.read_text(errors="replace"))
        if summary_path.is_file()
        else {}
    )
    samples = (
        log.get("result_query_count")
        if scenario != "Offline"
        else log.get("generated_samples_per_query")
    )
    return TestResult(
        scenario=scenario,
        mode=mode,
        loadgen_version=(
            str(log.get("loadgen_version")).split(" @")[0] if log.get("loadgen_version") else None
        ),
        valid=valid,
        metric=metric,
        value=value,
        unit=unit,
        early_stopping_ms=early * ns_to_ms if early is not None else None,
        mean_latency_ms=mean * ns_to_ms if mean is not None else None,
        min_duration_ms=log.get("effective_min_duration_ms"),
        duration_s=duration_ns * 1e-9 if duration_ns is not None else None,
        samples=int(samples) if isinstance(samples, int | float) else None,
        errors=tuple(log.errors),
        warnings=tuple(log.warnings),
        unmet=unmet_constraints(summary) if mode != "AccuracyOnly" else (),
        percentile_metric=percentile_metric,
        percentile_ms=percentile_ms,
    )


_ACCURACY_LINE = re.compile(r"accuracy=(?P<acc>[0-9.]+)%, good=(?P<good>\d+), total=(?P<total>\d+)")


def parse_accuracy_line(text: str) -> tuple[float, int, int]:
    match = _ACCURACY_LINE.search(text)
    if not match:
        raise ResultError("accuracy.txt has no 'accuracy=XX.XXX%, good=N, total=M' line")
    return float(match["acc"]), int(match["good"]), int(match["total"])


# LoadGen writes power_begin/power_end as UTC wall-clock times, milliseconds truncated
# (DateTimeStringForPower in loadgen/utils.cc: "%m-%d-%Y %H:%M:%S" + ".mmm", gmtime).
POWER_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"


def power_window(log: DetailLog) -> tuple[float, float] | None:
    """LoadGen's power window (from the test's start to its last completion) as POSIX seconds;
    None when the log has no power_begin/power_end (LoadGen did not finish the test)."""
    begin, end = log.get("power_begin"), log.get("power_end")
    if begin is None or end is None:
        return None
    times = []
    for key, value in (("power_begin", begin), ("power_end", end)):
        try:
            moment = datetime.strptime(str(value), POWER_TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise ResultError(f"{DETAIL}: {key} {value!r} is not a LoadGen power time") from None
        times.append(moment.timestamp())
    if times[1] < times[0]:
        raise ResultError(f"{DETAIL}: power_end {end!r} precedes power_begin {begin!r}")
    return times[0], times[1]


def completed_samples(log: DetailLog) -> int | None:
    """Samples a performance run completed: queries × samples per query (all complete before
    LoadGen ends its power window)."""
    queries, per_query = log.get("result_query_count"), log.get("generated_samples_per_query")
    if isinstance(queries, int) and isinstance(per_query, int):
        return queries * per_query
    return None
