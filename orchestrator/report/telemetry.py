"""Reading a test's `telemetry/` folder (written by orchestrator/telemetry/figures.py).

The contract, per test folder (`runs/<id>/<backend>/<Scenario>/<mode>/telemetry/`):
- `gpu.csv`: one row per GPU per sample, t_s = seconds since the container started;
- `host.csv`: one row per sample;
- `summary.json`: the LoadGen window (power_begin/power_end on the same clock) and the figures
  inside it: per-GPU mean/max power and energy, samples per joule, mean host CPU utilisation.

A folder without `telemetry/` simply has none; a folder whose files break the contract is a
ResultError naming the file, so a report never shows half-read figures as if they were whole.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError
from orchestrator.telemetry.sampler import (  # the contract is the sampler's
    GPU_COLUMNS,
    GPU_CSV,
    HOST_COLUMNS,
    HOST_CSV,
    SUMMARY_JSON,
    TELEMETRY_DIR,
)

MAX_POINTS = 400  # per plotted series: enough for a 640-px wide plot, small HTML


@dataclass(frozen=True)
class GpuFigures:
    mean_power_w: float | None
    max_power_w: float | None
    energy_j: float | None


@dataclass(frozen=True)
class TelemetryData:
    """What one test's telemetry says; series are (t_s, value) pairs, already thinned."""

    window_s: tuple[float, float] | None
    gpus: dict[str, GpuFigures]
    samples_per_joule: float | None
    mean_cpu_util_pct: float | None
    power_w: tuple[tuple[float, float], ...]  # board power summed over the GPUs
    sm_util_pct: tuple[tuple[float, float], ...]  # SM utilisation, mean over the GPUs
    cpu_util_pct: tuple[tuple[float, float], ...]  # host CPU utilisation

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    def total(self, field: str) -> float | None:
        """Sum of one per-GPU figure over the GPUs (max for max_power_w); None if any lacks it."""
        values = [getattr(figures, field) for figures in self.gpus.values()]
        if not values or any(v is None for v in values):
            return None
        return float(max(values) if field == "max_power_w" else sum(values))


def _number(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ResultError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ResultError(f"{where}: {value!r} is not a finite number")
    return number


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing:
                raise ResultError(f"{path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except OSError as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc


def thin(
    points: list[tuple[float, float]], limit: int = MAX_POINTS
) -> tuple[tuple[float, float], ...]:
    """At most `limit` points: consecutive points averaged in equal buckets (order kept)."""
    if len(points) <= limit:
        return tuple(points)
    out = []
    for bucket in range(limit):
        chunk = points[bucket * len(points) // limit : (bucket + 1) * len(points) // limit]
        out.append((sum(t for t, _ in chunk) / len(chunk), sum(v for _, v in chunk) / len(chunk)))
    return tuple(out)


def _gpu_series(
    path: Path,
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    power: dict[float, float] = defaultdict(float)
    util: dict[float, list[float]] = defaultdict(list)
    for line, row in enumerate(_rows(path, GPU_COLUMNS), 2):
        where = f"{path}:{line}"
        t = _number(row["t_s"], where)
        if t is None:
            raise ResultError(f"{where}: empty t_s")
        watts = _number(row["power_w"], where)
        if watts is not None:
            power[t] += watts
        sm = _number(row["sm_util_pct"], where)
        if sm is not None:
            util[t].append(sm)
    return (
        thin(sorted(power.items())),
        thin(sorted((t, sum(v) / len(v)) for t, v in util.items())),
    )


def _host_series(path: Path) -> tuple[tuple[float, float], ...]:
    points = []
    for line, row in enumerate(_rows(path, HOST_COLUMNS), 2):
        where = f"{path}:{line}"
        t = _number(row["t_s"], where)
        cpu = _number(row["cpu_util_pct"], where)
        if t is not None and cpu is not None:
            points.append((t, cpu))
    return thin(sorted(points))


def _summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultError(f"{path}: expected a JSON object")
    return data


def read_telemetry(test_dir: Path) -> TelemetryData | None:
    """The telemetry of one test folder; None when it has no `telemetry/` folder."""
    folder = test_dir / TELEMETRY_DIR
    if not folder.is_dir():
        return None
    summary = _summary(folder / SUMMARY_JSON) if (folder / SUMMARY_JSON).is_file() else {}
    where = str(folder / SUMMARY_JSON)
    window = summary.get("window_s")
    window_s = None
    if window is not None:
        if not isinstance(window, list) or len(window) != 2:
            raise ResultError(f"{where}: window_s must be [start, end]")
        start, end = (_number(v, f"{where} window_s") for v in window)
        if start is not None and end is not None:
            window_s = (start, end)
    gpus = {}
    for index, figures in (summary.get("gpus") or {}).items():
        if not isinstance(figures, dict):
            raise ResultError(f"{where}: gpus.{index} must be an object")
        gpus[str(index)] = GpuFigures(
            _number(figures.get("mean_power_w"), f"{where} gpus.{index}.mean_power_w"),
            _number(figures.get("max_power_w"), f"{where} gpus.{index}.max_power_w"),
            _number(figures.get("energy_j"), f"{where} gpus.{index}.energy_j"),
        )
    host = summary.get("host") or {}
    power, util = _gpu_series(folder / GPU_CSV) if (folder / GPU_CSV).is_file() else ((), ())
    cpu = _host_series(folder / HOST_CSV) if (folder / HOST_CSV).is_file() else ()
    return TelemetryData(
        window_s=window_s,
        gpus=gpus,
        samples_per_joule=_number(summary.get("samples_per_joule"), f"{where} samples_per_joule"),
        mean_cpu_util_pct=_number(
            host.get("mean_cpu_util_pct") if isinstance(host, dict) else None,
            f"{where} host.mean_cpu_util_pct",
        ),
        power_w=power,
        sm_util_pct=util,
        cpu_util_pct=cpu,
    )
