"""What self-sizing costs (prints figures and ratios; no assertions).

Per scenario of a default quick run: the seconds of the measured pass a test runs before its
LoadGen test (harness.json `sizing.measurement.seconds`) against that test's LoadGen time, for a
first run that has to measure (the sizing cache emptied for it) and a second run that finds the
cache. Target: at most 10 % of a quick run's LoadGen time per scenario, and nothing the second
time.

Usage (from the repository root): python -m benchmarks.sizing_cost [--backend reference]
    [--runs RUN_DIR RUN_DIR]   (two existing run folders instead: the first measured, the second
                                cached)
Needs a running Docker engine (and the local base image where no registry is reachable).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.paths import cache_dir
from orchestrator.running.sizing import CACHE_FOLDER, TUNED_FOLDER


def quick_run(backend: str, cwd: Path) -> Path:
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "orchestrator", "-q", "up", backend, "--device", "cpu"]
    result = subprocess.run(
        [*command, "--quick", "--no-tuned"], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"mlorch up {backend} failed:\n{result.stderr[-3000:]}")
    return max((cwd / "runs").glob("*/manifest.json")).parent


def costs(run_dir: Path) -> list[tuple[str, str, float, float]]:
    """(scenario, sizing source, seconds of the measured pass, LoadGen seconds) per scenario."""
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    rows = []
    for test in manifest["tests"]:
        if test["mode"] != "PerformanceOnly":
            continue
        sizing = (test.get("harness") or {}).get("sizing")
        measured = float(sizing["measurement"]["seconds"]) if sizing else 0.0
        source = manifest["sizing"][test["scenario"]]["source"]
        rows.append((test["scenario"], source, measured, float(test["loadgen_seconds"])))
    return rows


def report(label: str, run_dir: Path) -> None:
    print(f"\n{label}: {run_dir.name}")
    print(f"{'scenario':<14}{'source':<22}{'pass (s)':>10}{'LoadGen (s)':>13}{'cost':>8}")
    for scenario, source, measured, loadgen in costs(run_dir):
        share = f"{100 * measured / loadgen:.1f} %" if loadgen else "—"
        print(f"{scenario:<14}{source:<22}{measured:>10.2f}{loadgen:>13.2f}{share:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="reference")
    parser.add_argument("--runs", nargs=2, type=Path, metavar="RUN_DIR")
    args = parser.parse_args()
    if args.runs:
        first, second = args.runs
    else:
        for folder in (CACHE_FOLDER, TUNED_FOLDER):  # the first run must measure
            shutil.rmtree(cache_dir() / folder, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="sizing-cost-"))
        first = quick_run(args.backend, work / "first")
        second = quick_run(args.backend, work / "second")
    report("first run (measures)", first)
    report("second run (same host, image, settings)", second)


if __name__ == "__main__":
    main()
