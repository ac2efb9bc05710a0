"""The comparison as Markdown: the same tables as the HTML, the plots as the same SVGs written
next to it (linked, so the file reads well on a code host and in a terminal pager)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.report.model import Cell, Comparison, Row, RunSummary, ScenarioSection, SettingRow

PLOTS_DIR = "plots"


def _md(text: object) -> str:
    """Text safe inside a table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cell(cell: Cell) -> str:
    text = _md(cell.text)
    if cell.tone == "missing":
        text = f"*{text}*"
    elif cell.tone == "bad":
        text = f"**{text}**"
    if cell.badge:
        text += f" **{cell.badge}**" if cell.badge == "INVALID" else f" {cell.badge}"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rows_table(runs: Sequence[RunSummary], rows: Sequence[Row], first: str) -> str:
    ratios = len(runs) > 1
    header = [first, *(f"{run.label} · {run.backend}" for run in runs)]
    if ratios:
        header += [f"{run.label} vs {runs[0].label}" for run in runs[1:]]
    body: list[list[str]] = []
    group = None
    for row in rows:
        if row.group and row.group != group:
            group = row.group
            body.append([f"**{_md(group)}**", *([""] * (len(header) - 1))])
        line = [_md(row.label), *(_cell(cell) for cell in row.cells)]
        if ratios:
            speedups = row.speedups or (None,) * len(runs)
            line += [_cell(cell) if cell is not None else "" for cell in speedups[1:]]
        body.append(line)
    return _table(header, body)


def _settings_table(runs: Sequence[RunSummary], settings: Sequence[SettingRow]) -> str:
    header = ["setting", *(run.label for run in runs)]
    rows = [[_md(s.key), *(f"`{_md(v)}`" for v in s.values)] for s in settings]
    return _table(header, rows, numeric_from=len(header))


def _settings_block(runs: Sequence[RunSummary], settings: Sequence[SettingRow], what: str) -> str:
    if not settings:
        return f"No {what} recorded."
    differing = [s for s in settings if s.differs]
    top = (
        _settings_table(runs, differing)
        if differing
        else f"All {len(settings)} {what} are the same in every run."
    )
    return (
        f"{top}\n\n<details><summary>All {len(settings)} {what}</summary>\n\n"
        f"{_settings_table(runs, settings)}\n\n</details>"
    )


def plot_file(slug: str) -> str:
    return f"{PLOTS_DIR}/{slug}.svg"


def _section(comparison: Comparison, section: ScenarioSection) -> str:
    runs = comparison.runs
    parts = [
        f"## {section.scenario}",
        f"Result: {_md(section.metric)}",
        _rows_table(runs, section.rows, "figure"),
    ]
    reasons = []
    for index, found in enumerate(section.reasons):
        if found:
            what = "not measured" if section.presence[index].tone != "good" else "INVALID"
            reasons.append(f"- **{runs[index].label} {what}:** {'; '.join(found)}")
    if reasons:
        parts.append("\n".join(reasons))
    parts.append("\n".join(f"![{_md(p.title)}]({plot_file(p.slug)})" for p in section.plots))
    parts.append("### Settings of this scenario")
    parts.append(_settings_block(runs, section.settings, "scenario settings"))
    return "\n\n".join(parts)


def render_markdown(comparison: Comparison) -> str:
    """The whole report as Markdown (plots referenced as plots/<slug>.svg)."""
    runs = comparison.runs
    run_rows = [
        [
            f"**{run.label}**",
            f"`{_md(run.run_id)}`",
            _md(run.backend),
            _md(run.device),
            _md(run.profile),
            _md(run.status),
            _md(run.host),
            _md(run.error or ""),
        ]
        for run in runs
    ]
    parts = [
        f"# {_md(comparison.title)}",
        f"Generated {comparison.generated} by `mlorch compare` · baseline "
        f"{runs[0].label if runs else '—'} (speed-ups are relative to it; above 1× is better)",
        _table(
            ["run", "id", "backend", "device", "profile", "status", "host", "error"],
            run_rows,
            numeric_from=8,
        ),
    ]
    if comparison.notes:
        parts.append("\n".join(f"> - {note}" for note in comparison.notes))
    parts.append("## At a glance")
    parts.append(
        _rows_table(runs, comparison.overview, "scenario · result")
        if comparison.overview
        else "No scenario in any run."
    )
    parts.append("## What differs")
    parts.append(_settings_block(runs, comparison.settings, "run settings"))
    parts += [_section(comparison, section) for section in comparison.scenarios]
    return "\n\n".join(parts) + "\n"
