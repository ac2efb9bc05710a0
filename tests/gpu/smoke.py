"""The GPU smoke: what a session lent a GPU machine runs first, in one command (under 8 min).

    ./scripts/gpu-smoke.sh            # on the GPU machine (see the script for --prepare)

Steps, each reported as ran / passed / failed / not run (and why):
1. driver: NVML's driver and GPU name → mlorch's driver verdict (stack, CUDA, mode);
2. telemetry: mlorch's NVML sampler over a few seconds of GPU load (power, clocks, utilisation);
3. native: the native LoadGen issue path that scripts/gpu-smoke.sh compiled (g++ and the
   LoadGen sdist carried in .gpu-wheels), or why there is none;
4. harness: `pytest tests/gpu` — pinned staging, batch copies, streams, events, CUDA graphs of
   the LWIS device with a CuPy stand-in engine, and real LoadGen driving the harness through
   both issue paths (the bindings' and the native one, where step 3 built it).
TensorRT, onnxruntime-gpu and Docker are not on that machine: what needs them stays unrun.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTEST_TIMEOUT_S = 360
LOAD_SECONDS = 3.0


@dataclass(frozen=True)
class Step:
    name: str
    verdict: str  # passed | failed | not run
    detail: str


def _driver() -> Step:
    try:
        import pynvml
    except ImportError:
        return Step("driver", "not run", "nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver, no GPU
        return Step("driver", "not run", f"NVML: {exc}")
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        name = name.decode() if isinstance(name, bytes) else str(name)
    finally:
        pynvml.nvmlShutdown()
    from orchestrator.errors import GpuUnavailable
    from orchestrator.host.driver import gpu_class_of, plan_cuda

    try:
        plan = plan_cuda(driver, gpu_class_of(name))
    except GpuUnavailable as exc:
        return Step("driver", "failed", f"{name}: {exc.message}")
    return Step("driver", "passed", f"{name}: {plan.sentence()}")


def _busy(seconds: float) -> str:
    """Load the GPU for `seconds` with whatever array library is there."""
    try:
        import torch

        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()
        return "torch bf16 matmuls"
    except ImportError:
        import cupy

        b = cupy.random.standard_normal((4096, 4096), dtype=cupy.float32)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            b = cupy.tanh(b @ b)
            cupy.cuda.runtime.deviceSynchronize()
        return "cupy fp32 matmuls"


def _telemetry() -> Step:
    from orchestrator.telemetry.sampler import NvmlSampler

    sampler = NvmlSampler(hz=20)
    sampler.start()
    try:
        load = _busy(LOAD_SECONDS)
    except Exception as exc:
        sampler.stop()
        return Step("telemetry", "not run", f"no GPU load possible: {exc}")
    recording = sampler.stop()
    if recording.nvml != "ok" or not recording.gpus:
        return Step("telemetry", "failed", f"NVML: {recording.nvml}")
    track = recording.gpus[0]
    power = [v for _, v in track.samples.series("power_w")]
    clocks = [v for _, v in track.samples.series("sm_clock_mhz")]
    util = [v for _, v in track.samples.series("sm_util_pct")]
    detail = (
        f"{track.name}: {len(power)} samples at {recording.hz:g} Hz under {load}; power "
        f"{min(power, default=0):.0f}–{max(power, default=0):.0f} W, SM clock up to "
        f"{max(clocks, default=0):.0f} MHz, SM util up to {max(util, default=0):.0f} %; "
        f"unsupported: {', '.join(track.unsupported) or 'none'}; NVML tick "
        f"{sorted(recording.nvml_tick_ms)[len(recording.nvml_tick_ms) // 2]:.2f} ms (median)"
    )
    passed = len(power) >= 10 and max(util, default=0) > 0 and max(power, default=0) > 0
    return Step("telemetry", "passed" if passed else "failed", detail)


def _native() -> Step:
    folder = os.environ.get("MLORCH_NATIVE_LOADGEN")
    if not folder:
        log = Path("/tmp/mlorch-native.log")
        why = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
        return Step("native", "not run", why[0] if why else "not built by scripts/gpu-smoke.sh")
    from backends.common.native import describe

    return Step("native", "passed", describe(Path(folder)))


def _harness() -> Step:
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/gpu"]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S,
            check=False, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Step("harness", "failed", f"pytest tests/gpu ran past {PYTEST_TIMEOUT_S} s")
    tail = [line for line in done.stdout.splitlines() if line.strip()][-12:]
    print("\n".join(tail), flush=True)
    summary = tail[-1] if tail else done.stderr.strip()[-300:]
    if done.returncode == 0 and "passed" in summary:  # skips (a path not built) are listed
        return Step("harness", "passed", summary)
    if done.returncode == 0:  # everything skipped, or some: say which
        return Step("harness", "not run", summary)
    return Step("harness", "failed", summary)


STEPS: tuple[Callable[[], Step], ...] = (_driver, _telemetry, _native, _harness)


def main() -> int:
    started = time.monotonic()
    results = []
    for step in STEPS:
        try:
            result = step()
        except Exception as exc:  # a step's own defect is a failure, not a crash of the smoke
            result = Step(step.__name__.strip("_"), "failed", f"{type(exc).__name__}: {exc}")
        print(f"[{result.verdict}] {result.name}: {result.detail}", flush=True)
        results.append(result)
    print(f"\nGPU smoke in {time.monotonic() - started:.0f} s:")
    for result in results:
        print(f"  {result.name:<10} {result.verdict}")
    print(
        "  not run here (no TensorRT, onnxruntime-gpu or Docker on the GPU machine): engine "
        "builds, the INT8 engine's accuracy, mlorch up --device cuda"
    )
    return 1 if any(result.verdict == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
