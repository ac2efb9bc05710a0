"""Headless Chromium renders the HTML report: the screenshot is not blank and the DOM holds
both runs' ids and figures.

Chromium comes from Debian's `chromium` package (scripts/setup-host.sh installs it); without it
the test skips, unless MLORCH_REQUIRE_ENGINE=1 (the test suite's set-up, CI), where it fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orchestrator.report import write_report
from orchestrator.report.build import build_comparison, iter_cells
from tests.support.report_fixtures import GOLDEN_RUNS, RUN_A, RUN_B, perf_dir, write_telemetry

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

pytestmark = pytest.mark.browser
WIDTH, HEIGHT = 1400, 2000


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (scripts/setup-host.sh installs it)"
        if os.environ.get("MLORCH_REQUIRE_ENGINE") == "1":
            pytest.fail(f"MLORCH_REQUIRE_ENGINE=1 but {message}")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    golden = GOLDEN_RUNS
    work = tmp_path_factory.mktemp("runs")
    for run in (RUN_A, RUN_B):
        shutil.copytree(golden / run, work / run)
    write_telemetry(perf_dir(work, RUN_A, "Offline"), window=(1.5, 12.75), samples=64)
    write_telemetry(perf_dir(work, RUN_B, "Offline"), window=(1.0, 6.25), samples=64)
    comparison = build_comparison([work / RUN_A, work / RUN_B])
    files = write_report(comparison, work / "report")
    figures = sorted({cell.text for cell in iter_cells(comparison) if cell.value is not None})
    return files.html, [run.run_id for run in comparison.runs], figures


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_screenshot_is_not_blank(
    chromium: str, report: tuple[Path, list[str], list[str]], tmp_path: Path
) -> None:
    import cv2

    page, _, _ = report
    png = tmp_path / "report.png"
    result = run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        page.as_uri(),
    )
    assert png.is_file(), result.stderr[-2000:]
    image = cv2.imread(str(png))
    assert image.shape == (HEIGHT, WIDTH, 3)
    grey = image.mean(axis=2)
    assert grey.std() > 15  # text, tables and plots, not a blank page
    # colour from the run palette is on screen (run chips, bars, lines), not only grey text
    saturation = image.max(axis=2).astype(int) - image.min(axis=2).astype(int)
    assert np.count_nonzero(saturation > 80) > 2000
    # content all the way down the first screen (the overview and the first scenario)
    bands = [grey[y : y + 250].std() for y in range(0, HEIGHT, 250)]
    assert min(bands) > 3, bands


def test_dom_holds_both_runs_and_their_figures(
    chromium: str, report: tuple[Path, list[str], list[str]], tmp_path: Path
) -> None:
    page, run_ids, figures = report
    result = run_chromium(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = html.unescape(result.stdout)
    assert "<svg" in dom
    assert "</table>" in dom
    for run_id in run_ids:
        assert run_id in dom
    assert len(figures) > 40
    missing = [figure for figure in figures if figure not in dom]
    assert not missing


# Measured by the browser after layout: every table's right edge against the edge of what
# holds it (its scrolling frame, where it has one, else its card: a table wider than its frame is
# cut off), and every INVALID reason and note against its card. The report itself has no
# script; a copy of it gets this one.
MEASURE = """<script>
window.addEventListener("load", () => {
  const found = [];
  for (const card of document.querySelectorAll("section.block")) {
    const name = card.id || card.querySelector("h2")?.textContent || "?";
    for (const item of card.querySelectorAll("table, .reasons li, .notes li")) {
      const frame = item.tagName === "TABLE" ? (item.closest(".scroll") || card) : card;
      const edge = frame.getBoundingClientRect().right;
      const box = item.getBoundingClientRect();
      if (box.width > 0 && box.right > edge + 0.5) {
        found.push(`${name}: ${item.tagName.toLowerCase()}.${item.className} ends at `
          + `${box.right.toFixed(0)} px, what holds it at ${edge.toFixed(0)} px`);
      }
    }
  }
  document.body.setAttribute("data-overflow", JSON.stringify(found));
});
</script>"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_no_table_is_wider_than_its_card(
    chromium: str, report: tuple[Path, list[str], list[str]], tmp_path: Path, width: int
) -> None:
    page, _, _ = report
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    result = run_chromium(
        chromium, tmp_path / "profile", f"--window-size={width},2000", "--dump-dom",
        measured.as_uri(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-overflow="([^"]*)"', result.stdout)
    assert match is not None, "the measuring script did not run"
    overflow = json.loads(html.unescape(match.group(1)))
    assert overflow == []
