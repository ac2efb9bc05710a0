"""Facts about the host and its GPUs (NVML), for manifests, `doctor` and device selection."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import DiskFull

MIN_FREE_DISK_GIB = float(os.environ.get("MLORCH_MIN_FREE_GIB", "2.0"))


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_mib: int
    uuid: str
    compute_capability: str | None = None
    multiprocessors: int | None = None


# CUDA cores per SM by compute capability major (8.0 is GA100's 64; other 8.x have 128).
_CORES_PER_SM = {7: 64, 8: 128, 9: 128, 10: 128, 12: 128}


def _sm_facts(pynvml: Any, handle: Any) -> tuple[str | None, int | None]:
    """(compute capability, SM count) where this NVML can tell; None otherwise."""
    try:
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    except Exception:
        return None, None
    try:
        cores = int(pynvml.nvmlDeviceGetNumGpuCores(handle))
    except Exception:
        return f"{major}.{minor}", None
    per_sm = 64 if (major, minor) == (8, 0) else _CORES_PER_SM.get(int(major))
    return f"{major}.{minor}", (cores // per_sm if per_sm else None)


def nvml_gpus() -> tuple[list[GpuInfo], str | None, str | None]:
    """(GPUs, driver version, why NVML is unavailable)."""
    try:
        import pynvml
    except ImportError:
        return [], None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], None, f"NVML unavailable ({exc})"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            capability, sms = _sm_facts(pynvml, handle)
            gpus.append(
                GpuInfo(
                    index,
                    _text(pynvml.nvmlDeviceGetName(handle)),
                    int(memory.total // (1 << 20)),
                    _text(pynvml.nvmlDeviceGetUUID(handle)),
                    capability,
                    sms,
                )
            )
        return gpus, _text(driver), None
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def free_disk_gib(path: Path) -> float:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return round(shutil.disk_usage(probe).free / (1 << 30), 1)


def check_disk(path: Path, need_gib: float = MIN_FREE_DISK_GIB) -> None:
    """Refuse to start a step that needs more free disk under `path` than there is."""
    free = free_disk_gib(path)
    if free < need_gib:
        raise DiskFull(
            f"only {free} GiB free under {path} ({need_gib:.1f} GiB needed)",
            hint="free disk space or point --runs-dir / MLORCH_CACHE elsewhere",
        )


def host_facts() -> dict[str, Any]:
    gpus, driver, why = nvml_gpus()
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpus": [asdict(gpu) for gpu in gpus],
        "nvidia_driver": driver,
        "nvml": why or "ok",
    }
