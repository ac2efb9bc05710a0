"""GPU (NVML) and host (psutil) telemetry sampled while one test's container runs.

`NvmlSampler` reads, at a fixed rate in a background thread, per GPU: board power, the total
energy counter, SM and memory utilisation, memory used, SM and memory clocks, temperature and
the clock event ("throttle") reasons; and for the host: CPU utilisation and memory in use. After
the test, `write_telemetry` cuts the samples to LoadGen's power window and writes the test
folder's `telemetry/` (the contract the report reads, orchestrator/report/telemetry.py):

- `gpu.csv`: `t_s,gpu,power_w,energy_mj,...` one row per GPU per tick (absent without NVML);
- `host.csv`: `t_s,cpu_util_pct,mem_used_mib` one row per tick;
- `summary.json`: `window_s` (LoadGen's power_begin/power_end on the t_s clock), per-GPU mean
  and max power and energy in the window, samples per joule, mean host CPU utilisation, and how
  the figures were obtained (energy source, clock mapping, sampling cost, problems).

Clocks. Samples are timed with the monotonic clock; t_s = 0 is the moment the container was
started (`mark_zero`, called once `docker start` returned). LoadGen logs power_begin/power_end as
UTC wall-clock times with millisecond resolution (truncated), and a container reads the host's
wall clock, so the window maps to t_s through the wall-clock time read together with the
monotonic zero. Its error: up to 1 ms from LoadGen's truncation, plus any change of the offset
between the wall and the monotonic clock during the test (NTP slewing; a step would show as a
large value), which is measured at stop and recorded as `clock.drift_s`. NVML's board power is
itself averaged by the driver over a period that depends on the GPU (up to 1 s on many boards),
which smears the window's edges more than the mapping does.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from orchestrator.config import DEFAULT_HZ, MAX_HZ

TELEMETRY_DIR = "telemetry"
GPU_CSV = "gpu.csv"
HOST_CSV = "host.csv"
SUMMARY_JSON = "summary.json"
GPU_COLUMNS = (
    "t_s", "gpu", "power_w", "energy_mj", "sm_util_pct", "mem_util_pct", "mem_used_mib",
    "sm_clock_mhz", "mem_clock_mhz", "temp_c", "throttle_reasons",
)  # fmt: skip
HOST_COLUMNS = ("t_s", "cpu_util_pct", "mem_used_mib")
# What one GPU tick reads, in gpu.csv order after t_s and gpu ("throttle" is the raw bit mask).
GPU_FIELDS = (
    "power_w", "energy_mj", "sm_util_pct", "mem_util_pct", "mem_used_mib", "sm_clock_mhz",
    "mem_clock_mhz", "temp_c", "throttle",
)  # fmt: skip
# Host columns kept per tick; `since` is where the CPU utilisation's interval began.
HOST_FIELDS = ("since", "cpu_util_pct", "mem_used_mib")

STOP_TIMEOUT_S = 2.0
LOST_AFTER_FAILED_TICKS = 3  # a GPU every reading of which fails this many ticks in a row is gone
MIB = 1 << 20
MIN_CPU_INTERVAL_S = 0.02  # CPU utilisation over less is noise (/proc/stat counts 10 ms ticks)

# NVML return codes (nvml.h; stable across driver versions).
_NOT_SUPPORTED = (3, 4, 13)  # NOT_SUPPORTED, NO_PERMISSION, FUNCTION_NOT_FOUND
_GPU_GONE = (15, 16, 28)  # GPU_IS_LOST, RESET_REQUIRED, GPU_NOT_FOUND

# nvmlClocksEventReason* bits (named ...ThrottleReason... before driver 535).
THROTTLE_REASONS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)


def decode_throttle(mask: int) -> list[str]:
    """Names of the reasons set in an NVML clock event mask; unknown bits as one hex value."""
    names = [name for bit, name in THROTTLE_REASONS if mask & bit]
    known = sum(bit for bit, _ in THROTTLE_REASONS)
    if mask & ~known:
        names.append(f"0x{mask & ~known:x}")
    return names


class Columns:
    """Samples as columns of doubles, 8 bytes a value; NaN is a reading that failed or that
    this source does not support. Long runs at 10 Hz on 8 GPUs stay a few tens of MB."""

    def __init__(self, names: Iterable[str]) -> None:
        self.t = array("d")
        self.values = {name: array("d") for name in names}

    def append(self, t: float, row: Mapping[str, float | None]) -> None:
        self.t.append(t)
        for name, column in self.values.items():
            value = row.get(name)
            column.append(math.nan if value is None else float(value))

    def __len__(self) -> int:
        return len(self.t)

    def series(self, name: str) -> list[tuple[float, float]]:
        """(t, value) of the samples that have `name`."""
        return [(t, v) for t, v in zip(self.t, self.values[name], strict=True) if not math.isnan(v)]

    def copy(self) -> Columns:
        out = Columns(self.values)
        out.t = array("d", self.t)
        out.values = {name: array("d", column) for name, column in self.values.items()}
        return out


@dataclass
class GpuTrack:
    """One GPU's identity, what it cannot report, and its samples."""

    index: int
    name: str
    unsupported: tuple[str, ...] = ()
    throttle_api: str | None = None  # the NVML function that answered the feature test
    lost_at: float | None = None  # sampler clock
    lost_why: str | None = None
    samples: Columns = field(default_factory=lambda: Columns(GPU_FIELDS))


@dataclass(frozen=True)
class Recording:
    """Everything one sampler saw, on its own clock (monotonic seconds)."""

    hz: float
    zero: float  # sampler clock when the container started
    utc_at_zero: float  # wall clock (POSIX seconds) at the same instant
    drift_s: float  # change of (wall − monotonic) between zero and stop
    nvml: str  # "ok", or why there are no GPU samples
    host_probe: str  # "ok", or why there are no host samples
    gpus: tuple[GpuTrack, ...]
    host: Columns
    nvml_tick_ms: tuple[float, ...]  # cost of each tick's NVML batch
    host_tick_ms: tuple[float, ...]  # cost of each tick's psutil reads
    problems: tuple[str, ...]


class _Gpu:
    """The readers of one GPU, feature-tested once at start so a tick calls only what works."""

    def __init__(self, api: Any, index: int) -> None:
        self.api = api
        self.handle = api.nvmlDeviceGetHandleByIndex(index)
        self.track = GpuTrack(
            index, _text(_quietly(api, lambda: api.nvmlDeviceGetName(self.handle)))
        )
        self.readers: dict[str, Callable[[], Any]] = {}
        self.failed_ticks = 0
        unsupported = []
        for name, read in self._candidates():
            try:
                read()
            except api.NVMLError as exc:
                if _code(exc) in _NOT_SUPPORTED:
                    unsupported.append(name)
                    continue
            except AttributeError:  # an nvidia-ml-py without this function
                unsupported.append(name)
                continue
            self.readers[name] = read
        throttle = self._throttle_reader()  # feature-tested on its own: two calls to try
        if throttle is None:
            unsupported.append("throttle")
        else:
            self.readers["throttle"] = throttle
        self.track.unsupported = tuple(unsupported)

    def _candidates(self) -> list[tuple[str, Callable[[], Any]]]:
        api, handle = self.api, self.handle
        candidates: list[tuple[str, Callable[[], Any]]] = [
            ("power_w", lambda: api.nvmlDeviceGetPowerUsage(handle) / 1000.0),  # mW
            ("energy_mj", lambda: api.nvmlDeviceGetTotalEnergyConsumption(handle)),  # mJ
            ("utilization", lambda: api.nvmlDeviceGetUtilizationRates(handle)),
            ("mem_used_mib", lambda: api.nvmlDeviceGetMemoryInfo(handle).used / MIB),
            ("sm_clock_mhz", lambda: api.nvmlDeviceGetClockInfo(handle, api.NVML_CLOCK_SM)),
            ("mem_clock_mhz", lambda: api.nvmlDeviceGetClockInfo(handle, api.NVML_CLOCK_MEM)),
            ("temp_c", lambda: api.nvmlDeviceGetTemperature(handle, api.NVML_TEMPERATURE_GPU)),
        ]
        return candidates

    def _throttle_reader(self) -> Callable[[], Any] | None:
        """The clock event reasons (driver 535+), else the older throttle reasons call."""
        for name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            function = getattr(self.api, name, None)
            if function is None:
                continue
            try:
                function(self.handle)
            except self.api.NVMLError as exc:
                if _code(exc) in _NOT_SUPPORTED:
                    continue
            self.track.throttle_api = name
            return functools.partial(function, self.handle)
        return None

    def read(self) -> tuple[dict[str, float | None], str | None]:
        """One tick: (values, why the GPU is gone or None)."""
        row: dict[str, float | None] = {}
        failures: list[str] = []
        for name, read in self.readers.items():
            try:
                value = read()
            except self.api.NVMLError as exc:
                if _code(exc) in _GPU_GONE:
                    return row, f"{name}: {exc}"
                failures.append(f"{name}: {exc}")
                continue
            if name == "utilization":
                row["sm_util_pct"], row["mem_util_pct"] = value.gpu, value.memory
            else:
                row[name] = value
        self.failed_ticks = self.failed_ticks + 1 if failures and not row else 0
        if self.failed_ticks >= LOST_AFTER_FAILED_TICKS:
            return row, f"no reading for {self.failed_ticks} ticks ({failures[-1]})"
        return row, None


class _Host:
    """System-wide CPU utilisation since the previous tick, and memory in use (total −
    available), through psutil."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point

    def read(self) -> dict[str, float | None]:
        memory = self.psutil.virtual_memory()
        return {
            "cpu_util_pct": self.psutil.cpu_percent(interval=None),
            "mem_used_mib": (memory.total - memory.available) / MIB,
        }


class NvmlSampler:
    """Samples the GPUs (NVML) and the host (psutil) at `hz` in a background thread.

    `nvml` is the NVML API (the `pynvml` module of nvidia-ml-py when None); no NVML (not
    installed, no driver, no GPU) is recorded as the reason there are no GPU samples, and the
    host is sampled regardless. Use as a context manager or start()/stop(); stop() is bounded
    (a hung NVML call is abandoned after `stop_timeout_s`) and may be called on any path.
    """

    def __init__(
        self,
        hz: float = DEFAULT_HZ,
        nvml: Any | None = None,
        *,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < hz <= MAX_HZ:
            raise ValueError(f"sampling rate {hz} Hz outside (0, {MAX_HZ:g}]")
        self.hz = hz
        self.stop_timeout_s = stop_timeout_s
        self._nvml = nvml
        self._clock = clock
        self._wall = wall
        self._api: Any = None
        self._gpus: list[_Gpu] = []
        self._host: _Host | None = None
        self._nvml_state = "not started"
        self._host_state = "not started"
        self._host_samples = Columns(HOST_FIELDS)
        self._last_host_t = 0.0
        self._nvml_ms: list[float] = []
        self._host_ms: list[float] = []
        self._problems: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self._zero = self._wall_zero = 0.0
        self._recording: Recording | None = None

    def start(self) -> None:
        """Open NVML and psutil, then sample from now on; the zero is now until mark_zero."""
        self.mark_zero()
        self._nvml_state = self._open_nvml()
        try:
            self._host = _Host()
            self._host_state = "ok"
        except ImportError:
            self._host_state = "psutil is not installed"
        self._last_host_t = self._clock()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._thread.start()

    def mark_zero(self) -> None:
        """t_s = 0 from now: call when the container has started."""
        self._zero, self._wall_zero = self._clock(), self._wall()

    def stop(self) -> Recording:
        """Stop sampling (one last tick first) and return what was recorded; idempotent."""
        if self._recording is not None:
            return self._recording
        thread = self._thread
        if thread is not None:
            self._stopping.set()
            thread.join(self.stop_timeout_s)
            if thread.is_alive():
                with self._lock:
                    self._abandoned = True
                self._problems.append(
                    f"the sampler did not stop within {self.stop_timeout_s:g} s (an NVML call "
                    "hung?); samples after that are dropped"
                )
            elif self._api is not None:
                # Not while a hung call may still use the library.
                with contextlib.suppress(Exception):
                    self._api.nvmlShutdown()
        drift = (self._wall() - self._clock()) - (self._wall_zero - self._zero)
        with self._lock:
            self._recording = Recording(
                hz=self.hz,
                zero=self._zero,
                utc_at_zero=self._wall_zero,
                drift_s=drift,
                nvml=self._nvml_state,
                host_probe=self._host_state,
                gpus=tuple(_copy_track(gpu.track) for gpu in self._gpus),
                host=self._host_samples.copy(),
                nvml_tick_ms=tuple(self._nvml_ms),
                host_tick_ms=tuple(self._host_ms),
                problems=tuple(self._problems),
            )
        return self._recording

    def __enter__(self) -> NvmlSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _open_nvml(self) -> str:
        """`ok` with the GPUs feature-tested, or why there will be no GPU samples."""
        try:
            api = self._nvml if self._nvml is not None else importlib.import_module("pynvml")
        except ImportError:
            return "nvidia-ml-py is not installed"
        try:
            api.nvmlInit()
        except api.NVMLError as exc:  # library not found, driver not loaded, ...
            return f"NVML unavailable ({exc})"
        self._api = api
        try:
            count = int(api.nvmlDeviceGetCount())
        except api.NVMLError as exc:
            return f"NVML cannot count the GPUs ({exc})"
        for index in range(count):
            try:
                self._gpus.append(_Gpu(api, index))
            except api.NVMLError as exc:  # e.g. no permission for this one: sample the others
                self._problems.append(f"GPU {index} not sampled: {exc}")
        if not count:
            return "NVML sees no GPU"
        return "ok" if self._gpus else f"none of the {count} GPUs could be opened"

    def _run(self) -> None:
        period = 1.0 / self.hz
        due = self._clock()
        try:
            while True:
                self._tick()
                due += period
                delay = due - self._clock()
                if delay < 0:  # a slow tick: skip the missed ones rather than burst
                    due, delay = self._clock(), 0.0
                if self._stopping.wait(delay):
                    break
            self._tick()  # after the container ended: the window's end is always bracketed
        except Exception as exc:  # nothing to raise to in this thread: recorded instead
            with self._lock:
                self._problems.append(f"sampling stopped early: {exc!r}")

    def _tick(self) -> None:
        started = time.perf_counter()
        readings = []
        for gpu in self._gpus:
            if gpu.track.lost_at is not None:
                continue
            t = self._clock()
            row, gone = gpu.read()
            readings.append((gpu, t, row, gone))
        nvml_ms = (time.perf_counter() - started) * 1000
        host_row: dict[str, float | None] | None = None
        host_ms = 0.0
        t_host = self._clock()
        if self._host is not None:
            started = time.perf_counter()
            host_row = {**self._host.read(), "since": self._last_host_t}
            if t_host - self._last_host_t < MIN_CPU_INTERVAL_S:
                host_row["cpu_util_pct"] = None  # the kernel counts CPU time in 10 ms ticks
            host_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            if self._abandoned:
                return
            for gpu, t, row, gone in readings:
                if row:
                    gpu.track.samples.append(t, row)
                if gone is not None:
                    gpu.track.lost_at, gpu.track.lost_why = t, gone
            if host_row is not None:
                self._host_samples.append(t_host, host_row)
                self._last_host_t = t_host
            if self._gpus:
                self._nvml_ms.append(nvml_ms)
            if host_row is not None:
                self._host_ms.append(host_ms)


def _copy_track(track: GpuTrack) -> GpuTrack:
    return GpuTrack(
        track.index, track.name, track.unsupported, track.throttle_api, track.lost_at,
        track.lost_why, track.samples.copy(),
    )  # fmt: skip


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _quietly(api: Any, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except api.NVMLError:
        return "unknown"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
