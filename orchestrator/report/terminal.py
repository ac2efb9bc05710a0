"""The comparison as rich tables for the terminal (through the Terminal gateway)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from orchestrator.report.model import Cell, Comparison, Row, RunSummary, ScenarioSection

STYLES = {"missing": "dim italic", "bad": "red", "good": "green", "warn": "yellow", "plain": ""}


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return ""
    text = escape(cell.text)
    style = STYLES[cell.tone]
    if style:
        text = f"[{style}]{text}[/]"
    if cell.badge:
        text += " [bold red]INVALID[/]" if cell.badge == "INVALID" else " [green]VALID[/]"
    return text


def _table(title: str, runs: Sequence[RunSummary], rows: Sequence[Row], first: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column(first, overflow="fold")
    for run in runs:
        table.add_column(f"{run.label} · {run.backend}", justify="right", overflow="fold")
    ratios = len(runs) > 1
    if ratios:
        for run in runs[1:]:
            table.add_column(f"{run.label} vs {runs[0].label}", justify="right", overflow="fold")
    group = None
    for row in rows:
        if row.group and row.group != group:
            if group is not None:
                table.add_section()
            group = row.group
        line = [escape(row.label), *(_cell(cell) for cell in row.cells)]
        if ratios:
            speedups = row.speedups or (None,) * len(runs)
            line += [_cell(cell) for cell in speedups[1:]]
        table.add_row(*line)
    return table


def _runs_table(comparison: Comparison) -> Table:
    """The runs compared; a run id is what `compare` and `submit` take, so it is never cut."""
    table = Table(title=comparison.title, title_justify="left", title_style="bold")
    table.add_column("run")
    table.add_column("id", no_wrap=True)
    table.add_column("backend (device, profile)")
    table.add_column("status")
    for run in comparison.runs:
        style = {"complete": "green", "failed": "red"}.get(run.status, "yellow")
        table.add_row(
            run.label, escape(run.run_id),
            f"{escape(run.backend)} ({escape(run.device)}, {escape(run.profile)})",
            f"[{style}]{escape(run.status)}[/]",
        )  # fmt: skip
    return table


def _section_table(comparison: Comparison, section: ScenarioSection) -> Table:
    table = _table(
        f"{section.scenario} · {section.metric}", comparison.runs, section.rows, "figure"
    )
    reasons = [
        f"{comparison.runs[i].label}: {'; '.join(found)}"
        for i, found in enumerate(section.reasons)
        if found
    ]
    if reasons:
        table.caption = escape(" | ".join(reasons))
        table.caption_justify = "left"
    return table


def render_terminal(comparison: Comparison, *, detailed: bool = True) -> list[Table]:
    """Runs, the overview, each scenario's figures (when `detailed`) and what differs."""
    tables = [_runs_table(comparison)]
    tables.append(_table("At a glance", comparison.runs, comparison.overview, "scenario · result"))
    if detailed:
        tables += [_section_table(comparison, section) for section in comparison.scenarios]
    differing = comparison.differing_settings
    settings = Table(title="What differs (run settings)", title_justify="left", title_style="bold")
    if not differing:
        settings.show_header = False
        settings.add_column("")
        settings.add_row(f"all {len(comparison.settings)} run settings are the same")
        return [*tables, settings]
    settings.add_column("setting", no_wrap=True)  # a key is read whole
    for run in comparison.runs:
        settings.add_column(run.label, overflow="fold")
    for setting in differing:
        settings.add_row(escape(setting.key), *(escape(v) for v in setting.values))
    return [*tables, settings]
