"""After a test: its telemetry cut to LoadGen's power window, the figures inside it, and the
files of the test folder's `telemetry/` (see `orchestrator.telemetry.sampler`)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError
from orchestrator.results.loadgen_log import (
    DETAIL,
    completed_samples,
    parse_detail_text,
    power_window,
)
from orchestrator.telemetry.sampler import (
    GPU_COLUMNS,
    GPU_CSV,
    GPU_FIELDS,
    HOST_COLUMNS,
    HOST_CSV,
    SUMMARY_JSON,
    TELEMETRY_DIR,
    Columns,
    GpuTrack,
    Recording,
    decode_throttle,
)

# ---- after the test: the window, the figures, the files ----


def _interpolate(points: list[tuple[float, float]], t: float) -> float:
    """Value at t by linear interpolation; points sorted, t within their span."""
    for (t1, v1), (t2, v2) in itertools.pairwise(points):
        if t1 <= t <= t2:
            return v1 if t2 == t1 else v1 + (v2 - v1) * (t - t1) / (t2 - t1)
    return points[0][1] if t <= points[0][0] else points[-1][1]


def _inside(
    points: list[tuple[float, float]], start: float, end: float
) -> list[tuple[float, float]]:
    """The points within [start, end] with interpolated values at both ends."""
    middle = [(t, v) for t, v in points if start < t < end]
    return [(start, _interpolate(points, start)), *middle, (end, _interpolate(points, end))]


def _trapezoid(points: list[tuple[float, float]]) -> float:
    return sum((t2 - t1) * (v1 + v2) / 2 for (t1, v1), (t2, v2) in itertools.pairwise(points))


def _overlap(points: list[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    """The part of [start, end] the points cover."""
    return max(start, points[0][0]), min(end, points[-1][0])


def _gpu_figures(
    track: GpuTrack, zero: float, window: tuple[float, float], problems: list[str]
) -> dict[str, Any]:
    """Mean and max power and energy of one GPU in the window (t_s clock)."""
    start, end = window

    def series(name: str) -> list[tuple[float, float]]:
        return [(t - zero, v) for t, v in track.samples.series(name)]

    power = series("power_w")
    counter = series("energy_mj")
    figures: dict[str, Any] = {"name": track.name, "samples": 0}
    if track.unsupported:
        figures["unsupported"] = list(track.unsupported)
    if track.lost_at is not None:
        lost_at = track.lost_at - zero
        figures["lost_at_s"] = round(lost_at, 4)
        figures["lost_why"] = track.lost_why
        problems.append(f"GPU {track.index} stopped answering at t={lost_at:.2f} s: "
                        f"{track.lost_why}")  # fmt: skip
    empty = {"mean_power_w": None, "max_power_w": None, "energy_j": None, "energy_source": None}
    if len(power) < 2 or power[0][0] >= end or power[-1][0] <= start:
        problems.append(f"GPU {track.index}: no power samples in the LoadGen window")
        return {**figures, **empty}
    lo, hi = _overlap(power, start, end)
    figures["window_covered"] = (lo, hi) == (start, end)
    if not figures["window_covered"]:
        problems.append(
            f"GPU {track.index}: samples cover only {lo:.3f}–{hi:.3f} s of the window "
            f"{start:.3f}–{end:.3f} s; its figures are for that part"
        )
    inside = _inside(power, lo, hi)
    integral_j = _trapezoid(inside)
    figures["samples"] = len(inside) - 2
    figures["mean_power_w"] = round(integral_j / (hi - lo), 3) if hi > lo else inside[0][1]
    figures["max_power_w"] = round(max(v for _, v in inside), 3)
    energy, source = integral_j, "power_integral"
    if len(counter) >= 2 and _overlap(counter, lo, hi) == (lo, hi):
        delta_j = (_interpolate(counter, hi) - _interpolate(counter, lo)) / 1000.0
        if delta_j >= 0:
            energy, source = delta_j, "counter"
        else:
            problems.append(f"GPU {track.index}: the energy counter went back (driver reload?); "
                            "energy from the power integral")  # fmt: skip
    figures["energy_j"] = round(energy, 3)
    figures["energy_source"] = source
    figures["max_temp_c"] = _max_in(series("temp_c"), lo, hi)
    figures["throttle_pct"] = _throttle_shares(series("throttle"), lo, hi)
    return figures


def _max_in(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    values = [v for t, v in points if start <= t <= end]
    return max(values) if values else None


def _throttle_shares(
    points: list[tuple[float, float]], start: float, end: float
) -> dict[str, float]:
    """Per reason, the share of the window's samples (%) in which it was set."""
    masks = [int(v) for t, v in points if start <= t <= end]
    counts: dict[str, int] = {}
    for mask in masks:
        for name in decode_throttle(mask):
            counts[name] = counts.get(name, 0) + 1
    return {name: round(100 * n / len(masks), 1) for name, n in sorted(counts.items())}


def _mean_cpu(host: Columns, zero: float, window: tuple[float, float]) -> float | None:
    """CPU utilisation over the window: each sample covers (since, t], weighted by overlap."""
    start, end = window
    total = weight = 0.0
    for t, since, value in zip(
        host.t, host.values["since"], host.values["cpu_util_pct"], strict=True
    ):
        overlap = min(end, t - zero) - max(start, since - zero)
        if overlap > 0 and not math.isnan(value):
            total += overlap * value
            weight += overlap
    return round(total / weight, 3) if weight else None


def _tick_cost(values: tuple[float, ...]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "mean": round(sum(values) / len(values), 4),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4),
        "max": round(ordered[-1], 4),
    }


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))


def _write_gpu_csv(path: Path, recording: Recording) -> None:
    digits = {"power_w": 3, "energy_mj": 0, "mem_used_mib": 1}
    rows = []
    for track in recording.gpus:
        samples = track.samples
        for i, t in enumerate(samples.t):
            cells = [_number(t - recording.zero, 4), str(track.index)]
            for name in GPU_FIELDS[:-1]:
                cells.append(_number(samples.values[name][i], digits.get(name, 0)))
            mask = samples.values["throttle"][i]
            cells.append("" if math.isnan(mask) else "|".join(decode_throttle(int(mask))) or "none")
            rows.append((t, track.index, cells))
    rows.sort(key=lambda row: (row[0], row[1]))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(GPU_COLUMNS)
        writer.writerows(cells for _, _, cells in rows)


def _write_host_csv(path: Path, recording: Recording) -> None:
    host = recording.host
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HOST_COLUMNS)
        for t, cpu, memory in zip(
            host.t, host.values["cpu_util_pct"], host.values["mem_used_mib"], strict=True
        ):
            writer.writerow([_number(t - recording.zero, 4), _number(cpu, 1), _number(memory, 1)])


def utc_to_t_s(recording: Recording, utc_s: float) -> float:
    """A wall-clock time (POSIX seconds, e.g. LoadGen's power_begin) on the t_s clock."""
    return utc_s - recording.utc_at_zero


def summarize(
    recording: Recording,
    window_utc: tuple[float, float] | None,
    completed_samples: int | None,
    why_no_window: str | None = None,
) -> dict[str, Any]:
    """summary.json: the figures inside LoadGen's window (None when there is no window)."""
    problems = list(recording.problems)
    window = None
    if window_utc is not None:
        window = (
            round(utc_to_t_s(recording, window_utc[0]), 4),
            round(utc_to_t_s(recording, window_utc[1]), 4),
        )
    elif why_no_window:
        problems.append(f"no LoadGen window: {why_no_window}")
    gpus: dict[str, Any] = {}
    for track in recording.gpus:
        if window is None:
            gpus[str(track.index)] = {"name": track.name, "mean_power_w": None,
                                      "max_power_w": None, "energy_j": None}  # fmt: skip
        else:
            gpus[str(track.index)] = _gpu_figures(track, recording.zero, window, problems)
    # Only over the whole window of every GPU: a part of the energy would flatter the figure.
    energies = [
        figures["energy_j"]
        for figures in gpus.values()
        if figures.get("energy_j") and figures.get("window_covered")
    ]
    per_joule = None
    if completed_samples is not None and energies and len(energies) == len(gpus):
        per_joule = round(completed_samples / sum(energies), 6)
    host_cpu = _mean_cpu(recording.host, recording.zero, window) if window else None
    memory = [v for v in recording.host.values["mem_used_mib"] if not math.isnan(v)]
    return {
        "window_s": list(window) if window else None,
        "gpus": gpus,
        "samples_per_joule": per_joule,
        "loadgen_samples": completed_samples,
        "host": {
            "mean_cpu_util_pct": host_cpu,
            "max_mem_used_mib": round(max(memory), 1) if memory else None,
        },
        "nvml": recording.nvml,
        "host_probe": recording.host_probe,
        "rate_hz": recording.hz,
        "ticks": len(recording.host) or max((len(g.samples) for g in recording.gpus), default=0),
        "tick_cost_ms": {
            "nvml": _tick_cost(recording.nvml_tick_ms),
            "host": _tick_cost(recording.host_tick_ms),
        },
        "clock": {
            "t0": "container start (docker start returned)",
            "utc_at_t0": datetime.fromtimestamp(recording.utc_at_zero, UTC).isoformat(),
            "window_from": "LoadGen power_begin/power_end: UTC wall clock, 1 ms truncated",
            "drift_s": round(recording.drift_s, 6),
        },
        "problems": problems,
    }


def write_telemetry(
    folder: Path,
    recording: Recording,
    window_utc: tuple[float, float] | None,
    completed_samples: int | None,
    why_no_window: str | None = None,
) -> dict[str, Any]:
    """Write gpu.csv (only with GPU samples), host.csv and summary.json into `folder`; return
    the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    if recording.gpus:
        _write_gpu_csv(folder / GPU_CSV, recording)
    if recording.host_probe == "ok":
        _write_host_csv(folder / HOST_CSV, recording)
    summary = summarize(recording, window_utc, completed_samples, why_no_window)
    (folder / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def record_telemetry(recording: Recording, test_dir: Path, performance: bool) -> dict[str, Any]:
    """The test folder's telemetry/, cut to the power window its LoadGen detail log gives (the
    figures stay empty, with the reason, when there is none); returns the summary."""
    window = completed = why = None
    detail = test_dir / DETAIL
    if not detail.is_file():
        why = f"LoadGen wrote no {DETAIL}"
    else:
        try:
            log = parse_detail_text(detail.read_text(errors="replace"))
            window = power_window(log)
        except ResultError as exc:
            why = exc.message
        else:
            if window is None:
                why = "no power_begin/power_end in the detail log (the test did not finish)"
            elif performance:
                completed = completed_samples(log)
    return write_telemetry(test_dir / TELEMETRY_DIR, recording, window, completed, why)
