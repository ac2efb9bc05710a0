"""The backends mlorch can build and run, and what each needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.config import Device
from orchestrator.errors import ConfigError

# Pinned NGC base: CUDA 12.6, cuDNN 9, TensorRT 10.7, Ubuntu 24.04, Python 3.12.
NGC_BASE = "nvcr.io/nvidia/tensorrt:24.12-py3"
# What `mlorch up` builds locally when the default base cannot be pulled (no registry);
# MLORCH_LOCAL_BASE names another tag.
LOCAL_BASE = "mlorch/base:bookworm"


def local_base() -> str:
    return os.environ.get("MLORCH_LOCAL_BASE", LOCAL_BASE)


LOADGEN = "mlcommons-loadgen==6.0.17"
COMMON = (LOADGEN, "numpy==2.4.6", "opencv-python-headless==5.0.0.93", "onnx==1.23.2")


@dataclass(frozen=True)
class BackendDef:
    name: str
    summary: str
    template: str
    module: str
    requirements: dict[Device, tuple[str, ...]]
    default_base: dict[Device, str]
    system_site_packages: bool = False
    input_format: str = "fp32"  # preprocessed cache format the SUT reads (layout.FORMATS)

    def image_repository(self, device: Device) -> str:
        return f"mlorch/{self.name}-{device.value}"


BACKENDS: dict[str, BackendDef] = {
    "reference": BackendDef(
        name="reference",
        summary="MLCommons reference ResNet50 (onnxruntime, vision/classification_and_detection)",
        template="reference.Dockerfile.j2",
        module="backends.reference",
        requirements={
            Device.CPU: (*COMMON, "onnxruntime==1.31.1"),
            Device.CUDA: (*COMMON, "onnxruntime-gpu==1.31.1", "nvidia-ml-py==13.615.71"),
        },
        default_base={Device.CPU: NGC_BASE, Device.CUDA: NGC_BASE},
    ),
}


def get_backend(name: str) -> BackendDef:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"unknown backend '{name}'", key="backend", hint=f"known backends: {known}"
        ) from None
