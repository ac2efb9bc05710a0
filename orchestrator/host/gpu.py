"""Can this host run GPU containers? As Docker decides it, not as `docker info` suggests.

Docker passes GPUs to a container through one of three mechanisms:
- the NVIDIA container toolkit's `nvidia-container-runtime-hook` on the daemon's PATH: what
  `docker run --gpus` and the SDK's DeviceRequest(capabilities=[["gpu"]]) need;
- CDI: specs for `nvidia.com/gpu` in the daemon's CDI spec folders (`nvidia-ctk cdi generate`),
  requested as DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"]) (Docker 25+);
- a registered `nvidia` runtime (legacy `nvidia-docker2` set-ups): runtime="nvidia" with
  NVIDIA_VISIBLE_DEVICES.
A registered runtime alone says nothing about the first two, and the first two need none.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from orchestrator.engine.client import DockerEngine
from orchestrator.errors import GpuUnavailable
from orchestrator.host.driver import CudaPlan, gpu_class_of, plan_cuda
from orchestrator.host.facts import GpuInfo
from orchestrator.images.catalog import CUDA_BASES

HOOK = "nvidia-container-runtime-hook"
# Where distributions install the hook, in case the daemon's PATH is wider than ours.
HOOK_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/nvidia/toolkit")
DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
CDI_KIND = "nvidia.com/gpu"


class GpuAccess(StrEnum):
    HOOK = "hook"
    CDI = "cdi"
    RUNTIME = "runtime"


@dataclass(frozen=True)
class GpuSupport:
    access: GpuAccess | None
    detail: str  # what was found, or what was looked for


def find_hook(path_env: str | None = None) -> Path | None:
    found = shutil.which(HOOK, path=path_env if path_env is not None else os.environ.get("PATH"))
    if found:
        return Path(found)
    for folder in HOOK_DIRS:
        candidate = Path(folder) / HOOK
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def cdi_gpu_specs(folders: list[str]) -> list[Path]:
    """CDI spec files (json or yaml) that declare the `nvidia.com/gpu` kind."""
    specs = []
    for folder in folders:
        directory = Path(folder)
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".json", ".yaml", ".yml"):
                continue
            try:
                text = path.read_text()
            except OSError:
                continue
            kind = _cdi_kind(text, path.suffix)
            if kind == CDI_KIND:
                specs.append(path)
    return specs


def _cdi_kind(text: str, suffix: str) -> str | None:
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception:
        return None
    return str(data.get("kind")) if isinstance(data, dict) and data.get("kind") else None


def engine_gpu_support(engine: DockerEngine) -> GpuSupport:
    """How `engine` would give containers GPUs (hook, CDI, runtime), if at all."""
    return gpu_support(engine.info(), engine.is_local)


def gpu_support(
    info: dict[str, Any], local_engine: bool, path_env: str | None = None
) -> GpuSupport:
    """The mechanism this engine would use to give a container GPUs, best first.

    `info` is `docker info`; `local_engine` says whether the daemon runs on this host (only then
    can its hook and CDI folders be looked at).
    """
    if local_engine:
        hook = find_hook(path_env)
        if hook is not None:
            return GpuSupport(GpuAccess.HOOK, f"{HOOK} at {hook}")
        cdi_dirs = list(info.get("CDISpecDirs") or [])
        if cdi_dirs:
            specs = cdi_gpu_specs(cdi_dirs)
            if specs:
                return GpuSupport(GpuAccess.CDI, f"CDI spec {specs[0]} ({CDI_KIND})")
    elif info.get("CDISpecDirs"):
        # A remote daemon: its folders cannot be read from here; CDI support is the best guess.
        return GpuSupport(GpuAccess.CDI, "remote engine with CDI enabled (specs not verifiable)")
    if "nvidia" in (info.get("Runtimes") or {}):
        return GpuSupport(GpuAccess.RUNTIME, "registered 'nvidia' runtime (legacy nvidia-docker2)")
    looked = f"no {HOOK} on PATH or in {', '.join(HOOK_DIRS)}" if local_engine else "remote engine"
    cdi = ", ".join(info.get("CDISpecDirs") or []) or "CDI not enabled"
    return GpuSupport(None, f"{looked}; no {CDI_KIND} CDI spec ({cdi}); no 'nvidia' runtime")


TOOLKIT_HINT = (
    "install the NVIDIA container toolkit (nvidia-container-toolkit) and run "
    "`nvidia-ctk runtime configure --runtime=docker` (or `nvidia-ctk cdi generate "
    "--output=/etc/cdi/nvidia.yaml`), restart dockerd; or use --device cpu"
)


def no_gpu(why: str | None) -> GpuUnavailable:
    return GpuUnavailable(
        f"--device cuda but no NVIDIA GPU is visible ({why or 'NVML reports 0 GPUs'})",
        hint="install the NVIDIA driver, or run with --device cpu",
    )


def require_cuda(
    gpus: list[GpuInfo], driver: str | None, why_no_gpu: str | None,
    support_of_engine: Callable[[], GpuSupport], base_ref: str | None,
) -> tuple[GpuAccess, CudaPlan | None]:  # fmt: skip
    """Refuse `--device cuda` before anything is built or started when it cannot work; else
    say how containers get the GPUs and how the driver runs the image's CUDA (the stack to
    build: `base_ref` when the user named a catalogued base, else the first that can run; None
    for a base whose CUDA mlorch does not know). The engine is asked only when GPUs are there."""
    if not gpus:
        raise no_gpu(why_no_gpu)
    if driver is None:
        raise GpuUnavailable(
            "--device cuda but NVML reports no driver version", hint="reinstall the NVIDIA driver"
        )
    plan = None
    if base_ref is None or base_ref in CUDA_BASES:
        plan = plan_cuda(driver, gpu_class_of(gpus[0].name), base_ref)
    support = support_of_engine()
    if support.access is None:
        raise GpuUnavailable(
            f"--device cuda but Docker cannot give containers GPUs: {support.detail}",
            hint=TOOLKIT_HINT,
        )
    return support.access, plan


# --- the GPU stack of an image: base CUDA/TensorRT against the GPU wheels' CUDA major ---------
