"""The comparison's plots: results, latency by percentile, power and utilisation over time."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.report.loading import _latency_key, _ns_to_ms, _perf, _Run
from orchestrator.report.model import (
    DASH,
    PERCENTILES,
    Band,
    Bar,
    Better,
    Cell,
    LineSeries,
    Plot,
    Row,
)

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
