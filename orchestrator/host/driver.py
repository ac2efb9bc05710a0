"""Can this NVIDIA driver run a GPU image, and how: natively, through minor-version
compatibility, or through CUDA forward compatibility; and which of the pinned stacks to build.

Facts come from `orchestrator.images.catalog` (the bases, the driver branches, each with its
source). The rules, per the CUDA compatibility guide:
- native: the driver is at least the one the base's CUDA release ships with;
- minor-version compatibility: the driver is at least the CUDA major's minimum (580 for 13.x,
  525.60.13 for 12.x), on any GPU; newer PTX cannot be JIT-compiled (TensorRT engines and
  onnxruntime's kernels are built for the GPU, so the benchmark is unaffected);
- forward compatibility: a data-center GPU on a branch the base's cuda-compat package targets
  (R535, R570 for CUDA 12 and 13); the NGC entrypoint puts /usr/local/cuda/compat first.
  GeForce and RTX workstation parts cannot (CUDA error 804).
Where the default CUDA 13 stack cannot run, the CUDA 12 stack is chosen and announced; where
neither can, the run is refused (exit 10) with the driver to install.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.errors import GpuUnavailable
from orchestrator.images.catalog import (
    CUDA_BASES,
    DRIVER_BRANCHES,
    GPU_STACKS,
    CudaBase,
    GpuStack,
    stack_of,
)


class GpuClass(StrEnum):
    DATACENTER = "data-center"
    WORKSTATION = "geforce/workstation"


class CudaMode(StrEnum):
    NATIVE = "native"
    MINOR_VERSION = "minor-version compatibility"
    FORWARD = "forward compatibility"


# Data-center parts by NVML name: Tesla-era names, the Hopper/Blackwell/Ampere/Ada server SKUs,
# and RTX PRO "Server Edition" (NGC server-ready). Anything else (GeForce, RTX workstation,
# Quadro, TITAN) is treated as a workstation part, which forward compatibility cannot serve.
_DATACENTER = re.compile(
    r"tesla|server edition"
    r"|\b(?:g?[hb]\d{2,3}|gb\d{3}|gh200|a\d{1,3}g?|l\d{1,2}s?|t4|v100|p100|p40)\b",
    re.IGNORECASE,
)
_WORKSTATION = re.compile(r"geforce|titan|quadro|\brtx\b(?!.*server edition)", re.IGNORECASE)


def gpu_class_of(name: str) -> GpuClass:
    """The GPU class of an NVML device name ("NVIDIA H100 80GB HBM3" → data-center)."""
    if _WORKSTATION.search(name) is None and _DATACENTER.search(name) is not None:
        return GpuClass.DATACENTER
    return GpuClass.WORKSTATION


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.strip().split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def parse_driver(text: str) -> str:
    """A driver version as NVML prints it (`535.183.01`), or ValueError."""
    if not re.fullmatch(r"\d{3}(\.\d{1,3}){0,2}", text.strip()):
        raise ValueError(f"not an NVIDIA driver version: {text!r} (e.g. 570.172.08)")
    return text.strip()


@dataclass(frozen=True)
class CudaPlan:
    """How a driver runs one base: the mode, and a sentence for doctor, the plan, the manifest."""

    driver: str
    gpu_class: GpuClass
    base: CudaBase
    stack: str
    mode: CudaMode

    @property
    def caveat(self) -> str | None:
        if self.mode is CudaMode.MINOR_VERSION:
            full = self.base.driver_full
            return f"no PTX JIT of code newer than the driver (full features from {full})"
        if self.mode is CudaMode.FORWARD:
            return "the image's cuda-compat libraries (/usr/local/cuda/compat), NGC's entrypoint"
        return None

    def sentence(self) -> str:
        text = (
            f"driver {self.driver} ({self.gpu_class}) runs CUDA {self.base.cuda} "
            f"({self.base.ref}) "
            + ("natively" if self.mode is CudaMode.NATIVE else f"through {self.mode}")
        )
        return f"{text}: {self.caveat}" if self.caveat else text

    def record(self) -> dict[str, str]:
        return {
            "driver": self.driver,
            "gpu_class": str(self.gpu_class),
            "stack": self.stack,
            "base": self.base.ref,
            "cuda": self.base.cuda,
            "mode": str(self.mode),
        }


def mode_for(driver: str, gpu_class: GpuClass, base: CudaBase) -> CudaMode | None:
    """How `driver` can run `base`'s CUDA, or None when it cannot."""
    have = _version(driver)
    if have >= _version(base.driver_full):
        return CudaMode.NATIVE
    if have >= _version(base.driver_min):
        return CudaMode.MINOR_VERSION
    branch = DRIVER_BRANCHES.get(have[0])
    if (
        gpu_class is GpuClass.DATACENTER
        and branch is not None
        and base.cuda_major in branch.forward_compat
    ):
        return CudaMode.FORWARD
    return None


def _why_not(driver: str, gpu_class: GpuClass, base: CudaBase) -> str:
    branch = DRIVER_BRANCHES.get(_version(driver)[0])
    if gpu_class is GpuClass.WORKSTATION:
        reach = "forward compatibility serves data-center GPUs only"
    elif branch is None:
        reach = f"R{_version(driver)[0]} is no forward-compatibility target (end of life)"
    elif base.cuda_major not in branch.forward_compat:
        reach = (
            f"R{branch.branch} ({branch.kind}) is no forward-compatibility target for "
            f"CUDA {base.cuda_major}"
        )
    else:
        reach = "no compatibility path"
    return f"CUDA {base.cuda} needs ≥ {base.driver_min} ({reach})"


def plan_cuda(driver: str, gpu_class: GpuClass, base_ref: str | None = None) -> CudaPlan:
    """The stack and mode for `driver`: the given base only (`base_ref`, e.g. --base-image), or
    the first pinned stack that can run; GpuUnavailable (exit 10) when none can."""
    stacks: tuple[GpuStack, ...] = GPU_STACKS
    if base_ref is not None:
        if base_ref not in CUDA_BASES:
            raise ValueError(f"{base_ref} is not a catalogued base: its CUDA is not known")
        stacks = (stack_of(base_ref),)
    reasons = []
    for stack in stacks:
        mode = mode_for(driver, gpu_class, stack.facts)
        if mode is not None:
            return CudaPlan(driver, gpu_class, stack.facts, stack.name, mode)
        reasons.append(_why_not(driver, gpu_class, stack.facts))
    newest = GPU_STACKS[0].facts
    raise GpuUnavailable(
        f"driver {driver} ({gpu_class}) can run none of mlorch's GPU stacks: {'; '.join(reasons)}",
        hint=f"install NVIDIA driver {newest.driver_full} or newer (at least {newest.driver_min}"
        + ("; or R535/R570 on a data-center GPU)" if gpu_class is GpuClass.DATACENTER else ")"),
    )


def plan_offline(driver: str, gpu_name: str | None, base_ref: str | None) -> CudaPlan:
    """`--driver VERSION [--gpu NAME]`: the plan for a host mlorch is not running on (the GPU
    class from the name; a data-center part when none is named)."""
    from orchestrator.errors import ConfigError

    try:
        version = parse_driver(driver)
    except ValueError as exc:
        raise ConfigError(
            str(exc), key="driver", hint="the version `nvidia-smi` prints, e.g. 570.172.08"
        ) from None
    if base_ref is not None and base_ref not in CUDA_BASES:
        raise ConfigError(
            f"--driver plans for catalogued bases only; {base_ref} is not one",
            key="driver",
            hint=f"catalogued: {', '.join(CUDA_BASES)}",
        )
    gpu_class = gpu_class_of(gpu_name) if gpu_name else GpuClass.DATACENTER
    return plan_cuda(version, gpu_class, base_ref)
