"""`mlorch doctor`: each prerequisite with a verdict and a hint."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engine.client import DockerEngine
from orchestrator.errors import EngineUnavailable, GpuUnavailable
from orchestrator.host.driver import CudaMode, gpu_class_of, plan_cuda
from orchestrator.host.facts import free_disk_gib, nvml_gpus
from orchestrator.host.gpu import TOOLKIT_HINT, engine_gpu_support
from orchestrator.images.catalog import BACKENDS, CUDA_BASES, NGC_BASE, local_base
from orchestrator.paths import cache_dir

MIN_DISK_GIB = 20.0


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str  # ok | warn | fail
    detail: str
    hint: str | None = None


def _driver_check(driver: str | None, gpu_name: str) -> Check:
    """Which pinned stack this driver runs, and how (native, minor-version, forward compat)."""
    if driver is None:
        return Check("driver", "fail", "NVML reports no driver version", "reinstall the driver")
    try:
        plan = plan_cuda(driver, gpu_class_of(gpu_name))
    except GpuUnavailable as exc:
        return Check("driver", "fail", exc.message, exc.hint)
    default = CUDA_BASES[NGC_BASE]
    hint = None
    if plan.base.ref != NGC_BASE or plan.mode is not CudaMode.NATIVE:
        hint = f"driver {default.driver_full}+ runs the default stack ({default.ref}) natively"
    verdict = "ok" if plan.base.ref == NGC_BASE else "warn"
    return Check(f"driver (CUDA, {plan.stack} stack)", verdict, plan.sentence(), hint)


def run_checks() -> list[Check]:
    checks: list[Check] = []
    engine: DockerEngine | None = None
    try:
        engine = DockerEngine.connect(timeout=10)
        version = engine.client.version()
        checks.append(
            Check(
                "docker engine", "ok", f"{version.get('Version')} (API {version.get('ApiVersion')})"
            )
        )
    except EngineUnavailable as exc:
        checks.append(Check("docker engine", "fail", exc.message, exc.hint))

    gpus, driver, why = nvml_gpus()
    if gpus:
        names = ", ".join(sorted({gpu.name for gpu in gpus}))
        checks.append(Check("GPUs (NVML)", "ok", f"{len(gpus)} × {names}, driver {driver}"))
        checks.append(_driver_check(driver, gpus[0].name))
    else:
        checks.append(
            Check(
                "GPUs (NVML)",
                "warn",
                why or "no GPU",
                "cpu runs only; install the NVIDIA driver for cuda",
            )
        )
    if engine is not None:
        checks += _engine_checks(engine, bool(gpus))

    free = free_disk_gib(cache_dir())
    verdict = "ok" if free >= MIN_DISK_GIB else ("warn" if free >= 2 else "fail")
    checks.append(
        Check(
            "free disk",
            verdict,
            f"{free} GiB free at {cache_dir()}",
            None if verdict == "ok" else f"images and caches need ~{MIN_DISK_GIB:.0f} GiB",
        )
    )
    return checks


def _engine_checks(engine: DockerEngine, gpus: bool) -> list[Check]:
    """What the engine offers: GPU containers, the default bases, the local base."""
    checks: list[Check] = []
    support = engine_gpu_support(engine)
    if support.access is not None:
        checks.append(Check("GPU containers", "ok", f"{support.access}: {support.detail}"))
    else:
        checks.append(
            Check(
                "GPU containers",
                "fail" if gpus else "warn",
                support.detail,
                TOOLKIT_HINT if gpus else "only needed for --device cuda",
            )
        )
    defaults = sorted(
        {base for backend in BACKENDS.values() for base in backend.default_base.values()}
    )
    for ref in defaults:
        present = engine.image_id(ref) is not None
        checks.append(
            Check(
                f"base image {ref}",
                "ok" if present else "warn",
                "present" if present else "not present (pulled on first `up`)",
                None
                if present
                else f"offline: --device cpu falls back to {local_base()}; --device cuda "
                f"needs it: `docker load -i` a saved copy, or pass --base-image",
            )
        )
    local = engine.image_id(local_base()) is not None
    checks.append(
        Check(
            f"local base {local_base()}",
            "ok" if local else "warn",
            "present" if local else "not built",
            None if local else "docker/bootstrap-base-image.sh builds it (root, ~1 min)",
        )
    )
    return checks
