"""HTML, Markdown and terminal output all come from one model: every figure appears in each;
the HTML is self-contained; the plots are well-formed SVG with axes, ticks and legends."""

from __future__ import annotations

import html
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.report import write_report
from orchestrator.report.build import build_comparison, iter_cells
from orchestrator.report.html import render_html
from orchestrator.report.markdown import render_markdown
from orchestrator.report.model import Comparison
from orchestrator.report.svg import linear_ticks, log_ticks, nice_step, nines, render
from orchestrator.report.terminal import render_terminal
from tests.support.report_fixtures import (
    GOLDEN_RUNS,
    RUN_A,
    RUN_B,
    RUN_C,
    perf_dir,
    write_telemetry,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    """A vs B with telemetry on Offline, plus the interrupted partial run C."""
    golden = GOLDEN_RUNS
    work = tmp_path_factory.mktemp("runs")
    for run in (RUN_A, RUN_B, RUN_C):
        shutil.copytree(golden / run, work / run)
    write_telemetry(perf_dir(work, RUN_A, "Offline"), window=(1.5, 12.75), samples=64)
    write_telemetry(perf_dir(work, RUN_B, "Offline"), window=(1.0, 6.25), samples=64, gpus=2)
    return build_comparison([work / RUN_A, work / RUN_B, work / RUN_C], generated="test")


def terminal_text(comparison: Comparison) -> str:
    console = Console(record=True, width=260, color_system=None)
    for table in render_terminal(comparison):
        console.print(table)
    return console.export_text()


def test_every_figure_appears_in_all_three(comparison: Comparison) -> None:
    page = html.unescape(render_html(comparison))
    markdown = render_markdown(comparison)
    terminal = terminal_text(comparison)
    texts = {cell.text for cell in iter_cells(comparison)}
    assert len(texts) > 60  # real figures, not a handful of placeholders
    for text in texts:
        assert text in page, text
        assert text.replace("|", "\\|") in markdown, text
        assert text in terminal, text
    for run in comparison.runs:
        for output in (page, markdown, terminal):
            assert run.run_id in output


def test_rows_are_in_the_same_order_everywhere(comparison: Comparison) -> None:
    page = html.unescape(render_html(comparison))
    markdown = render_markdown(comparison)
    terminal = terminal_text(comparison)
    labels = [row.label for row in comparison.scenarios[-1].rows]  # Offline
    starts = (
        page.index('id="offline"'),
        markdown.index("## Offline"),
        terminal.rindex("Offline · samples/s"),  # the section's table, after the overview
    )
    for output, start in zip((page, markdown, terminal), starts, strict=True):
        position = start
        for label in labels:
            position = output.index(label, position + 1)  # each one after the one before


def test_html_is_self_contained(comparison: Comparison) -> None:
    page = render_html(comparison)
    assert page.startswith("<!DOCTYPE html>")
    for forbidden in ("http://", "https://", "<script", "<link", "<img", "url(", "@import", "src="):
        assert forbidden not in page, forbidden
    assert page.count("<svg") == sum(1 for _ in comparison.plots())
    assert "<details>" in page  # the full settings list folds away


def test_plots_are_svg_with_axes_and_legends(comparison: Comparison) -> None:
    for plot in comparison.plots():
        root = ET.fromstring(render(plot, standalone=True).split("\n", 1)[1])
        assert root.tag == f"{SVG}svg"
        texts = [t.text or "" for t in root.iter(f"{SVG}text")]
        assert plot.title in texts
        if plot.empty:
            assert plot.empty in texts
            continue
        assert plot.x_label in texts
        if plot.kind == "line":
            assert plot.y_label in texts
            assert len(list(root.iter(f"{SVG}path"))) == sum(
                1 for line in plot.lines if line.points
            )
            for line in plot.lines:
                assert any(line.label in t for t in texts)  # legend entry
    latency = next(p for p in comparison.plots() if p.slug == "offline-latency")
    texts = [t.text for t in ET.fromstring(render(latency)).iter("text")]
    assert {"min", "50", "90", "99", "99.9"} <= set(texts)  # the percentile axis


def test_power_plot_marks_the_loadgen_windows(comparison: Comparison) -> None:
    power = next(p for p in comparison.plots() if p.slug == "offline-power")
    svg = render(power)
    assert "A LoadGen window" in svg
    assert "B LoadGen window" in svg
    assert "C · reference · cpu — no telemetry" in svg  # C ran Offline, without telemetry
    root = ET.fromstring(svg)
    assert len([r for r in root.iter("rect") if r.get("fill-opacity")]) == 2  # shaded windows


def test_missing_bars_are_text_not_zero(comparison: Comparison) -> None:
    bars = next(p for p in comparison.plots() if p.slug == "singlestream-result")
    svg = render(bars)
    assert bars.bars[2].value is None
    assert ">not run<" in svg
    root = ET.fromstring(svg)
    assert len([r for r in root.iter("rect") if r.get("rx")]) == 2  # A and B only


def test_write_report_files(comparison: Comparison, tmp_path: Path) -> None:
    files = write_report(comparison, tmp_path / "out")
    assert files.html.read_text() == render_html(comparison)
    markdown = files.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.svg)\)", markdown)
    assert sorted(links) == sorted(f"plots/{p.name}" for p in files.plots)
    for plot in files.plots:
        assert ET.parse(plot).getroot().tag == f"{SVG}svg"
    assert '"run_id": "' + RUN_A in files.data.read_text()


def test_nice_ticks() -> None:
    assert nice_step(10) == 2.0
    assert nice_step(7) == 2.0
    assert linear_ticks(0, 2.95) == (0.0, 3.0, [0.0, 1.0, 2.0, 3.0])
    assert linear_ticks(0, 100) == (0.0, 100.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0])
    assert linear_ticks(1.2, 12.8, 6) == (0.0, 14.0, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0])
    low, high, ticks = log_ticks(0.4, 900)
    assert (low, high) == (0.1, 1000.0)
    assert ticks == [0.1, 1.0, 10.0, 100.0, 1000.0]
    assert log_ticks(3, 40)[2] == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    assert nines(90) == pytest.approx(1.0)
    assert nines(99.9) == pytest.approx(3.0)


def test_terminal_keeps_run_ids_and_setting_keys_whole_in_80_columns(
    comparison: Comparison,
) -> None:
    console = Console(record=True, width=80, color_system=None)
    for table in render_terminal(comparison, detailed=False):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    for run in comparison.runs:
        assert any(run.run_id in line for line in lines), run.run_id  # on one line, uncut
    for setting in comparison.differing_settings:
        assert any(setting.key in line for line in lines), setting.key
