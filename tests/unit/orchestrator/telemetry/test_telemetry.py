"""NvmlSampler against a scripted NVML stand-in (tests/support/fake_nvml.py), psutil for real,
and the window cut and figures of summary.json checked on hand-made recordings."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.application import Application
from orchestrator.config import Device, RunSpec
from orchestrator.console import Terminal
from orchestrator.errors import ConfigError, ResultError
from orchestrator.report.telemetry import read_telemetry
from orchestrator.results.loadgen_log import (
    DETAIL,
    completed_samples,
    parse_detail_text,
    power_window,
)
from orchestrator.telemetry.figures import summarize, write_telemetry
from orchestrator.telemetry.sampler import (
    GPU_COLUMNS,
    GPU_FIELDS,
    HOST_COLUMNS,
    HOST_FIELDS,
    Columns,
    GpuTrack,
    NvmlSampler,
    Recording,
    decode_throttle,
)
from tests.support.fake_nvml import (
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    FakeGpu,
    FakeNvml,
    OldBindingsNvml,
    step,
    step_energy_mj,
)
from tests.support.paths import GOLDEN as GOLDEN_ROOT

GOLDEN = GOLDEN_ROOT / "loadgen"
UTC0 = 1_790_000_000.0  # the wall clock at t_s = 0 in the hand-made recordings
ZERO = 500.0  # the sampler clock at t_s = 0 in the hand-made recordings


def _sample(
    sampler: NvmlSampler, before_s: float = 0.0, run_s: float = 0.5
) -> tuple[Recording, float]:
    """Start, wait `before_s`, mark the container start, run `run_s`, stop; (recording, the
    fake clock's monotonic time at the zero)."""
    sampler.start()
    time.sleep(before_s)
    sampler.mark_zero()
    time.sleep(run_s)
    return sampler.stop(), time.monotonic()


def _window_utc(
    recording: Recording, fake: FakeNvml, start: float, end: float
) -> tuple[float, float]:
    """A window on the fake's clock (seconds since nvmlInit) as UTC POSIX seconds."""
    shift = recording.utc_at_zero - recording.zero + fake.born
    return shift + start, shift + end


# ---- the sampler: rate, clock, NVML paths ----


def test_rate_and_timestamps_follow_the_zero() -> None:
    fake = FakeNvml([FakeGpu(), FakeGpu(name="Fake H100 #2")])
    recording, _ = _sample(NvmlSampler(50, fake), before_s=0.1, run_s=0.6)
    assert recording.nvml == "ok"
    assert [gpu.name for gpu in recording.gpus] == ["Fake H100", "Fake H100 #2"]
    for gpu in recording.gpus:
        t_s = [t - recording.zero for t in gpu.samples.t]
        assert all(b > a for a, b in itertools.pairwise(t_s))
        # 0.7 s at 50 Hz: 35 ticks + the last one at stop; a loaded 2-core host may miss some
        assert 18 <= len(t_s) <= 38, len(t_s)
        assert -0.13 < t_s[0] < -0.09  # sampled from before the container start
        assert 0.58 < t_s[-1] < 0.7
        spacing = statistics.median(b - a for a, b in itertools.pairwise(t_s))
        assert spacing == pytest.approx(0.02, abs=0.004)
    # both GPUs are read in the same tick
    first, second = (gpu.samples.t for gpu in recording.gpus)
    assert max(abs(a - b) for a, b in zip(first, second, strict=True)) < 0.005
    assert len(recording.host) == len(first)
    assert len(recording.nvml_tick_ms) == len(first)
    assert fake.initialised == 0  # nvmlShutdown after the last tick


def test_every_field_lands_in_gpu_csv(tmp_path: Path) -> None:
    gpu = FakeGpu(energy_mj=lambda t: 1000 * 100 * t, throttle=0x4 | 0x40, temp_c=61)
    fake = FakeNvml([gpu])
    recording, _ = _sample(NvmlSampler(20, fake), run_s=0.3)
    write_telemetry(tmp_path, recording, None, None, "not run")
    with (tmp_path / "gpu.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == GPU_COLUMNS
    row = rows[1]
    assert row["gpu"] == "0"
    assert float(row["power_w"]) == 100.0
    assert int(row["energy_mj"]) > 0
    assert (row["sm_util_pct"], row["mem_util_pct"], row["mem_used_mib"]) == ("50", "20", "4096")
    assert (row["sm_clock_mhz"], row["mem_clock_mhz"], row["temp_c"]) == ("1980", "2619", "61")
    assert row["throttle_reasons"] == "sw_power_cap|hw_thermal_slowdown"
    assert fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] == len(rows) + 1  # + the probe
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in fake.calls
    with (tmp_path / "host.csv").open() as handle:
        host = list(csv.DictReader(handle))
    assert tuple(host[0]) == HOST_COLUMNS
    assert host[0]["cpu_util_pct"] == ""  # too short an interval after psutil's first call
    # the tick at stop may come too soon after the previous one for a CPU figure too
    cpu = [float(r["cpu_util_pct"]) for r in host[1:-1]]
    assert all(0 <= value <= 100 for value in cpu)
    assert all(float(r["mem_used_mib"]) > 0 for r in host)


def test_energy_from_the_counter_in_the_window() -> None:
    # 50 W, 300 W from 0.2 s to 0.7 s (fake clock), 50 W again; the counter integrates that
    gpu = FakeGpu(power_w=step(50, 300, 0.2, 0.7), energy_mj=step_energy_mj(50, 300, 0.2, 0.7))
    fake = FakeNvml([gpu])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.9)
    summary = summarize(recording, _window_utc(recording, fake, 0.3, 0.6), 90)
    figures = summary["gpus"]["0"]
    assert figures["energy_source"] == "counter"
    assert figures["energy_j"] == pytest.approx(300 * 0.3, abs=0.05)
    assert figures["mean_power_w"] == pytest.approx(300, abs=0.01)
    assert figures["max_power_w"] == 300
    assert summary["samples_per_joule"] == pytest.approx(90 / (300 * 0.3), rel=1e-3)
    assert summary["problems"] == []


def test_missing_counter_falls_back_to_the_power_integral(tmp_path: Path) -> None:
    gpu = FakeGpu(power_w=step(50, 300, 0.2, 0.7), energy_mj=None)  # NOT_SUPPORTED
    fake = FakeNvml([gpu])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.9)
    assert recording.gpus[0].unsupported == ("energy_mj",)
    calls = fake.calls["nvmlDeviceGetTotalEnergyConsumption"]
    assert calls == 1  # feature-tested once, never asked again
    summary = write_telemetry(tmp_path, recording, _window_utc(recording, fake, 0.3, 0.6), 45)
    figures = summary["gpus"]["0"]
    assert figures["energy_source"] == "power_integral"
    assert figures["energy_j"] == pytest.approx(300 * 0.3, abs=0.05)
    assert figures["unsupported"] == ["energy_mj"]
    with (tmp_path / "gpu.csv").open() as handle:
        assert {row["energy_mj"] for row in csv.DictReader(handle)} == {""}


@pytest.mark.parametrize(
    ("kind", "event_reasons", "api"),
    [
        (FakeNvml, True, "nvmlDeviceGetCurrentClocksEventReasons"),
        # new bindings, old driver: the call exists but the symbol does not
        (FakeNvml, False, "nvmlDeviceGetCurrentClocksThrottleReasons"),
        (OldBindingsNvml, True, "nvmlDeviceGetCurrentClocksThrottleReasons"),
    ],
)
def test_throttle_reasons_are_feature_tested(
    kind: type[FakeNvml], event_reasons: bool, api: str
) -> None:
    fake = kind([FakeGpu(throttle=0x8, event_reasons=event_reasons)])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.2)
    track = recording.gpus[0]
    assert track.throttle_api == api
    assert set(track.samples.values["throttle"]) == {0x8}
    summary = summarize(recording, _window_utc(recording, fake, 0.0, 0.15), None)
    assert summary["gpus"]["0"]["throttle_pct"] == {"hw_slowdown": 100.0}


def test_no_throttle_call_at_all_is_recorded_as_unsupported() -> None:
    gpu = FakeGpu(event_reasons=False, unsupported=("nvmlDeviceGetCurrentClocksThrottleReasons",))
    recording, _ = _sample(NvmlSampler(50, OldBindingsNvml([gpu])), run_s=0.1)
    assert recording.gpus[0].unsupported == ("energy_mj", "throttle")
    assert all(math.isnan(v) for v in recording.gpus[0].samples.values["throttle"])


def test_decode_throttle() -> None:
    assert decode_throttle(0) == []
    assert decode_throttle(0x1) == ["gpu_idle"]
    assert decode_throttle(0x4 | 0x20 | 0x80) == [
        "sw_power_cap",
        "sw_thermal_slowdown",
        "hw_power_brake_slowdown",
    ]
    assert decode_throttle(0x100 | 0x600) == ["display_clock_setting", "0x600"]


def test_no_nvml_library_keeps_the_host_part(tmp_path: Path) -> None:
    fake = FakeNvml([FakeGpu()], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.2)
    assert recording.nvml == "NVML unavailable (NVML Shared Library Not Found)"
    assert recording.gpus == ()
    assert len(recording.host) >= 5
    now = time.time()
    folder = tmp_path / "telemetry"
    summary = write_telemetry(folder, recording, (now - 0.15, now - 0.05), 10)
    assert not (folder / "gpu.csv").exists()
    assert (folder / "host.csv").is_file()
    assert summary["gpus"] == {}
    assert summary["nvml"] == recording.nvml
    assert summary["samples_per_joule"] is None
    assert 0 <= summary["host"]["mean_cpu_util_pct"] <= 100
    data = read_telemetry(tmp_path)
    assert data is not None
    assert data.gpu_count == 0
    assert data.cpu_util_pct
    assert data.mean_cpu_util_pct == summary["host"]["mean_cpu_util_pct"]


def test_this_hosts_real_nvml() -> None:
    """The real nvidia-ml-py: without a driver (this CI) the reason is recorded; with GPUs
    they are sampled."""
    recording, _ = _sample(NvmlSampler(20), run_s=0.2)
    if recording.nvml == "ok":
        assert recording.gpus
        assert all(len(gpu.samples) for gpu in recording.gpus)
    else:
        assert recording.nvml.startswith(("NVML unavailable", "NVML sees no GPU"))
        assert recording.gpus == ()
    assert recording.host_probe == "ok"
    assert len(recording.host) >= 3


def test_nvml_bindings_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    recording, _ = _sample(NvmlSampler(20), run_s=0.1)
    assert recording.nvml == "nvidia-ml-py is not installed"
    assert recording.gpus == ()


def test_zero_gpus() -> None:
    fake = FakeNvml([])
    recording, _ = _sample(NvmlSampler(20, fake), run_s=0.1)
    assert recording.nvml == "NVML sees no GPU"
    assert fake.initialised == 0
    assert recording.nvml_tick_ms == ()


def test_a_gpu_that_cannot_be_opened_leaves_the_others() -> None:
    fake = FakeNvml([FakeGpu(handle_error=NVML_ERROR_NO_PERMISSION), FakeGpu(name="ok")])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.1)
    assert recording.nvml == "ok"
    assert [(gpu.index, gpu.name) for gpu in recording.gpus] == [(1, "ok")]
    assert recording.problems == ("GPU 0 not sampled: Insufficient Permissions",)
    alone = FakeNvml([FakeGpu(handle_error=NVML_ERROR_NO_PERMISSION)])
    assert _sample(NvmlSampler(50, alone), run_s=0.05)[0].nvml == (
        "none of the 1 GPUs could be opened"
    )


def test_a_gpu_lost_mid_run_stops_only_that_gpu() -> None:
    fake = FakeNvml([FakeGpu(energy_mj=lambda t: 1e5 * t), FakeGpu(lost_after=5)])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.5)
    healthy, lost = recording.gpus
    assert lost.lost_at is not None
    assert lost.lost_why is not None
    assert "GPU is lost" in lost.lost_why
    # the probe read power once, 4 ticks answered, the 5th read power before the loss
    assert len(lost.samples) == 5
    assert math.isnan(lost.samples.values["sm_util_pct"][-1])
    assert len(healthy.samples) > 15
    summary = summarize(recording, _window_utc(recording, fake, 0.05, 0.45), 100)
    assert summary["gpus"]["0"]["energy_j"] == pytest.approx(40, abs=0.1)
    assert summary["gpus"]["1"]["lost_at_s"] == pytest.approx(
        lost.lost_at - recording.zero, abs=1e-4
    )
    assert summary["gpus"]["1"]["window_covered"] is False
    assert summary["gpus"]["0"]["window_covered"] is True
    assert summary["samples_per_joule"] is None  # GPU 1's energy is for a part of the window
    assert any("GPU 1 stopped answering" in p for p in summary["problems"])
    assert any("GPU 1: samples cover only" in p for p in summary["problems"])


def test_a_gpu_that_stops_answering_is_dropped_after_three_ticks() -> None:
    fake = FakeNvml([FakeGpu(failing_after=3)])
    recording, _ = _sample(NvmlSampler(50, fake), run_s=0.4)
    track = recording.gpus[0]
    assert track.lost_why is not None
    assert track.lost_why.startswith("no reading for 3 ticks")
    assert "Unknown Error" in track.lost_why
    assert len(track.samples) == 3  # 2 whole ticks, then one with only power


def test_a_hung_nvml_call_does_not_hang_stop() -> None:
    release = threading.Event()
    fake = FakeNvml([FakeGpu()])
    sampler = NvmlSampler(50, fake, stop_timeout_s=0.3)
    sampler.start()
    time.sleep(0.1)
    fake.gpus[0].hang = release  # the next power read blocks
    time.sleep(0.1)
    began = time.monotonic()
    recording = sampler.stop()
    assert time.monotonic() - began < 0.6
    assert any("did not stop within 0.3 s" in p for p in recording.problems)
    count = len(recording.gpus[0].samples)
    release.set()  # the thread wakes up: what it read now is dropped
    time.sleep(0.1)
    assert len(sampler.stop().gpus[0].samples) == count
    assert fake.initialised == 1  # no nvmlShutdown under a call that may still run


def test_an_unexpected_error_ends_sampling_not_the_run() -> None:
    reads = [0]

    def power(_t: float) -> float:
        reads[0] += 1
        if reads[0] > 4:
            raise RuntimeError("driver returned garbage")
        return 80.0

    recording, _ = _sample(NvmlSampler(50, FakeNvml([FakeGpu(power_w=power)])), run_s=0.3)
    assert recording.problems == (
        "sampling stopped early: RuntimeError('driver returned garbage')",
    )
    assert len(recording.gpus[0].samples) == 3


def test_stop_is_bounded_idempotent_and_safe_unstarted() -> None:
    assert NvmlSampler(10).stop().nvml == "not started"
    with pytest.raises(ValueError, match="boom"), NvmlSampler(50, FakeNvml([FakeGpu()])) as s:
        raise ValueError("boom")
    assert not any(t.name == "telemetry" and t.is_alive() for t in threading.enumerate())
    assert s.stop() is s.stop()


@pytest.mark.parametrize("hz", [0, -1, 101])
def test_rate_must_be_positive_and_at_most_100(hz: float) -> None:
    with pytest.raises(ValueError, match="sampling rate"):
        NvmlSampler(hz)


# ---- the figures, on hand-made recordings ----


def _track(index: int, rows: list[tuple[float, dict[str, float | None]]]) -> GpuTrack:
    track = GpuTrack(index, f"gpu{index}")
    for t_s, row in rows:
        track.samples.append(ZERO + t_s, row)
    return track


def _recording(gpus: list[GpuTrack], host: Columns | None = None) -> Recording:
    return Recording(
        hz=10, zero=ZERO, utc_at_zero=UTC0, drift_s=0.0, nvml="ok", host_probe="ok",
        gpus=tuple(gpus), host=host or Columns(HOST_FIELDS), nvml_tick_ms=(0.2, 0.3),
        host_tick_ms=(0.1,), problems=(),
    )  # fmt: skip


def _board(counter_scale: float | None = 1.0) -> list[tuple[float, dict[str, float | None]]]:
    """Every 0.1 s from -0.5 to 10 s: 50 W, 300 W in [2, 6); the counter integrates the power
    × counter_scale (None: no counter)."""
    rows = []
    energy = 0.0
    for i in range(-5, 101):
        t = i / 10
        watts = 300.0 if 2 <= t < 6 else 50.0
        if i > -5:
            energy += 0.1 * 1000 * watts
        row: dict[str, float | None] = {"power_w": watts, "throttle": 0x4 if watts > 100 else 0x1}
        row["energy_mj"] = None if counter_scale is None else energy * counter_scale
        rows.append((t, row))
    return rows


def test_the_window_is_mapped_through_the_wall_clock() -> None:
    summary = summarize(_recording([_track(0, _board())]), (UTC0 + 2.05, UTC0 + 5.85), 760)
    assert summary["window_s"] == [2.05, 5.85]
    figures = summary["gpus"]["0"]
    assert figures["mean_power_w"] == 300
    assert figures["max_power_w"] == 300
    assert figures["samples"] == 38
    assert figures["energy_j"] == pytest.approx(300 * 3.8)
    assert figures["throttle_pct"] == {"sw_power_cap": 100.0}
    assert summary["samples_per_joule"] == pytest.approx(760 / 1140)
    assert summary["clock"]["utc_at_t0"].startswith("2026-09-21T")


def test_the_counter_wins_over_the_integral_when_present() -> None:
    window = (UTC0 + 2.05, UTC0 + 5.85)
    doubled = summarize(_recording([_track(0, _board(counter_scale=2.0))]), window, None)
    assert doubled["gpus"]["0"]["energy_source"] == "counter"
    assert doubled["gpus"]["0"]["energy_j"] == pytest.approx(2 * 300 * 3.8)
    assert doubled["gpus"]["0"]["mean_power_w"] == 300  # from the power readings
    assert doubled["samples_per_joule"] is None  # an accuracy run: no sample count
    without = summarize(_recording([_track(0, _board(counter_scale=None))]), window, None)
    assert without["gpus"]["0"]["energy_source"] == "power_integral"
    assert without["gpus"]["0"]["energy_j"] == pytest.approx(300 * 3.8)


def test_a_counter_that_goes_back_is_not_trusted() -> None:
    rows = _board()
    for t, row in rows:
        if t >= 4 and row["energy_mj"] is not None:
            row["energy_mj"] -= 1e9  # a driver reload resets the counter
    summary = summarize(_recording([_track(0, rows)]), (UTC0 + 2.05, UTC0 + 5.85), None)
    assert summary["gpus"]["0"]["energy_source"] == "power_integral"
    assert any("energy counter went back" in p for p in summary["problems"])


def test_edges_inside_a_sample_interval_are_interpolated() -> None:
    # window 1.95–2.15: power 50 → 300 between samples 1.9 and 2.0
    summary = summarize(_recording([_track(0, _board(None))]), (UTC0 + 1.95, UTC0 + 2.15), None)
    figures = summary["gpus"]["0"]
    # trapezoid over (1.95, 175) (2.0, 300) (2.1, 300) (2.15, 300)
    expected = 0.05 * (175 + 300) / 2 + 0.1 * 300 + 0.05 * 300
    assert figures["energy_j"] == pytest.approx(expected, abs=1e-3)
    assert figures["mean_power_w"] == pytest.approx(expected / 0.2, abs=1e-3)
    assert figures["max_power_w"] == 300


def test_several_gpus_add_up_for_samples_per_joule() -> None:
    gpus = [_track(0, _board()), _track(1, _board(counter_scale=0.5))]
    summary = summarize(_recording(gpus), (UTC0 + 2.05, UTC0 + 5.85), 1710)
    assert summary["samples_per_joule"] == pytest.approx(1710 / (1140 + 570))


def test_a_window_beyond_the_samples_is_cut_to_them_and_said() -> None:
    summary = summarize(_recording([_track(0, _board())]), (UTC0 + 8, UTC0 + 12), 100)
    figures = summary["gpus"]["0"]
    assert figures["energy_j"] == pytest.approx(50 * 2)
    assert figures["window_covered"] is False
    assert summary["samples_per_joule"] is None
    assert any("cover only 8.000–10.000 s" in p for p in summary["problems"])
    outside = summarize(_recording([_track(0, _board())]), (UTC0 + 20, UTC0 + 30), 100)
    assert outside["gpus"]["0"]["energy_j"] is None
    assert outside["samples_per_joule"] is None
    assert any("no power samples in the LoadGen window" in p for p in outside["problems"])


def test_no_window_means_no_figures() -> None:
    summary = summarize(_recording([_track(0, _board())]), None, None, "LoadGen wrote no log")
    assert summary["window_s"] is None
    assert summary["gpus"]["0"]["energy_j"] is None
    assert summary["host"]["mean_cpu_util_pct"] is None
    assert summary["problems"] == ["no LoadGen window: LoadGen wrote no log"]


def test_host_cpu_is_weighted_by_overlap() -> None:
    host = Columns(HOST_FIELDS)
    for t, value in ((1, 10), (2, 20), (3, 30), (4, 40)):
        host.append(ZERO + t, {"since": ZERO + t - 1, "cpu_util_pct": value, "mem_used_mib": 900})
    summary = summarize(_recording([], host), (UTC0 + 1.5, UTC0 + 3.5), None)
    assert summary["host"] == {"mean_cpu_util_pct": 30.0, "max_mem_used_mib": 900}


def test_the_report_reads_what_is_written(tmp_path: Path) -> None:
    test = tmp_path / "Offline" / "performance"
    host = Columns(HOST_FIELDS)
    for i in range(1, 101):
        host.append(ZERO + i / 10, {"since": ZERO + (i - 1) / 10, "cpu_util_pct": 40.0,
                                    "mem_used_mib": 2048.5})  # fmt: skip
    recording = _recording([_track(0, _board()), _track(1, _board(0.5))], host)
    summary = write_telemetry(test / "telemetry", recording, (UTC0 + 2.05, UTC0 + 5.85), 1710)
    assert json.loads((test / "telemetry" / "summary.json").read_text()) == summary
    data = read_telemetry(test)
    assert data is not None
    assert data.window_s == (2.05, 5.85)
    assert data.gpu_count == 2
    assert data.total("energy_j") == pytest.approx(1140 + 570)
    assert data.total("max_power_w") == 300
    assert data.samples_per_joule == summary["samples_per_joule"]
    assert data.mean_cpu_util_pct == 40.0
    assert dict(data.power_w)[3.0] == 600  # board power summed over the GPUs
    with (test / "telemetry" / "gpu.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 106
    assert [r["gpu"] for r in rows[:4]] == ["0", "1", "0", "1"]  # by time, then GPU
    assert rows[0]["t_s"] == "-0.5"
    assert {r["throttle_reasons"] for r in rows} == {"gpu_idle", "sw_power_cap"}
    assert rows[0]["sm_clock_mhz"] == ""  # not read: empty, never 0


def test_gpu_fields_match_the_csv_columns() -> None:
    assert GPU_COLUMNS[2:-1] == tuple(
        "sm_util_pct" if f == "utilization" else f for f in GPU_FIELDS[:-1]
    )


# ---- LoadGen's window in the detail log ----


def _log(name: str) -> Any:
    return parse_detail_text((GOLDEN / name / DETAIL).read_text())


def test_power_window_is_utc_with_milliseconds() -> None:
    log = _log("Offline-performance")
    begin, end = power_window(log) or (0, 0)
    # "11-23-2026 13:36:57.610" and "11-23-2026 13:37:00.012", UTC
    assert begin == pytest.approx(1795441017.610, abs=1e-6)
    assert end - begin == pytest.approx(2.402, abs=1e-6)
    # LoadGen's own duration: samples / samples per second
    samples = completed_samples(log)
    assert samples == 33
    assert end - begin == pytest.approx(samples / log.get("result_samples_per_second"), abs=0.002)


@pytest.mark.parametrize(
    ("name", "samples"),
    [
        ("SingleStream-performance", 32),
        ("MultiStream-performance", 64),  # 8 queries of 8 samples
        ("Server-performance", 16),
        ("Offline-performance", 33),
        ("Offline-accuracy", None),  # no result_query_count in an accuracy run
    ],
)
def test_completed_samples(name: str, samples: int | None) -> None:
    assert completed_samples(_log(name)) == samples
    assert power_window(_log(name)) is not None


def test_power_window_absent_or_malformed() -> None:
    log = _log("Offline-performance")
    del log.values["power_end"]
    assert power_window(log) is None
    log.values["power_end"] = "2026-11-23T13:37:00Z"
    with pytest.raises(ResultError, match=r"power_end .* is not a LoadGen power time"):
        power_window(log)
    log.values["power_end"] = "11-23-2026 13:36:00.000"
    with pytest.raises(ResultError, match="precedes power_begin"):
        power_window(log)


# ---- the rate as configured: `--telemetry-hz`, `[run] telemetry_hz` ----


def _spec(tmp_path: Path, config: str | None, **overrides: Any) -> RunSpec:
    path = None
    if config is not None:
        path = tmp_path / "run.toml"
        path.write_text(config)
    return Application(Terminal(quiet=True)).spec(
        "reference", Device.CPU, base_image=None, quick=True, config=path, overrides=overrides
    )


def test_rate_defaults_to_10_hz_and_the_flag_beats_the_file(tmp_path: Path) -> None:
    assert _spec(tmp_path, None).telemetry_hz == 10
    assert _spec(tmp_path, "[run]\ntelemetry_hz = 0\n").telemetry_hz == 0
    assert _spec(tmp_path, "[run]\ntelemetry_hz = 0\n", telemetry_hz=2.5).telemetry_hz == 2.5


def test_rate_out_of_range_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="telemetry_hz") as info:
        _spec(tmp_path, "[run]\ntelemetry_hz = 500\n")
    assert info.value.key == "telemetry_hz"
    with pytest.raises(ConfigError, match="telemetry_hz"):
        _spec(tmp_path, None, telemetry_hz=-1)
