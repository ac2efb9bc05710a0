"""Building the comparison of several runs: the one entry point (`build_comparison`) the
report commands call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from orchestrator.errors import ConfigError
from orchestrator.report.loading import (
    RunSource,
    _absent,
    _load_run,
    _perf,
    _Run,
    _Test,
    reasons_of,
)
from orchestrator.report.model import (
    ENERGY,
    GROUPS,
    LABELS,
    PERFORMANCE,
    SCENARIO_ORDER,
    Better,
    Cell,
    Comparison,
    Row,
    ScenarioSection,
    SettingRow,
    make_row,
)
from orchestrator.report.plots import _headline_plot, _latency_plot, _telemetry_plots
from orchestrator.report.rows import (
    _accuracy_cells,
    _perf_rows,
    _run_settings,
    _same_answers_cells,
    _scenario_settings,
    _setting_rows,
)

# --- building the comparison -----------------------------------------------------------------


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
