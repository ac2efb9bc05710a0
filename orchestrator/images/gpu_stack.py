"""One consistent GPU stack: the CUDA major each pinned GPU wheel is built for, against the base
image's CUDA (and TensorRT, where the backend needs it)."""

from __future__ import annotations

import re
from pathlib import Path

_CU_SUFFIX = re.compile(r"-cu(\d+)(?:$|-)")
_CUPY = re.compile(r"^cupy-cuda(\d+)x$")
_CUDA_RUNTIME_REQ = re.compile(
    r"^nvidia-cuda-runtime(?:-cu(\d+))?\s*(?:\(?\s*(?:~=|==|>=)\s*(\d+))?", re.IGNORECASE
)
_VERSIONED_BY_CUDA = ("cuda-bindings", "cuda-python", "cuda-core")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cuda_major_of(name: str, version: str, requires_dist: list[str]) -> int | None:
    """The CUDA major a wheel is built for, from its name, version or dependencies.

    `tensorrt-cu13-bindings`, `cupy-cuda13x`, `cuda-bindings 13.x` name it themselves;
    `onnxruntime-gpu` says it through `nvidia-cuda-runtime~=13.0` (an extra's dependency).
    None for wheels that are not tied to CUDA.
    """
    canonical = _canonical(name)
    if match := _CU_SUFFIX.search(canonical):
        return int(match.group(1))
    if match := _CUPY.match(canonical):
        return int(match.group(1))
    if canonical in _VERSIONED_BY_CUDA:
        return int(version.split(".")[0])
    for requirement in requires_dist:
        match = _CUDA_RUNTIME_REQ.match(requirement.strip())
        if match and (match.group(1) or match.group(2)):
            return int(match.group(1) or match.group(2))
    return None


def wheel_metadata(wheel: Path) -> tuple[str, str, list[str]]:
    """(Name, Version, Requires-Dist lines) read from a wheel's METADATA."""
    import zipfile
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(member).decode("utf-8", "replace"))
    return (
        str(message["Name"]),
        str(message["Version"]),
        list(message.get_all("Requires-Dist") or []),
    )


def gpu_stack_problems(
    base_ref: str, base_cuda: str | None, base_tensorrt: str | None, wheels: list[Path],
    needs_tensorrt: bool,
) -> list[str]:  # fmt: skip
    """Why GPU images built from `wheels` on this base could not load their GPU libraries."""
    if not base_cuda:
        return [
            f"base image {base_ref} has no CUDA (no CUDA_VERSION, no /usr/local/cuda/version.json)"
        ]
    base_major = int(base_cuda.split(".")[0])
    problems = []
    for wheel in wheels:
        name, version, requires = wheel_metadata(wheel)
        major = cuda_major_of(name, version, requires)
        if major is not None and major != base_major:
            problems.append(
                f"{name} {version} is built for CUDA {major}, the base has CUDA {base_cuda}"
            )
    if needs_tensorrt and not base_tensorrt:
        problems.append(f"base image {base_ref} has no TensorRT Python package")
    return problems
