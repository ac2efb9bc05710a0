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
    driver_min: str  # minor-version compatibility: the CUDA major's minimum driver
    driver_full: str  # the driver of this CUDA release: everything native (PTX JIT included)
    # NGC's entrypoint: it turns on CUDA forward compatibility (/usr/local/cuda/compat) when the
    # host driver is older than the image's CUDA; mlorch's command runs through it.
    entrypoint: str = "/opt/nvidia/nvidia_entrypoint.sh"

    @property
    def cuda_major(self) -> int:
        return int(self.cuda.split(".")[0])

    @property
    def cuda_minor(self) -> tuple[int, int]:
        major, minor = self.cuda.split(".")[:2]
        return int(major), int(minor)


# The one pinned NGC base for every backend's GPU image. Its CUDA major must equal the CUDA major
# of every GPU wheel pinned below (onnxruntime-gpu 1.31 and cuda-bindings 13.x are CUDA 13), and
# its TensorRT major must match what onnxruntime-gpu's TensorRT provider links (libnvinfer.so.10):
# a test checks both against the wheels' metadata.
NGC_BASE = "nvcr.io/nvidia/tensorrt:26.03-py3"
# The second stack, for drivers CUDA 13 cannot reach (GeForce/RTX workstation parts below 580, or
# a data-center driver branch forward compatibility does not serve): the last NGC TensorRT on
# CUDA 12 (TensorRT 10.11, Ubuntu 24.04, Python 3.12), with onnxruntime-gpu 1.26.0 (the newest
# CUDA 12 build on PyPI; its TensorRT provider links libnvinfer.so.10, libcudart.so.12) and
# cuda-bindings 12.9.x. Sources: NGC release notes 25.06 (CUDA 12.9.1); Triton's
# compatibility matrix; PyPI metadata of onnxruntime-gpu 1.26.0 / 1.27.0 (CUDA 13 from 1.27).
NGC_CUDA12_BASE = "nvcr.io/nvidia/tensorrt:25.06-py3"
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
    NGC_CUDA12_BASE: CudaBase(
        ref=NGC_CUDA12_BASE,
        cuda="12.9",
        tensorrt="10.11.0.33",
        cudnn="9.10.2",
        ubuntu="24.04",
        python="3.12",
        glibc="2.39",
        driver_min="525.60.13",
        driver_full="575.57.08",
    ),
}


@dataclass(frozen=True)
class GpuStack:
    """The GPU wheels pinned for one base: their CUDA major equals the base's (checked)."""

    name: str
    base: str
    pins: dict[str, str]  # package name → requirement, replacing the default stack's pin

    @property
    def facts(self) -> CudaBase:
        return CUDA_BASES[self.base]


CUDA13_STACK = GpuStack("cuda13", NGC_BASE, {})  # the default pins below
CUDA12_STACK = GpuStack(
    "cuda12",
    NGC_CUDA12_BASE,
    {"onnxruntime-gpu": "onnxruntime-gpu==1.26.0", "cuda-bindings": "cuda-bindings==12.9.10"},
)
GPU_STACKS = (CUDA13_STACK, CUDA12_STACK)  # in order of preference


def stack_of(base_ref: str) -> GpuStack:
    """The stack whose pins go with `base_ref` (the default stack for any other base)."""
    return next((stack for stack in GPU_STACKS if stack.base == base_ref), CUDA13_STACK)


@dataclass(frozen=True)
class DriverBranch:
    """One NVIDIA driver branch, as the CUDA compatibility guide lists it."""

    branch: int
    kind: str  # LTSB (long-term), PB (production), NFB (new feature)
    native_cuda: str  # the newest CUDA its driver runs without any compatibility package
    forward_compat: tuple[int, ...]  # CUDA majors whose cuda-compat packages target it
    source: str


_COMPAT_GUIDE = "CUDA Compatibility guide, forward-compatibility table (r615 edition)"
_LIFECYCLE = "NVIDIA data-center driver lifecycle (supported-drivers-and-cuda-toolkit-versions)"
# Data-center GPUs (and NGC-ready RTX server parts) may run a newer CUDA on these branches through
# the cuda-compat package; GeForce / RTX workstation parts never can (CUDA error 804). Branches
# not listed are end of life and no target of forward compatibility; new-feature branches never
# are. Minor-version compatibility (same CUDA major, no newer PTX JIT) works on any GPU.
DRIVER_BRANCHES: dict[int, DriverBranch] = {
    row.branch: row
    for row in (
        DriverBranch(535, "LTSB", "12.2", (12, 13), f"{_COMPAT_GUIDE}; {_LIFECYCLE}: EOL 2026-06"),
        DriverBranch(570, "PB", "12.8", (12, 13), f"{_COMPAT_GUIDE}; {_LIFECYCLE}: EOL 2026-02"),
        DriverBranch(
            575, "NFB", "12.9", (), f"{_COMPAT_GUIDE}: new feature branches are no target"
        ),
        DriverBranch(580, "LTSB", "13.0", (13,), f"{_COMPAT_GUIDE}; {_LIFECYCLE}: EOL 2028"),
        DriverBranch(590, "NFB", "13.1", (13,), _COMPAT_GUIDE),
        DriverBranch(595, "PB", "13.2", (13,), f"{_COMPAT_GUIDE}; {_LIFECYCLE}: EOL 2027-03"),
        DriverBranch(610, "NFB", "13.3", (13,), _COMPAT_GUIDE),
        DriverBranch(615, "PB", "13.4", (13,), _COMPAT_GUIDE),
        DriverBranch(620, "LTSB", "13.4", (13,), f"{_LIFECYCLE}: EOL 2029-09"),
    )
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
    # Pinned sdists the image compiles from: LoadGen's C++ sources for the native issue path
    # (backends/common/native), the release of the installed bindings.
    native_sources: tuple[str, ...] = ()

    def requirements_for(self, device: Device, base_ref: str) -> tuple[str, ...]:
        """The pins of an image on `base_ref`: on cuda, the GPU wheels of the base's stack."""
        pins = self.requirements[device]
        if device is not Device.CUDA:
            return pins
        swap = stack_of(base_ref).pins
        return tuple(swap.get(pin.split("==")[0], pin) for pin in pins)

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
        native_sources=(LOADGEN,),
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
