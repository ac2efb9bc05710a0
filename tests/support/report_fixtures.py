"""Fixtures of the comparison report's tests: the golden runs (real `mlorch up reference --device
cpu --quick` run folders, under tests/golden/runs/) and a writer of a test folder's `telemetry/`
the way the telemetry sampler's contract describes it (gpu.csv, host.csv, summary.json), from
deterministic curves, so the report's power and utilisation plots and its energy figures can be
tested before a GPU run exists.

summary.json is computed from the CSV rows it writes (mean/max power and the trapezoid energy
inside the LoadGen window), so a test can recompute the figures independently.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOLDEN_RUNS = Path(__file__).parent.parent / "golden" / "runs"
RUN_A = "20261123-171232-reference-0375"  # 2 threads, max batch 32; all four scenarios
RUN_B = "20261123-172128-reference-4108"  # 1 thread, max batch 8
RUN_C = "20261123-173113-reference-c77c"  # Offline + Server, 1 thread; SIGTERM during Server


def perf_dir(runs: Path, run: str, scenario: str) -> Path:
    return runs / run / "reference" / scenario / "performance"


GPU_HEADER = [
    "t_s",
    "gpu",
    "power_w",
    "energy_mj",
    "sm_util_pct",
    "mem_util_pct",
    "mem_used_mib",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "temp_c",
    "throttle_reasons",
]
HOST_HEADER = ["t_s", "cpu_util_pct", "mem_used_mib"]


@dataclass(frozen=True)
class Curve:
    """Board power of one GPU: idle outside the LoadGen window, a plateau with a ripple in it."""

    idle_w: float = 62.0
    busy_w: float = 285.0
    ripple_w: float = 9.0
    busy_util: float = 96.0

    def power(self, t: float, window: tuple[float, float]) -> float:
        start, end = window
        if start <= t <= end:
            return self.busy_w + self.ripple_w * math.sin(1.7 * t)
        return self.idle_w

    def util(self, t: float, window: tuple[float, float]) -> float:
        start, end = window
        return self.busy_util - 2.0 * abs(math.sin(t)) if start <= t <= end else 0.0


def _trapezoid(points: list[tuple[float, float]]) -> float:
    return sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in itertools.pairwise(points))


def write_telemetry(
    test_dir: Path,
    *,
    window: tuple[float, float],
    samples: int,
    gpus: int = 1,
    period_s: float = 0.25,
    curve: Curve | None = None,
) -> dict[str, Any]:
    """Write telemetry/ into `test_dir` (t_s from 0 to window end + 2 s); return summary.json.

    `gpus=0` writes what a CPU-only host has: host.csv, an empty gpu.csv, no GPU figures."""
    curve = curve or Curve()
    folder = test_dir / "telemetry"
    folder.mkdir(parents=True, exist_ok=True)
    end = window[1] + 2.0
    times = [round(i * period_s, 3) for i in range(int(end / period_s) + 1)]
    per_gpu: dict[int, list[tuple[float, float]]] = {g: [] for g in range(gpus)}
    with (folder / "gpu.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(GPU_HEADER)
        energy_mj = [0.0] * gpus
        for i, t in enumerate(times):
            for g in range(gpus):
                watts = round(curve.power(t, window) + 3.0 * g, 2)
                if i:
                    energy_mj[g] += 1000 * period_s * watts
                util = round(curve.util(t, window), 1)
                per_gpu[g].append((t, watts))
                writer.writerow(
                    [
                        t,
                        g,
                        watts,
                        round(energy_mj[g]),
                        util,
                        round(util * 0.6, 1),
                        41_000 if util else 900,
                        1980 if util else 345,
                        2619,
                        48 + g,
                        0,
                    ]
                )
    with (folder / "host.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HOST_HEADER)
        cpu = []
        for t in times:
            busy = window[0] <= t <= window[1]
            value = round(38.0 + 4.0 * math.cos(t) if busy else 3.0, 1)
            cpu.append((t, value))
            writer.writerow([t, value, 6_200 if busy else 5_900])
    gpu_figures = {}
    total_energy = 0.0
    for g, points in per_gpu.items():
        inside = [(t, w) for t, w in points if window[0] <= t <= window[1]]
        energy = _trapezoid(inside)
        total_energy += energy
        gpu_figures[str(g)] = {
            "mean_power_w": round(energy / (inside[-1][0] - inside[0][0]), 3),
            "max_power_w": max(w for _, w in inside),
            "energy_j": round(energy, 3),
        }
    inside_cpu = [v for t, v in cpu if window[0] <= t <= window[1]]
    summary = {
        "window_s": [window[0], window[1]],
        "gpus": gpu_figures,
        "samples_per_joule": round(samples / total_energy, 6) if total_energy else None,
        "host": {"mean_cpu_util_pct": round(sum(inside_cpu) / len(inside_cpu), 3)},
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
