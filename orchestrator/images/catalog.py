"""The backends mlorch can build and run, and what each needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from contract.dell_trt import recipe
from orchestrator.config import Device
from orchestrator.errors import ConfigError


@dataclass(frozen=True)
class CudaBase:
    """An NGC image GPU images are built on, and what it ships.

    Facts from NVIDIA's release notes for the tag (CUDA DL / TensorRT container 26.03) and the
    CUDA compatibility guide: CUDA 13.x runs on drivers >= 580 through minor-version
    compatibility (no PTX JIT of newer PTX); the driver CUDA 13.2 ships with enables everything.
    """

    ref: str
    cuda: str
    tensorrt: str
    cudnn: str
    ubuntu: str
    python: str
    glibc: str
    driver_min: str
    driver_full: str

    @property
    def cuda_major(self) -> int:
        return int(self.cuda.split(".")[0])


# The one pinned NGC base for every backend's GPU image. Its CUDA major must equal the CUDA major
# of every GPU wheel pinned below (onnxruntime-gpu 1.31 and cuda-bindings 13.x are CUDA 13), and
# its TensorRT major must match what onnxruntime-gpu's TensorRT provider links (libnvinfer.so.10):
# a test checks both against the wheels' metadata.
NGC_BASE = "nvcr.io/nvidia/tensorrt:26.03-py3"
CUDA_BASES: dict[str, CudaBase] = {
    NGC_BASE: CudaBase(
        ref=NGC_BASE,
        cuda="13.2",
        tensorrt="10.16.0.72",
        cudnn="9.20.0.48",
        ubuntu="24.04",
        python="3.12",
        glibc="2.39",
        driver_min="580",
        driver_full="595.45.04",
    ),
}
# What `mlorch up` builds locally when the default base cannot be pulled (no registry);
# MLORCH_LOCAL_BASE names another tag.
LOCAL_BASE = "mlorch/base:bookworm"


def local_base() -> str:
    return os.environ.get("MLORCH_LOCAL_BASE", LOCAL_BASE)


LOADGEN = "mlcommons-loadgen==6.0.17"
COMMON = (LOADGEN, "numpy==2.4.6", "opencv-python-headless==5.0.0.93", "onnx==1.23.2")
NVML = "nvidia-ml-py==13.615.71"
# cuda-python's runtime bindings, CUDA 13.2 like the pinned base (streams, events, graphs).
CUDA_BINDINGS = "cuda-bindings==13.2.0"


@dataclass(frozen=True)
class BackendDef:
    name: str
    summary: str
    template: str
    module: str
    requirements: dict[Device, tuple[str, ...]]
    default_base: dict[Device, str]
    # The venv also sees the base's own packages (TensorRT comes from the NGC base).
    system_site_packages: bool = False
    input_format: str = "fp32"  # preprocessed cache format the SUT reads (layout.FORMATS)
    response_dtype: str = "float32"  # what one LoadGen response holds: the label
    # `module:glob` of the GPU libraries whose shared-library needs must resolve in the cuda
    # image (checked with ldd at build time; the driver's libraries are mounted at run time).
    gpu_libraries: tuple[str, ...] = ()
    needs_tensorrt: bool = False  # the cuda image runs TensorRT from the base
    harness_profiles: bool = False  # settings from contract.dell_trt.settings (--set, profiles)

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
            Device.CUDA: (*COMMON, "onnxruntime-gpu==1.31.1", NVML),
        },
        default_base={Device.CPU: NGC_BASE, Device.CUDA: NGC_BASE},
        gpu_libraries=("onnxruntime:capi/libonnxruntime_providers_cuda.so",),
    ),
    "dell-trt": BackendDef(
        name="dell-trt",
        summary="Dell/NVIDIA MLPerf v2.1 ResNet50 recipe: INT8 TensorRT engine, LWIS harness "
        "(--device cpu: the same recipe on onnxruntime CPU, the twin)",
        template="dell-trt.Dockerfile.j2",
        module="backends.dell_trt",
        requirements={
            # onnxruntime (CPU) on both: calibration, quantization, the FP32 agreement guard,
            # and the CPU twin's engine.
            Device.CPU: (*COMMON, "onnxruntime==1.31.1"),
            Device.CUDA: (*COMMON, "onnxruntime==1.31.1", CUDA_BINDINGS, NVML),
        },
        default_base={Device.CPU: NGC_BASE, Device.CUDA: NGC_BASE},
        system_site_packages=True,
        input_format="int8",
        response_dtype=recipe.RESPONSE_DTYPE,
        gpu_libraries=("tensorrt|tensorrt_bindings:**/*.so",),
        needs_tensorrt=True,
        harness_profiles=True,
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
