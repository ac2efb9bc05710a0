"""A stand-in for the part of the NVML API (nvidia-ml-py's `pynvml`) that NvmlSampler calls.

Injected into the sampler in place of the module; the real pynvml is never touched. Each GPU's
readings are scripted as functions of the time since nvmlInit (so power and the energy counter
agree), and each GPU can refuse calls (NOT_SUPPORTED), lack the newer clock event call,
fall off the bus after some ticks, or hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml's: carries the NVML return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


def constant(value: float) -> Callable[[float], float]:
    return lambda _t: value


def step(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    """`high` between start and end (seconds since nvmlInit), `low` elsewhere."""
    return lambda t: high if start <= t < end else low


def step_energy_mj(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    """The energy counter (mJ) of a board drawing step(low, high, start, end) watts."""

    def energy(t: float) -> float:
        inside = max(0.0, min(t, end) - start)
        return 1000 * (low * (t - inside) + high * inside)

    return energy


@dataclass
class FakeGpu:
    name: str = "Fake H100"
    power_w: Callable[[float], float] = field(default_factory=lambda: constant(100.0))
    energy_mj: Callable[[float], float] | None = None  # None: the counter is not supported
    sm_util: int = 50
    mem_util: int = 20
    mem_used_mib: int = 4096
    sm_clock: int = 1980
    mem_clock: int = 2619
    temp_c: int = 45
    throttle: int = 0
    event_reasons: bool = True  # False: a driver older than 535 (only ...ThrottleReasons)
    lost_after: int | None = None  # power reads that answer before GPU_IS_LOST
    failing_after: int | None = None  # power reads before every call fails with UNKNOWN
    unsupported: tuple[str, ...] = ()  # NVML functions answering NOT_SUPPORTED
    hang: threading.Event | None = None  # power reads block until this is set
    handle_error: int | None = None  # nvmlDeviceGetHandleByIndex fails with this code
    power_reads: int = 0


class FakeNvml:
    """Module-like: the pynvml functions and constants the sampler uses."""

    NVMLError = NVMLError
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_MEM = NVML_CLOCK_MEM
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.born = time.monotonic()
        self.calls: dict[str, int] = {}
        self.initialised = 0
        self.lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def _gpu(self, handle: int, call: str) -> FakeGpu:
        self._count(call)
        gpu = self.gpus[handle]
        if call in gpu.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if gpu.lost_after is not None and gpu.power_reads > gpu.lost_after:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if gpu.failing_after is not None and gpu.power_reads > gpu.failing_after:
            raise NVMLError(NVML_ERROR_UNKNOWN)
        return gpu

    def now(self) -> float:
        return time.monotonic() - self.born

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1
        self.born = time.monotonic()  # scripted readings run from the sampler's start

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_UNKNOWN)
        if self.gpus[index].handle_error is not None:
            raise NVMLError(self.gpus[index].handle_error)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle].name

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetPowerUsage")
        if gpu.hang is not None:
            gpu.hang.wait()
        gpu.power_reads += 1
        return round(gpu.power_w(self.now()) * 1000)  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if gpu.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return round(gpu.energy_mj(self.now()))

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=gpu.sm_util, memory=gpu.mem_util)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        used = gpu.mem_used_mib << 20
        return SimpleNamespace(total=80 << 30, used=used, free=(80 << 30) - used)

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        return {NVML_CLOCK_SM: gpu.sm_clock, NVML_CLOCK_MEM: gpu.mem_clock}[clock]

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._gpu(handle, "nvmlDeviceGetTemperature").temp_c

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons")
        if not gpu.event_reasons:  # new bindings, driver older than 535: no such symbol
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        return gpu.throttle

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: int) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle


class OldBindingsNvml(FakeNvml):
    """An nvidia-ml-py from before the clock event reasons call: the attribute is missing."""

    @property
    def nvmlDeviceGetCurrentClocksEventReasons(self) -> Any:  # type: ignore[override]
        raise AttributeError("nvmlDeviceGetCurrentClocksEventReasons")
