"""Reading run folders for the comparison: each run's manifest and test folders, and the
state of each test (not run, failed, INVALID and why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError
from orchestrator.report.model import ACCURACY, PERCENTILES, PERFORMANCE, Cell, RunSummary, missing
from orchestrator.report.telemetry import TelemetryData, read_telemetry
from orchestrator.results.files import read_json_object
from orchestrator.results.loadgen_log import (
    DETAIL,
    DetailLog,
    TestResult,
    parse_accuracy_line,
    parse_detail_text,
    result_from_logs,
)
from orchestrator.results.manifest import effective_status, read_manifest

# --- reading run folders ---------------------------------------------------------------------


@dataclass(frozen=True)
class NotStarted:
    """A backend of a multi-backend `up` that failed before it had a run folder."""

    backend: str
    device: str
    error: str


RunSource = Path | NotStarted


@dataclass
class _Test:
    """One LoadGen test of a run, as far as it got."""

    record: dict[str, Any]
    folder: Path
    status: str  # ok | failed | interrupted
    result: TestResult | None = None
    detail: DetailLog | None = None
    problem: str | None = None  # the logs could not be read
    telemetry: TelemetryData | None = None
    telemetry_problem: str | None = None
    accuracy: tuple[float, int, int] | None = None
    agreement: dict[str, Any] | None = None


@dataclass
class _Run:
    summary: RunSummary
    manifest: dict[str, Any]
    folder: Path | None
    tests: dict[tuple[str, str], _Test] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.manifest.get("spec") or {})

    def planned(self, scenario: str, mode: str) -> bool:
        spec = self.spec
        return scenario in (spec.get("scenarios") or ()) and mode in (spec.get("modes") or ())


def _host_line(host: dict[str, Any]) -> str:
    parts = [str(host.get("cpu_model") or "?")]
    if host.get("cpu_count"):
        parts[0] += f" ×{host['cpu_count']}"
    gpus = host.get("gpus") or []
    if gpus:
        names = [str(g.get("name", "?")) if isinstance(g, dict) else str(g) for g in gpus]
        counted = {name: names.count(name) for name in names}
        parts.append(", ".join(f"{n}× {name}" for name, n in counted.items()))
    else:
        parts.append("no GPU")
    return " · ".join(parts)


def _load_test(run_dir: Path, record: dict[str, Any]) -> _Test:
    scenario, mode = str(record.get("scenario")), str(record.get("mode"))
    folder = run_dir / str(record.get("dir") or "")
    test = _Test(record, folder, str(record.get("status", "ok")))
    if test.status != "ok":
        return test
    try:
        test.result = result_from_logs(folder, scenario, mode)
        test.detail = parse_detail_text((folder / DETAIL).read_text(errors="replace"))
    except ResultError as exc:
        test.problem = exc.message
        return test
    if mode == ACCURACY:
        try:
            test.accuracy = parse_accuracy_line((folder / "accuracy.txt").read_text())
        except (OSError, ResultError) as exc:
            test.problem = f"accuracy.txt: {exc}"
        result = record.get("result") or read_json_object(folder / "result.json")
        agreement = result.get("fp32_agreement") if isinstance(result, dict) else None
        test.agreement = agreement if isinstance(agreement, dict) else None
    try:
        test.telemetry = read_telemetry(folder)
    except ResultError as exc:
        test.telemetry_problem = exc.message
    return test


def _load_run(source: RunSource, label: str) -> _Run:
    if isinstance(source, NotStarted):
        summary = RunSummary(
            label=label, run_id="(no run folder)", path="", backend=source.backend,
            device=source.device, profile="?", status="not started", error=source.error,
            started=None, wall_seconds=None, host="?", loadgen=None, synthetic=None, quick=False,
        )  # fmt: skip
        return _Run(summary, {}, None)
    manifest = read_manifest(source)
    spec = manifest.get("spec") or {}
    assets = manifest.get("assets") or {}
    wall = manifest.get("wall_seconds")
    summary = RunSummary(
        label=label,
        run_id=str(manifest.get("run_id", source.name)),
        path=str(source),
        backend=str(spec.get("backend", "?")),
        device=str(spec.get("device", "?")),
        profile=str(spec.get("profile", "?")),
        status=effective_status(manifest),
        error=manifest.get("error"),
        started=manifest.get("started"),
        wall_seconds=float(wall) if isinstance(wall, int | float) else None,
        host=_host_line(manifest.get("host") or {}),
        loadgen=manifest.get("loadgen_version"),
        synthetic=assets.get("synthetic") if "synthetic" in assets else None,
        quick=spec.get("profile") == "quick",
    )
    run = _Run(summary, manifest, source)
    for record in manifest.get("tests") or []:
        if isinstance(record, dict):
            key = (str(record.get("scenario")), str(record.get("mode")))
            run.tests[key] = _load_test(source, record)
    return run


# --- test states -----------------------------------------------------------------------------


def _absent(run: _Run, scenario: str, mode: str) -> Cell | None:
    """Why `run` has no usable `mode` test of `scenario` (a missing Cell), or None if it has."""
    test = run.tests.get((scenario, mode))
    what = "performance" if mode == PERFORMANCE else "accuracy"
    if test is not None:
        if test.status == "failed":
            return Cell("failed", None, f"{what} test failed: {run.summary.error or '?'}", "bad")
        if test.status == "interrupted":
            return Cell("interrupted", None, f"{what} test interrupted", "warn")
        if test.problem:
            return Cell("unreadable", None, test.problem, "bad")
        return None
    status = run.summary.status
    if run.folder is None:
        return Cell("not started", None, run.summary.error or "", "bad")
    if run.planned(scenario, mode):
        if status in ("failed", "interrupted"):
            return Cell("not reached", None, f"the run {status} before this test", "warn")
        if status == "running":
            return missing("not yet", "the run is still going")
        return missing("missing", f"planned but the manifest has no {what} test")
    return missing("not run", f"this run did not include {scenario} {what}")


def _perf(run: _Run, scenario: str) -> _Test | None:
    test = run.tests.get((scenario, PERFORMANCE))
    return test if test is not None and _absent(run, scenario, PERFORMANCE) is None else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _ns_to_ms(value: Any) -> float | None:
    number_ = _float(value)
    return number_ * 1e-6 if number_ is not None else None


def _latency_key(scenario: str, name: str, detail: DetailLog) -> str:
    """MultiStream's latencies are per query (8 samples); the others per sample."""
    if scenario == "MultiStream":
        per_query = (
            f"result_{name}_query_latency_ns"
            if name in ("min", "max", "mean")
            else f"result_{name}_percentile_per_query_latency_ns"
        )
        if per_query in detail.values:
            return per_query
    return (
        f"result_{name}_latency_ns"
        if name in ("min", "max", "mean")
        else (f"result_{name}_percentile_latency_ns")
    )


def _percentile_name(percentile: float) -> str:
    return next(name for p, name in PERCENTILES if p == percentile)


def _early_stopping_text(detail: DetailLog) -> str:
    return " ".join(str(detail.get("early_stopping_result") or "").replace("*", " ").split())


def reasons_of(test: _Test) -> tuple[str, ...]:
    """Why a performance result is INVALID: unmet constraints, LoadGen's reason, errors."""
    result, detail = test.result, test.detail
    if result is None or detail is None:
        return ()
    found: list[str] = []
    for name in result.unmet:
        text = _early_stopping_text(detail) if name == "early stopping" else ""
        found.append(f"{name} not satisfied" + (f": {text}" if text else ""))
    invalid = str(detail.get("result_invalid_reason") or "").strip()
    if invalid:
        found.append(f"LoadGen: {invalid}")
    found.extend(result.errors)
    return tuple(reason.rstrip(". ") for reason in found)
