"""Facts about the host and its GPUs (NVML), for manifests, `doctor` and device selection."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import DiskFull
from orchestrator.paths import free_bytes


def min_free_disk_gib() -> float:
    """The free space every write needs besides its own (`MLORCH_MIN_FREE_GIB`, default 2)."""
    return float(os.environ.get("MLORCH_MIN_FREE_GIB", "2.0"))


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
    return round(free_bytes(path) / (1 << 30), 1)


def check_disk(path: Path, need_gib: float | None = None) -> None:
    """Refuse to start a step that needs more free disk under `path` than there is (by default
    the minimum every step keeps free)."""
    need_gib = min_free_disk_gib() if need_gib is None else need_gib
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
        "system": system_facts(),
    }


# --- system facts for a submission's systems/<id>.json -------------------------------------------
# Read at `up` time (recorded in the manifest) from /proc, /sys and NVML; every probe returns None
# (or nothing) where the host does not tell, so `submit` can ask for exactly those fields.

SYS = Path("/sys")
PROC = Path("/proc")
# /sys/class/dmi/id/chassis_type (SMBIOS 3.x table 17) → what kind of system it is
CHASSIS_TYPES = {
    3: "desktop", 4: "low-profile desktop", 6: "mini tower", 7: "tower", 8: "portable",
    9: "laptop", 10: "notebook", 13: "all-in-one", 17: "main server chassis",
    23: "rack mount chassis", 24: "sealed-case PC", 28: "blade", 29: "blade enclosure",
    30: "tablet", 31: "convertible", 35: "mini PC", 36: "stick PC",
}  # fmt: skip
NIC_TYPES = {1: "Ethernet", 32: "InfiniBand"}  # /sys/class/net/<nic>/type (ARPHRD_*)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpuinfo(proc: Path) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU."""
    text = _read(proc / "cpuinfo") or ""
    cpus: list[dict[str, str]] = []
    for block in text.split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            cpus.append(entry)
    return cpus


def cpu_topology(proc: Path = PROC) -> dict[str, Any]:
    """Sockets, physical cores per socket and logical CPUs, from /proc/cpuinfo."""
    cpus = _cpuinfo(proc)
    sockets = {cpu["physical id"] for cpu in cpus if "physical id" in cpu}
    cores = {(cpu.get("physical id"), cpu["core id"]) for cpu in cpus if "core id" in cpu}
    mhz = [float(cpu["cpu MHz"]) for cpu in cpus if _is_number(cpu.get("cpu MHz"))]
    return {
        "sockets": len(sockets) or None,
        "cores_per_socket": len(cores) // len(sockets) if sockets and cores else None,
        "logical_cpus": len(cpus) or None,
        "cpu_mhz": round(max(mhz)) if mhz else None,
    }


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def cpu_max_mhz(sys_root: Path = SYS) -> int | None:
    """The highest frequency cpufreq reports for CPU 0 (kHz in sysfs)."""
    text = _read(sys_root / "devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return int(text) // 1000 if text and text.isdigit() else None


def cpu_caches(sys_root: Path = SYS) -> list[dict[str, Any]]:
    """CPU 0's caches: level, type, size, and how many logical CPUs share each."""
    caches = []
    for index in sorted((sys_root / "devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = (_read(index / name) for name in ("level", "type", "size"))
        shared = _read(index / "shared_cpu_list")
        if not (level and kind and size):
            continue
        caches.append(
            {"level": int(level), "type": kind, "size": size, "shared_by": _count_cpus(shared)}
        )
    return caches


def _count_cpus(cpu_list: str | None) -> int | None:
    """How many CPUs a sysfs cpu list like `0-3,8` names."""
    if not cpu_list:
        return None
    count = 0
    for part in cpu_list.split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        count += int(last) - int(first) + 1 if last else 1
    return count


def block_devices(sys_root: Path = SYS) -> list[dict[str, Any]]:
    """Physical disks (no loop, RAM or other virtual block devices): name, bytes, kind."""
    disks = []
    for device in sorted((sys_root / "block").glob("*")):
        target = (device / "device").resolve() if (device / "device").exists() else None
        if target is None or "/virtual/" in str(target):
            continue
        sectors = _read(device / "size")
        if not sectors or not sectors.isdigit() or int(sectors) == 0:
            continue
        rotational = _read(device / "queue/rotational")
        if device.name.startswith("nvme"):
            kind = "NVMe SSD"
        elif device.name.startswith("vd") or "virtio" in str(target):
            kind = "virtio disk (virtual machine)"
        else:
            kind = "HDD" if rotational == "1" else "SSD"
        disks.append({"name": device.name, "bytes": int(sectors) * 512, "kind": kind})
    return disks


def network_cards(sys_root: Path = SYS) -> list[dict[str, Any]]:
    """Physical network interfaces (those backed by a device): name, kind, driver, speed."""
    cards = []
    for nic in sorted((sys_root / "class/net").glob("*")):
        if not (nic / "device").exists():
            continue
        driver_link = nic / "device/driver"
        driver = driver_link.resolve().name if driver_link.exists() else None
        kind = _read(nic / "type")
        speed = _read(nic / "speed")
        known = kind is not None and kind.isdigit()
        cards.append(
            {
                "name": nic.name,
                "kind": NIC_TYPES.get(int(kind), f"type {kind}") if known and kind else None,
                "driver": driver,
                "speed_mbps": int(speed) if speed and speed.isdigit() and int(speed) > 0 else None,
            }
        )
    return cards


def os_release(etc: Path = Path("/etc")) -> str | None:
    for line in (_read(etc / "os-release") or "").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"') or None
    return None


def dmi_facts(sys_root: Path = SYS) -> dict[str, str | None]:
    """Vendor, product and chassis kind from DMI (absent in most containers and some VMs)."""
    dmi = sys_root / "class/dmi/id"
    chassis = _read(dmi / "chassis_type")
    return {
        "vendor": _read(dmi / "sys_vendor") or None,
        "product": _read(dmi / "product_name") or None,
        "chassis": CHASSIS_TYPES.get(int(chassis)) if chassis and chassis.isdigit() else None,
    }


def nvml_accelerator_facts() -> tuple[list[dict[str, Any]], str | None]:
    """(per GPU: name, memory, max clocks, PCIe link, active NVLinks; the CUDA version the driver
    supports). Each figure NVML cannot give is None; no NVML: ([], None)."""
    try:
        import pynvml
    except ImportError:
        return [], None
    try:
        pynvml.nvmlInit()
    except Exception:
        return [], None
    try:
        cuda = _nvml(lambda: pynvml.nvmlSystemGetCudaDriverVersion())
        gpus = [
            _gpu_facts(pynvml, pynvml.nvmlDeviceGetHandleByIndex(index))
            for index in range(pynvml.nvmlDeviceGetCount())
        ]
        version = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None
        return gpus, version
    finally:
        pynvml.nvmlShutdown()


def _nvml(call: Any) -> Any:
    try:
        return call()
    except Exception:  # NVMLError_NotSupported and friends: the figure is unknown
        return None


def _gpu_facts(pynvml: Any, handle: Any) -> dict[str, Any]:
    memory = _nvml(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    links = [
        _nvml(lambda link=link: pynvml.nvmlDeviceGetNvLinkState(handle, link))
        for link in range(int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 0)))
    ]
    return {
        "name": _text(_nvml(lambda: pynvml.nvmlDeviceGetName(handle)) or "") or None,
        "memory_mib": int(memory.total // (1 << 20)) if memory is not None else None,
        "max_sm_clock_mhz": _nvml(
            lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        ),
        "max_memory_clock_mhz": _nvml(
            lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        ),
        "pcie_generation": _nvml(lambda: pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)),
        "pcie_width": _nvml(lambda: pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle)),
        "nvlinks_active": sum(1 for state in links if state == pynvml.NVML_FEATURE_ENABLED),
    }


def system_facts(sys_root: Path = SYS, proc: Path = PROC) -> dict[str, Any]:
    """What a submission's systems/<id>.json can say about this host without asking."""
    gpus, cuda = nvml_accelerator_facts()
    return {
        "cpu_model": cpu_model(),
        **cpu_topology(proc),
        "cpu_max_mhz": cpu_max_mhz(sys_root),
        "caches": cpu_caches(sys_root),
        "memory_gib": memory_gib(),
        "disks": block_devices(sys_root),
        "network_cards": network_cards(sys_root),
        "os_release": os_release(),
        "kernel": platform.release(),
        "dmi": dmi_facts(sys_root),
        "accelerators": gpus,
        "cuda_driver_version": cuda,
    }
