"""Comparison reports: one model of the comparison (model.py), renderers that only read it
(html.py, markdown.py, terminal.py, svg.py for the plots), and the files they are written to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from contract.locks import atomic_write_text
from orchestrator.report.model import Comparison

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
JSON_FILE = "comparison.json"


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    html: Path
    markdown: Path
    plots: tuple[Path, ...]
    data: Path


def default_output(runs_dir: Path) -> Path:
    """runs/compare-<timestamp>/ (not a run: `mlorch runs` lists folders with a manifest)."""
    base = runs_dir / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder, number = base, 1
    while folder.exists():  # two comparisons in one second keep both
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    return folder


def write_report(comparison: Comparison, output: Path) -> ReportFiles:
    """report.html (self-contained), report.md with plots/*.svg, and comparison.json."""
    from orchestrator.report.html import render_html
    from orchestrator.report.markdown import PLOTS_DIR, plot_file, render_markdown
    from orchestrator.report.svg import render

    output.mkdir(parents=True, exist_ok=True)
    (output / PLOTS_DIR).mkdir(exist_ok=True)
    plots = []
    for plot in comparison.plots():
        path = output / plot_file(plot.slug)
        atomic_write_text(path, render(plot, standalone=True))
        plots.append(path)
    html, markdown, data = output / HTML_FILE, output / MARKDOWN_FILE, output / JSON_FILE
    atomic_write_text(markdown, render_markdown(comparison))
    atomic_write_text(data, json.dumps(comparison.to_dict(), indent=1, default=str) + "\n")
    atomic_write_text(html, render_html(comparison))  # last: its presence means complete
    return ReportFiles(output, html, markdown, tuple(plots), data)
