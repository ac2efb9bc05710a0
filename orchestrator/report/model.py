"""The comparison of several runs as one data model.

Built once from run folders (manifest.json, the LoadGen logs, accuracy.txt, result.json,
harness.json, user.conf, telemetry/) and then only read: the HTML, Markdown and terminal
renderers and the SVG plots all draw from a `Comparison`, so they cannot disagree. Every figure is
formatted here, once; a figure that does not exist is a `Cell` that says why ("not run",
"failed", "no telemetry", "n/a"), never a zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import ConfigError, ResultError
from orchestrator.report.telemetry import TelemetryData, read_telemetry
from orchestrator.results.files import read_json_object
from orchestrator.results.loadgen_log import (
    ACCURACY_LOG,
    DETAIL,
    DetailLog,
    TestResult,
    parse_accuracy_line,
    parse_detail_text,
    result_from_logs,
)
from orchestrator.results.manifest import effective_status, read_manifest

Tone = Literal["plain", "good", "bad", "missing", "warn"]
Better = Literal["higher", "lower"]

SCENARIO_ORDER = ("SingleStream", "MultiStream", "Server", "Offline")
PERFORMANCE, ACCURACY = "PerformanceOnly", "AccuracyOnly"
# The percentiles LoadGen logs, in order; 0 is the minimum.
PERCENTILES = ((0.0, "min"), (50.0, "50.00"), (90.0, "90.00"), (95.0, "95.00"),
               (97.0, "97.00"), (99.0, "99.00"), (99.9, "99.90"))  # fmt: skip
TABLE_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# harness.json keys that describe one container, not a setting of the SUT
# harness.json keys that are not settings: what this test was, how it went, what it measured
VOLATILE_HARNESS_KEYS = frozenset(
    {"scenario", "mode", "test_seconds", "uid", "gid", "harness_stats", "sizing"}
)
ENERGY = "Power and energy"
GROUPS = ("Result", "Latency", "Accuracy", ENERGY, "Test")


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One figure (or the reason there is none), formatted once for every renderer."""

    text: str
    value: float | None = None  # the unrounded number behind `text`; None when there is none
    note: str = ""  # why it is missing, what makes it INVALID, agree/total ...
    tone: Tone = "plain"
    badge: str = ""  # VALID / INVALID beside a headline figure


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cells: tuple[Cell, ...]  # one per run, in run order
    speedups: tuple[Cell | None, ...] = ()  # one per run (first: None); empty: no ratio applies
    group: str = ""  # the block of the table it belongs to ("Latency", "Accuracy" …)


@dataclass(frozen=True)
class SettingRow:
    key: str
    values: tuple[str, ...]  # one per run; "—" where a run does not have the setting
    # per run: whether it recorded settings here at all (a scenario it did not run has none,
    # and its "—" is no difference)
    recorded: tuple[bool, ...] = ()

    @property
    def differs(self) -> bool:
        recorded = self.recorded or (True,) * len(self.values)
        return len({v for v, seen in zip(self.values, recorded, strict=True) if seen}) > 1


@dataclass(frozen=True)
class LineSeries:
    run: int  # index into Comparison.runs (colour, legend)
    label: str
    points: tuple[tuple[float, float], ...]
    markers: bool = False
    dashed: bool = False
    note: str = ""  # shown in the legend when there are no points ("not run", "no telemetry")


@dataclass(frozen=True)
class Band:
    """A marked x-range: the LoadGen window of one run."""

    run: int
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Bar:
    run: int
    label: str
    value: float | None
    text: str  # the value as the tables show it, or why there is no bar
    badge: str = ""


@dataclass(frozen=True)
class Plot:
    slug: str  # stable file name stem: "offline-latency"
    title: str
    kind: Literal["line", "bars"]
    x_label: str
    y_label: str
    x_scale: Literal["linear", "nines"] = "linear"
    y_scale: Literal["linear", "log"] = "linear"
    lines: tuple[LineSeries, ...] = ()
    bars: tuple[Bar, ...] = ()
    bands: tuple[Band, ...] = ()
    y_max: float | None = None  # fixed top of the y axis (utilisation: 100)
    empty: str = ""  # why nothing can be drawn (the plot then says so)


@dataclass(frozen=True)
class RunSummary:
    label: str  # A, B, C … (column headers, legends)
    run_id: str
    path: str
    backend: str
    device: str
    profile: str
    status: str  # complete | failed | interrupted | running | not started
    error: str | None
    started: str | None
    wall_seconds: float | None
    host: str
    loadgen: str | None
    synthetic: bool | None
    quick: bool

    @property
    def name(self) -> str:
        return f"{self.label} · {self.backend} · {self.device}"


@dataclass(frozen=True)
class ScenarioSection:
    scenario: str
    metric: str  # the scenario's result, e.g. "samples/s" or "p90 latency (ms)"
    presence: tuple[Cell, ...]  # per run: the performance test's state
    rows: tuple[Row, ...]
    reasons: tuple[tuple[str, ...], ...]  # per run: why INVALID / failed / missing
    plots: tuple[Plot, ...]
    settings: tuple[SettingRow, ...]

    @property
    def differing_settings(self) -> tuple[SettingRow, ...]:
        return tuple(s for s in self.settings if s.differs)


@dataclass(frozen=True)
class Comparison:
    title: str
    generated: str
    runs: tuple[RunSummary, ...]
    overview: tuple[Row, ...]  # one row per scenario: its headline result
    settings: tuple[SettingRow, ...]  # run-level settings, all of them
    scenarios: tuple[ScenarioSection, ...]
    notes: tuple[str, ...]

    @property
    def differing_settings(self) -> tuple[SettingRow, ...]:
        return tuple(s for s in self.settings if s.differs)

    def rows(self) -> Iterator[Row]:
        yield from self.overview
        for section in self.scenarios:
            yield from section.rows

    def plots(self) -> Iterator[Plot]:
        for section in self.scenarios:
            yield from section.plots

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# --- formatting (the one place numbers become text) ------------------------------------------

DASH = "—"


def fmt(value: float) -> str:
    """About four significant digits, thousands separated: 90,123 · 623.7 · 2.950 · 0.3912."""
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 10:
        return f"{value:.2f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.3f}"
    return f"{value:.4g}"


def number(
    value: float | None,
    *,
    why: str = "",
    note: str = "",
    badge: str = "",
    integer: bool = False,
    decimals: int | None = None,
) -> Cell:
    """A figure, or DASH with `why` it is missing."""
    if value is None:
        return Cell(DASH, None, why, "missing")
    text = (
        f"{round(value):,}"
        if integer
        else fmt(value)
        if decimals is None
        else (f"{value:,.{decimals}f}")
    )
    return Cell(text, value, note, "plain", badge)


def missing(text: str, note: str = "") -> Cell:
    return Cell(text, None, note, "missing")


def speedup(base: Cell, other: Cell, better: Better) -> Cell:
    """How many times better `other` is than `base` (>1: better, whichever way is better)."""
    if base.value is None or other.value is None:
        return missing(DASH, "a figure is missing")
    numerator, denominator = (
        (other.value, base.value) if better == "higher" else (base.value, other.value)
    )
    if denominator == 0:
        return missing(DASH, "division by zero")
    ratio = numerator / denominator
    tone: Tone = "good" if ratio >= 1.02 else "bad" if ratio <= 0.98 else "plain"
    return Cell(f"{ratio:.2f}×", ratio, f"{better} is better", tone)


def make_row(
    key: str, label: str, cells: Sequence[Cell], better: Better | None = None, group: str = ""
) -> Row:
    speedups: tuple[Cell | None, ...] = ()
    if better is not None and len(cells) > 1:
        speedups = (None, *(speedup(cells[0], cell, better) for cell in cells[1:]))
    return Row(key, label, tuple(cells), speedups, group)


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


# --- rows ------------------------------------------------------------------------------------

PerfFigure = Callable[[_Test], Cell]


def _headline(test: _Test) -> Cell:
    """The result the checker reads: SingleStream/MultiStream the early-stopping estimate (the
    raw percentile is a Latency row and the note), Server/Offline the throughput."""
    result, detail = test.result, test.detail
    assert result is not None
    assert detail is not None
    badge = "" if result.valid is None else ("VALID" if result.valid else "INVALID")
    notes = list(reasons_of(test)) if result.valid is False else []
    if result.percentile_metric is not None and result.percentile_ms is not None:
        raw = f"{result.percentile_metric} {fmt(result.percentile_ms)} ms"
        notes.append(f"early-stopping estimate; raw {raw}")
    note = "; ".join(notes)
    if result.value is None and result.percentile_metric is not None:
        why = _early_stopping_text(detail) or "LoadGen logged no early-stopping estimate"
        return Cell("no estimate", None, "; ".join([why, *notes]), "bad", badge)
    return number(result.value, note=note, badge=badge, why="no result logged")


def _validity(test: _Test) -> Cell:
    result = test.result
    assert result is not None
    if result.valid is None:
        return missing(DASH, "LoadGen did not judge this test")
    if result.valid:
        return Cell("VALID", None, "", "good")
    return Cell("INVALID", None, "; ".join(reasons_of(test)), "bad")


THROUGHPUT_KEYS = {
    "Offline": "result_samples_per_second",
    "Server": "result_completed_samples_per_sec",
    "SingleStream": "result_qps_with_loadgen_overhead",  # one sample per query
}


def _throughput(scenario: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        key = THROUGHPUT_KEYS.get(scenario)
        if key is None:
            return missing("n/a", f"LoadGen reports no samples/s for {scenario}")
        return number(_float(test.detail.get(key)), why=f"{key} not logged")

    return figure


def _detail_number(key: str, *, integer: bool = False) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        return number(_float(test.detail.get(key)), why=f"{key} not logged", integer=integer)

    return figure


def _latency(scenario: str, name: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        assert test.detail is not None
        key = _latency_key(scenario, name, test.detail)
        return number(_ns_to_ms(test.detail.get(key)), why=f"{key} not logged")

    return figure


def _early_stopping(scenario: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        detail = test.detail
        assert detail is not None
        met = detail.get("early_stopping_met")
        text = _early_stopping_text(detail)
        if scenario in ("SingleStream", "MultiStream", "Server"):
            # SingleStream/MultiStream: the estimate itself is the headline result
            if met is None:
                return missing(DASH, "early_stopping_met not logged")
            return Cell("met", None, text, "good") if met else Cell("not met", None, text, "bad")
        return missing("n/a", "Offline has no early-stopping estimate")

    return figure


def _loadgen_seconds(test: _Test) -> Cell:
    return number(_float(test.record.get("loadgen_seconds")), why="the harness did not time it")


def _telemetry_cell(test: _Test) -> Cell | None:
    if test.telemetry_problem:
        return Cell("unreadable", None, test.telemetry_problem, "bad")
    if test.telemetry is None:
        return missing("no telemetry", "this test folder has no telemetry/")
    return None


def _gpu_total(field_name: str) -> PerfFigure:
    def figure(test: _Test) -> Cell:
        absent = _telemetry_cell(test)
        if absent is not None:
            return absent
        assert test.telemetry is not None
        if not test.telemetry.gpus:
            return missing("no GPU", "telemetry has no GPU figures")
        return number(test.telemetry.total(field_name), why=f"{field_name} not in summary.json")

    return figure


def _samples_per_joule(test: _Test) -> Cell:
    absent = _telemetry_cell(test)
    if absent is not None:
        return absent
    assert test.telemetry is not None
    if not test.telemetry.gpus:
        return missing("no GPU", "no GPU energy to divide by")
    return number(test.telemetry.samples_per_joule, why="summary.json gives none")


def _cpu_util(test: _Test) -> Cell:
    absent = _telemetry_cell(test)
    if absent is not None:
        return absent
    assert test.telemetry is not None
    return number(test.telemetry.mean_cpu_util_pct, why="summary.json gives none")


@dataclass(frozen=True)
class _RowSpec:
    key: str
    label: str
    figure: PerfFigure
    better: Better | None
    group: str


def _perf_rows(scenario: str, metric: str, better: Better) -> list[_RowSpec]:
    result, latency, test, energy = "Result", "Latency", "Test", ENERGY
    rows = [
        _RowSpec("result", metric, _headline, better, result),
        _RowSpec("validity", "Validity", _validity, None, result),
        _RowSpec("throughput", "Throughput (samples/s)", _throughput(scenario), "higher", result),
    ]
    if scenario == "Server":
        scheduled = _detail_number("result_scheduled_samples_per_sec")
        rows.append(_RowSpec("scheduled", "Scheduled (samples/s)", scheduled, None, result))
    rows.append(_RowSpec("mean", "Mean latency (ms)", _latency(scenario, "mean"), "lower", latency))
    for percentile in TABLE_PERCENTILES:
        figure = _latency(scenario, _percentile_name(percentile))
        label = f"p{percentile:g} latency (ms)"
        rows.append(_RowSpec(f"p{percentile:g}", label, figure, "lower", latency))
    rows += [
        _RowSpec("early_stopping", "Early stopping", _early_stopping(scenario), None, latency),
        _RowSpec(
            "queries", "Queries", _detail_number("result_query_count", integer=True), None, test
        ),
        _RowSpec("loadgen_seconds", "LoadGen time (s)", _loadgen_seconds, None, test),
        _RowSpec(
            "gpu_power_mean",
            "GPU power, mean of all GPUs (W)",
            _gpu_total("mean_power_w"),
            None,
            energy,
        ),
        _RowSpec(
            "gpu_power_max",
            "GPU power, peak of one GPU (W)",
            _gpu_total("max_power_w"),
            None,
            energy,
        ),
        _RowSpec(
            "gpu_energy", "GPU energy in the window (J)", _gpu_total("energy_j"), None, energy
        ),
        _RowSpec("samples_per_joule", "Samples per joule", _samples_per_joule, "higher", energy),
        _RowSpec("cpu_util", "Host CPU, mean (%)", _cpu_util, None, energy),
    ]
    return rows


def _accuracy_cells(
    runs: Sequence[_Run], scenario: str
) -> tuple[list[Cell], list[Cell], list[Cell]]:
    accuracy, scored, agreement = [], [], []
    for run in runs:
        absent = _absent(run, scenario, ACCURACY)
        test = run.tests.get((scenario, ACCURACY))
        if absent is not None or test is None or test.accuracy is None:
            cell = absent or missing("unscored", "no accuracy.txt")
            accuracy.append(cell)
            scored.append(cell)
            agreement.append(cell)
            continue
        percent, good, total = test.accuracy
        accuracy.append(number(percent, decimals=3))
        scored.append(number(float(total), note=f"{good} of {total} correct", integer=True))
        found = test.agreement
        if found and _float(found.get("percent")) is not None:
            agreement.append(
                number(
                    _float(found.get("percent")),
                    note=f"{found.get('agree')} of {found.get('total')} agree",
                    decimals=3,
                )
            )
        else:
            agreement.append(missing("n/a", "this backend reports no FP32 agreement"))
    return accuracy, scored, agreement


def _answers(run: _Run, scenario: str) -> dict[int, int] | None:
    """qsl index → the top-1 label of the run's accuracy test (None: nothing to compare)."""
    from orchestrator.images.catalog import BACKENDS
    from orchestrator.results.accuracy import logged_labels

    test = run.tests.get((scenario, ACCURACY))
    backend = BACKENDS.get(str(run.spec.get("backend")))
    if test is None or test.accuracy is None or backend is None:
        return None
    try:
        return logged_labels(test.folder / ACCURACY_LOG, backend.response_dtype)
    except (OSError, ValueError, ResultError):
        return None


def _same_data(run: _Run, base: _Run) -> bool:
    """Both runs answered the same samples under the same qsl indices: the same kind of
    dataset and size, the same count, each in its dataset's own val_map order."""

    def shape(manifest: dict[str, Any]) -> tuple[Any, ...]:
        assets = manifest.get("assets") or {}
        val_map = assets.get("val_map")  # absent from older manifests: the dataset's own
        own_order = val_map is None or Path(str(val_map)).parent == Path(str(assets.get("dataset")))
        return (assets.get("synthetic"), assets.get("dataset_images"), assets.get("count"),
                own_order)  # fmt: skip

    return shape(run.manifest) == shape(base.manifest) and bool(run.manifest.get("assets"))


def _same_answers_cells(runs: Sequence[_Run], scenario: str) -> list[Cell]:
    """Sample by sample, how often each run's accuracy answers equal the first run's: over the
    whole accuracy run, where the FP32 agreement covers only the guard images."""
    from orchestrator.results.accuracy import label_agreement

    base = _answers(runs[0], scenario)
    first = _absent(runs[0], scenario, ACCURACY)
    cells = [first or missing("baseline", "the runs to its right are compared with this one")]
    for run in runs[1:]:
        absent = _absent(run, scenario, ACCURACY)
        if absent is not None:
            cells.append(absent)
            continue
        if not _same_data(run, runs[0]):  # known from the manifests: no log is read
            cells.append(missing("n/a", "the runs used different datasets or counts"))
            continue
        found = _answers(run, scenario) if base is not None else None
        if base is None or found is None:
            cells.append(missing("n/a", f"no accuracy log to compare (here or in {LABELS[0]})"))
        else:
            same = label_agreement(found, base)
            note = f"{same.agree} of {same.total} samples answered alike"
            cells.append(number(same.percent if same.total else None, note=note, decimals=3))
    return cells


# --- settings --------------------------------------------------------------------------------


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list | tuple) and any(isinstance(v, dict | list) for v in value):
        for index, inner in enumerate(value):  # e.g. one record per GPU: devices.0.name …
            _flat(f"{prefix}.{index}", inner, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ", ".join(str(v) for v in value) if value else DASH
    elif value is None:
        out[prefix] = DASH
    else:
        out[prefix] = str(value).lower() if isinstance(value, bool) else str(value)


def _precision(backend: str) -> str:
    from orchestrator.images.catalog import BACKENDS

    definition = BACKENDS.get(backend)
    return definition.input_format if definition is not None else DASH


def _run_settings(run: _Run) -> dict[str, str]:
    """The run-level settings worth comparing: what ran, on which image, host and assets."""
    manifest, spec = run.manifest, run.spec
    out: dict[str, str] = {}
    if run.folder is None:
        return out  # nothing ran: the run card says which backend it was
    out["backend"] = str(spec.get("backend", DASH))
    out["device"] = str(spec.get("device", DASH))
    out["precision"] = _precision(out["backend"])
    out["profile"] = str(spec.get("profile", DASH))
    harness = spec.get("harness") or {}
    out["harness profile"] = str(harness.get("profile", DASH)) if harness else DASH
    if harness.get("overrides"):
        out["harness overrides"] = ", ".join(harness["overrides"])
    if harness:  # dell-trt: batches and threads per scenario, in the harness rows
        out["threads"] = out["max batch size"] = "harness settings"
    else:
        out["threads"] = str(spec.get("threads")) if spec.get("threads") else "CPU count"
        out["max batch size"] = str(spec.get("max_batchsize") or DASH)
    _flat("tuning", spec.get("tuning") or {}, out)
    if spec.get("profile") == "quick":
        _flat("quick", spec.get("quick") or {}, out)
    image = manifest.get("image") or {}
    out["image"] = str(image.get("tag", DASH))
    out["image id"] = str(image.get("id", DASH))[:19]
    out["base image"] = str(image.get("base_image", DASH))
    out["base image id"] = str(image.get("base_image_id", DASH))[:19]
    out["python (image)"] = str(image.get("python", DASH))
    out["LoadGen"] = str(manifest.get("loadgen_version") or DASH)
    out["mlorch"] = str(manifest.get("mlorch_version", DASH))
    for line in image.get("pip_freeze") or []:
        name, sep, version = str(line).partition("==")
        if sep:
            out[f"pip {name.lower()}"] = version
    host = manifest.get("host") or {}
    out["host CPU"] = str(host.get("cpu_model", DASH))
    out["host CPUs"] = str(host.get("cpu_count", DASH))
    out["host memory (GiB)"] = str(host.get("memory_gib", DASH))
    out["GPUs"] = _host_line(host).split(" · ", 1)[1]
    out["NVIDIA driver"] = str(host.get("nvidia_driver") or DASH)
    assets = manifest.get("assets") or {}
    out["assets"] = "synthetic" if assets.get("synthetic") else ("ImageNet" if assets else DASH)
    out["model md5"] = str(assets.get("model_md5", DASH))
    out["images"] = str(assets.get("count", DASH))
    recipe = manifest.get("recipe") or {}
    if recipe:
        out["recipe key"] = str(recipe.get("artifact_key", DASH))
        for guard in recipe.get("guards") or []:
            if isinstance(guard, dict):
                what = guard.get("engine") or guard.get("encoding") or "model"
                fraction = _float(guard.get("fraction"))
                agreed = f"{100 * fraction:.2f} % of {guard.get('n', '?')}" if fraction else DASH
                if guard.get("enforced") is False:
                    agreed += " (CPU twin's model, not used on cuda)"
                out[f"FP32 guard {what}"] = agreed
    return out


def _user_conf(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = folder.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            # resnet50.Offline.target_qps → target_qps (the scenario is the section's)
            out[f"user.conf {key.strip().split('.')[-1]}"] = value.strip()
    return out


def _sizing_settings(run: _Run, scenario: str) -> dict[str, str]:
    """Where the scenario's expected rate or latency came from (user, tuned, measured, cached,
    profile), its value and, when tuned, the Server bracket."""
    sizing = (run.manifest.get("sizing") or {}).get(scenario)
    if not isinstance(sizing, dict):
        return {}
    out = {
        "sizing: source": str(sizing.get("source", DASH)),
        f"sizing: {sizing.get('key', 'value')}": f"{sizing.get('value', DASH):g}"
        if isinstance(sizing.get("value"), int | float)
        else DASH,
    }
    bracket = sizing.get("bracket")
    if isinstance(bracket, list) and len(bracket) == 2:
        low, high = (f"{v:g}" if isinstance(v, int | float) else DASH for v in bracket)
        out["sizing: tuned bracket (highest VALID – lowest INVALID)"] = f"{low} – {high}"
    return out


def _scenario_settings(run: _Run, scenario: str) -> dict[str, str]:
    """This scenario's settings only: its sizing, its harness settings, what its SUT recorded
    (dell-trt's settings of the other scenarios left out) and its user.conf."""
    out = _sizing_settings(run, scenario)
    harness = (run.spec.get("harness") or {}).get("scenarios", {}).get(scenario)
    if isinstance(harness, dict):
        _flat("settings", harness, out)
    for mode in (PERFORMANCE, ACCURACY):
        test = run.tests.get((scenario, mode))
        if test is None:
            continue
        record = test.record.get("harness") or read_json_object(test.folder / "harness.json")
        if isinstance(record, dict) and record:
            kept = {k: v for k, v in record.items() if k not in VOLATILE_HARNESS_KEYS}
            read = kept.get("settings")
            if isinstance(read, dict):  # its per-scenario part is the "settings." rows above
                kept["settings"] = {k: v for k, v in read.items() if k != "scenarios"}
            _flat("harness", kept, out)
            out.update(_user_conf(test.folder.parent / "user.conf"))
            break
    return out


def _setting_rows(per_run: Sequence[dict[str, str]]) -> tuple[SettingRow, ...]:
    keys: list[str] = []
    for values in per_run:
        keys += [key for key in values if key not in keys]
    recorded = tuple(bool(values) for values in per_run)
    rows = [SettingRow(key, tuple(v.get(key, DASH) for v in per_run), recorded) for key in keys]
    return tuple(sorted(rows, key=lambda row: not row.differs))  # stable: differing ones first


# --- plots -----------------------------------------------------------------------------------


def _why(cell: Cell) -> str:
    return cell.text if cell.text != DASH else (cell.note or "missing")


def _latency_plot(scenario: str, runs: Sequence[_Run], presence: Sequence[Cell]) -> Plot:
    lines = []
    for index, (run, state) in enumerate(zip(runs, presence, strict=True)):
        test = _perf(run, scenario)
        points: list[tuple[float, float]] = []
        if test is not None and test.detail is not None:
            for percentile, name in PERCENTILES:
                value = _ns_to_ms(test.detail.get(_latency_key(scenario, name, test.detail)))
                if value is not None:
                    points.append((percentile, value))
        note = "" if points else (_why(state) if test is None else "no latencies logged")
        lines.append(LineSeries(index, run.summary.name, tuple(points), markers=True, note=note))
    values = [v for line in lines for _, v in line.points]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 30
    per = "per query" if scenario == "MultiStream" else "per sample"
    return Plot(
        slug=f"{scenario.lower()}-latency",
        title=f"{scenario}: latency by percentile ({per})",
        kind="line",
        x_label="percentile",
        y_label="latency (ms)",
        x_scale="nines",
        y_scale="log" if log else "linear",
        lines=tuple(lines),
        empty="" if values else "no latencies in any run",
    )


def _headline_plot(
    scenario: str, metric: str, better: Better, row: Row, runs: Sequence[_Run]
) -> Plot:
    bars = tuple(
        Bar(
            index,
            run.summary.name,
            cell.value,
            cell.text if cell.value is not None else _why(cell),
            cell.badge,
        )
        for index, (run, cell) in enumerate(zip(runs, row.cells, strict=True))
    )
    return Plot(
        slug=f"{scenario.lower()}-result",
        title=f"{scenario}: {metric} ({better} is better)",
        kind="bars",
        x_label=metric,
        y_label="run",
        bars=bars,
        empty="" if any(b.value is not None for b in bars) else "no result in any run",
    )


def _telemetry_plots(
    scenario: str, runs: Sequence[_Run], presence: Sequence[Cell]
) -> tuple[Plot, ...]:
    power, util, bands = [], [], []
    for index, (run, state) in enumerate(zip(runs, presence, strict=True)):
        label, name = run.summary.label, run.summary.name
        test = _perf(run, scenario)
        data = test.telemetry if test is not None else None
        if data is None:
            why = (
                _why(state)
                if test is None
                else ("telemetry unreadable" if test.telemetry_problem else "no telemetry")
            )
            power.append(LineSeries(index, name, (), note=why))
            util.append(LineSeries(index, name, (), note=why))
            continue
        power.append(LineSeries(index, name, data.power_w,
                                note="" if data.power_w else "no GPU power samples"))  # fmt: skip
        util.append(LineSeries(index, f"{label} GPU SM", data.sm_util_pct,
                               note="" if data.sm_util_pct else "no GPU samples"))  # fmt: skip
        util.append(LineSeries(index, f"{label} host CPU", data.cpu_util_pct, dashed=True,
                               note="" if data.cpu_util_pct else "no host samples"))  # fmt: skip
        if data.window_s is not None:
            bands.append(Band(index, data.window_s[0], data.window_s[1], f"{label} LoadGen window"))
    slug = scenario.lower()
    if not any(line.points for line in (*power, *util)):
        return (
            Plot(f"{slug}-telemetry", f"{scenario}: power and utilisation", "line",
                 "time since container start (s)", "", lines=tuple(power),
                 empty="no telemetry in any run"),
        )  # fmt: skip
    return (
        Plot(f"{slug}-power", f"{scenario}: GPU board power, all GPUs", "line",
             "time since container start (s)", "power (W)", lines=tuple(power),
             bands=tuple(bands),
             empty="" if any(line.points for line in power) else "no GPU power in any run"),
        Plot(f"{slug}-utilisation", f"{scenario}: utilisation", "line",
             "time since container start (s)", "utilisation (%)", lines=tuple(util),
             bands=tuple(bands), y_max=100.0),
    )  # fmt: skip


# --- building the comparison -----------------------------------------------------------------

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _scenario_metric(scenario: str, runs: Sequence[_Run]) -> tuple[str, Better]:
    for run in runs:
        test = _perf(run, scenario)
        if test is not None and test.result is not None:
            result = test.result
            better: Better = "lower" if result.unit == "ms" else "higher"
            return (_metric_label(result.metric, result.unit), better)
    from orchestrator.results.loadgen_log import METRICS

    _, metric, unit, _ = METRICS[scenario]
    return (_metric_label(metric, unit), "lower" if unit == "ms" else "higher")


def _metric_label(metric: str, unit: str) -> str:
    """'p90 latency' + 'ms' → 'p90 latency (ms)'; 'samples/s' + 'samples/s' → 'samples/s'."""
    return metric if unit in metric else f"{metric} ({unit})"


def _section(scenario: str, runs: Sequence[_Run]) -> ScenarioSection:
    metric, better = _scenario_metric(scenario, runs)
    presence: list[Cell] = []
    tests: list[_Test | None] = []
    for run in runs:
        absent = _absent(run, scenario, PERFORMANCE)
        test = _perf(run, scenario)
        tests.append(test)
        presence.append(absent if absent is not None else Cell("ok", None, "", "good"))
    rows = []
    for spec in _perf_rows(scenario, metric, better):
        cells = [
            spec.figure(test) if test is not None else state
            for test, state in zip(tests, presence, strict=True)
        ]
        rows.append(make_row(spec.key, spec.label, cells, spec.better, spec.group))
    accuracy, scored, agreement = _accuracy_cells(runs, scenario)
    rows += [
        make_row("accuracy", "Accuracy, top-1 (%)", accuracy, group="Accuracy"),
        make_row("accuracy_images", "Images scored", scored, group="Accuracy"),
        make_row("fp32_agreement", "FP32 agreement (%)", agreement, group="Accuracy"),
    ]
    if len(runs) > 1:
        same = _same_answers_cells(runs, scenario)
        label = f"Same top-1 as {LABELS[0]} (%)"
        rows.append(make_row("same_answers", label, same, group="Accuracy"))
    rows.sort(key=lambda row: GROUPS.index(row.group))
    rows = _fold_absent_telemetry(rows)
    reasons: list[tuple[str, ...]] = []
    for test, state in zip(tests, presence, strict=True):
        if test is None:
            reasons.append((f"{state.text} — {state.note}" if state.note else state.text,))
        elif test.result is not None and test.result.valid is False:
            reasons.append(reasons_of(test))
        else:
            reasons.append(())
    headline = rows[0]
    plots = (
        _headline_plot(scenario, metric, better, headline, runs),
        _latency_plot(scenario, runs, presence),
        *_telemetry_plots(scenario, runs, presence),
    )
    settings = _setting_rows([_scenario_settings(run, scenario) for run in runs])
    return ScenarioSection(
        scenario, metric, tuple(presence), tuple(rows), tuple(reasons), plots, settings
    )


def _fold_absent_telemetry(rows: list[Row]) -> list[Row]:
    """When no run has telemetry for a scenario, one row says so instead of five."""
    energy = [row for row in rows if row.group == ENERGY]
    if not energy or any(cell.tone == "plain" or cell.tone == "bad"
                         for row in energy for cell in row.cells):  # fmt: skip
        return rows  # some figure, or an unreadable file, deserves its own rows
    first = energy[0]
    if any(row.cells != first.cells for row in energy):
        return rows
    folded = Row("telemetry", "Power, energy, utilisation", first.cells, (), ENERGY)
    index = rows.index(first)
    return [*rows[:index], folded, *(row for row in rows[index:] if row.group != ENERGY)]


def _scenarios(runs: Sequence[_Run]) -> list[str]:
    found: set[str] = set()
    for run in runs:
        found.update(str(s) for s in run.spec.get("scenarios") or ())
        found.update(scenario for scenario, _ in run.tests)
    ordered = [s for s in SCENARIO_ORDER if s in found]
    return ordered + sorted(found - set(SCENARIO_ORDER))


def _which(labels: Sequence[str]) -> str:
    """'Run A used' / 'Runs A and B used' / '' for none."""
    if not labels:
        return ""
    if len(labels) == 1:
        return f"Run {labels[0]} used"
    return f"Runs {', '.join(labels[:-1])} and {labels[-1]} used"


def _notes(runs: Sequence[_Run], settings: Sequence[SettingRow]) -> tuple[str, ...]:
    notes = []
    quick = _which([r.summary.label for r in runs if r.summary.quick])
    if quick:
        notes.append(
            f"{quick} the quick profile (shortened durations and counts): not "
            "submission-valid; compare trends, not absolute figures."
        )
    synthetic = _which([r.summary.label for r in runs if r.summary.synthetic])
    if synthetic:
        notes.append(
            f"{synthetic} synthetic assets (a random-weight model and generated images): "
            "accuracy is a plumbing check, not ImageNet accuracy."
        )
    differing = {s.key for s in settings if s.differs}
    if differing & {"host CPU", "GPUs", "host CPUs"}:
        notes.append("The runs come from different hosts: hardware differs as well as software.")
    if "model md5" in differing or "assets" in differing:
        notes.append("The runs used different models or datasets: accuracy is not comparable.")
    unfinished = [f"{r.summary.label} ({r.summary.status})" for r in runs
                  if r.summary.status != "complete"]  # fmt: skip
    if unfinished:
        notes.append(f"Not every run completed: {', '.join(unfinished)}.")
    return tuple(notes)


def build_comparison(sources: Sequence[RunSource], *, generated: str | None = None) -> Comparison:
    """Read every run folder once and lay out the comparison (the first run is the baseline)."""
    if not sources:
        raise ConfigError("nothing to compare", key="run")
    if len(sources) > len(LABELS):
        raise ConfigError(f"at most {len(LABELS)} runs can be compared", key="run")
    runs = [_load_run(source, LABELS[index]) for index, source in enumerate(sources)]
    sections = [_section(scenario, runs) for scenario in _scenarios(runs)]
    overview = tuple(
        Row(
            f"{section.scenario}.result",
            f"{section.scenario} · {section.metric}",
            section.rows[0].cells,
            section.rows[0].speedups,
        )
        for section in sections
    )
    settings = _setting_rows([_run_settings(run) for run in runs])
    backends = " vs ".join(dict.fromkeys(run.summary.backend for run in runs))
    return Comparison(
        title=f"{backends}: {len(runs)} runs compared",
        generated=generated or datetime.now(UTC).isoformat(timespec="seconds"),
        runs=tuple(run.summary for run in runs),
        overview=overview,
        settings=settings,
        scenarios=tuple(sections),
        notes=_notes(runs, settings),
    )


def iter_cells(comparison: Comparison) -> Iterator[Cell]:
    """Every figure of the comparison (for renderers' checks and tests)."""
    for row in comparison.rows():
        yield from row.cells
        yield from (cell for cell in row.speedups if cell is not None)
