"""Choosing cpu or cuda: cuda needs GPUs (NVML) and a way for Docker to pass them to containers."""

from __future__ import annotations

from orchestrator.config import Device
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import ConfigError
from orchestrator.host.facts import nvml_gpus
from orchestrator.host.gpu import engine_gpu_support


def detect_device(engine: DockerEngine) -> tuple[Device, str]:
    """The default device and why it was chosen."""
    gpus, _driver, why = nvml_gpus()
    if not gpus:
        return Device.CPU, f"no GPU found ({why or 'NVML reports 0 GPUs'})"
    support = engine_gpu_support(engine)
    if support.access is None:
        return (
            Device.CPU,
            f"{len(gpus)} GPU(s) found but Docker cannot pass them ({support.detail})",
        )
    return Device.CUDA, f"{len(gpus)} GPU(s): {gpus[0].name}, via {support.detail}"


def parse_device(value: str | None) -> Device | None:
    if value is None:
        return None
    try:
        return Device(value)
    except ValueError:
        raise ConfigError(
            f"unknown device '{value}'", key="device", hint="use --device cpu or --device cuda"
        ) from None
