"""The driver verdict: which pinned stack a driver runs, and how (native, minor-version
compatibility, forward compatibility), per GPU class, for branches 470–620."""

from __future__ import annotations

import pytest

from orchestrator.config import Device
from orchestrator.errors import GpuUnavailable
from orchestrator.host.driver import (
    CudaMode,
    GpuClass,
    gpu_class_of,
    mode_for,
    parse_driver,
    plan_cuda,
)
from orchestrator.images.catalog import (
    CUDA12_STACK,
    CUDA13_STACK,
    CUDA_BASES,
    DRIVER_BRANCHES,
    NGC_BASE,
    NGC_CUDA12_BASE,
    get_backend,
)

DC, WS = GpuClass.DATACENTER, GpuClass.WORKSTATION
NATIVE, MINOR, FORWARD = CudaMode.NATIVE, CudaMode.MINOR_VERSION, CudaMode.FORWARD
CUDA13, CUDA12 = CUDA_BASES[NGC_BASE], CUDA_BASES[NGC_CUDA12_BASE]

# driver → (CUDA 13.2 on data-center, on GeForce/RTX workstation, CUDA 12.9 on data-center, on WS)
TABLE = {
    "470.256.02": (None, None, None, None),
    "525.60.13": (None, None, MINOR, MINOR),
    "535.183.01": (FORWARD, None, MINOR, MINOR),
    "545.23.08": (None, None, MINOR, MINOR),
    "550.144.03": (None, None, MINOR, MINOR),
    "560.35.03": (None, None, MINOR, MINOR),
    "565.57.01": (None, None, MINOR, MINOR),
    "570.172.08": (FORWARD, None, MINOR, MINOR),
    "575.57.08": (None, None, NATIVE, NATIVE),
    "580.65.06": (MINOR, MINOR, NATIVE, NATIVE),
    "590.44.01": (MINOR, MINOR, NATIVE, NATIVE),
    "595.45.04": (NATIVE, NATIVE, NATIVE, NATIVE),
}


@pytest.mark.parametrize("driver", list(TABLE))
def test_the_verdict_table(driver: str) -> None:
    got = (
        mode_for(driver, DC, CUDA13),
        mode_for(driver, WS, CUDA13),
        mode_for(driver, DC, CUDA12),
        mode_for(driver, WS, CUDA12),
    )
    assert got == TABLE[driver]


@pytest.mark.parametrize(
    ("driver", "gpu_class", "stack", "mode"),
    [
        ("535.183.01", DC, "cuda13", FORWARD),  # R535 LTSB: cuda-compat-13-x targets it
        ("535.183.01", WS, "cuda12", MINOR),  # GeForce: no forward compat → CUDA 12
        ("550.144.03", DC, "cuda12", MINOR),  # R550 is end of life: no forward-compat target
        ("570.172.08", DC, "cuda13", FORWARD),
        ("575.57.08", DC, "cuda12", NATIVE),  # new feature branch: never a compat target
        ("580.65.06", WS, "cuda13", MINOR),
        ("610.43.02", DC, "cuda13", NATIVE),
    ],
)
def test_the_first_stack_that_runs_is_chosen(
    driver: str, gpu_class: GpuClass, stack: str, mode: CudaMode
) -> None:
    plan = plan_cuda(driver, gpu_class)
    assert (plan.stack, plan.mode) == (stack, mode)
    assert plan.record()["mode"] == str(mode)
    assert plan.base.ref in plan.sentence()


def test_a_driver_nothing_serves_is_exit_10_with_a_hint() -> None:
    with pytest.raises(GpuUnavailable, match="none of mlorch's GPU stacks") as caught:
        plan_cuda("470.256.02", DC)
    assert caught.value.exit_code == 10
    assert "R535/R570 on a data-center GPU" in (caught.value.hint or "")
    with pytest.raises(GpuUnavailable, match="data-center GPUs only") as caught:
        plan_cuda("470.256.02", WS)
    assert "R535" not in (caught.value.hint or "")


def test_a_named_base_is_the_only_candidate() -> None:
    assert plan_cuda("535.183.01", DC, NGC_CUDA12_BASE).stack == "cuda12"
    with pytest.raises(GpuUnavailable):
        plan_cuda("535.183.01", WS, NGC_BASE)
    with pytest.raises(ValueError, match="not a catalogued base"):
        plan_cuda("580.65.06", DC, "my/base:1")


@pytest.mark.parametrize(
    ("name", "gpu_class"),
    [
        ("NVIDIA H100 80GB HBM3", DC),
        ("NVIDIA H200", DC),
        ("NVIDIA B200", DC),
        ("NVIDIA A100-SXM4-80GB", DC),
        ("NVIDIA L40S", DC),
        ("Tesla T4", DC),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", DC),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", WS),
        ("NVIDIA GeForce RTX 4090", WS),
        ("NVIDIA RTX A6000", WS),
        ("Quadro RTX 8000", WS),
    ],
)
def test_gpu_class_from_the_nvml_name(name: str, gpu_class: GpuClass) -> None:
    assert gpu_class_of(name) is gpu_class


def test_driver_versions_are_parsed_strictly() -> None:
    assert parse_driver(" 570.172.08 ") == "570.172.08"
    for bad in ("latest", "5700", "570.x", ""):
        with pytest.raises(ValueError, match="not an NVIDIA driver version"):
            parse_driver(bad)


def test_every_branch_row_names_its_source() -> None:
    for row in DRIVER_BRANCHES.values():
        assert row.source
        assert row.kind in ("LTSB", "PB", "NFB")
        assert set(row.forward_compat) <= {12, 13}


def test_each_stack_pins_wheels_of_its_bases_cuda_major() -> None:
    from orchestrator.images.gpu_stack import cuda_major_of

    for stack in (CUDA13_STACK, CUDA12_STACK):
        for backend in ("reference", "dell-trt"):
            pins = get_backend(backend).requirements_for(Device.CUDA, stack.base)
            for pin in pins:
                name, version = pin.split("==")
                if name in ("onnxruntime-gpu",):
                    # its CUDA major is in its wheel metadata (images/test_gpu_stack.py)
                    continue
                major = cuda_major_of(name, version, [])
                assert major in (None, stack.facts.cuda_major), pin
    assert "onnxruntime-gpu==1.26.0" in get_backend("reference").requirements_for(
        Device.CUDA, NGC_CUDA12_BASE
    )
    assert "cuda-bindings==12.9.10" in get_backend("dell-trt").requirements_for(
        Device.CUDA, NGC_CUDA12_BASE
    )
    # cpu images keep their pins whatever the base
    cpu = get_backend("reference").requirements[Device.CPU]
    assert get_backend("reference").requirements_for(Device.CPU, NGC_CUDA12_BASE) == cpu


# --- planning for another host: `render`/`check --driver` (the CLI, in process) ---------------


def test_render_for_an_old_geforce_driver_renders_the_cuda12_stack() -> None:
    from tests.support.cli import run_cli

    done = run_cli(
        "render", "dell-trt", "--device", "cuda", "--driver", "570.172.08",
        "--gpu", "NVIDIA GeForce RTX 4090",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"FROM {NGC_CUDA12_BASE} AS deps" in done.stdout
    assert "through minor-version compatibility" in done.stderr


def test_render_for_r535_on_a_datacenter_gpu_keeps_cuda13_by_forward_compat() -> None:
    from tests.support.cli import run_cli

    done = run_cli("render", "reference", "--device", "cuda", "--driver", "535.183.01")
    assert done.returncode == 0, done.stderr
    assert f"FROM {NGC_BASE} AS deps" in done.stdout
    assert "forward compatibility" in done.stderr
    assert '"/opt/nvidia/nvidia_entrypoint.sh", "python"' in done.stdout


def test_check_names_the_plan_and_refuses_an_unserved_driver_with_exit_10() -> None:
    from tests.support.cli import run_cli

    args = ("check", "dell-trt", "--device", "cuda", "--harness-profile", "nvidia-h200-sxm")
    served = run_cli(*args, "--driver", "570.172.08")
    assert "runs CUDA 13.2" in served.stderr
    assert "through forward compatibility" in served.stderr
    refused = run_cli(*args, "--driver", "470.82")
    assert refused.returncode == 10
    assert "none of mlorch's GPU stacks" in refused.stderr
    assert "hint: install NVIDIA driver" in refused.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--device", "cuda", "--driver", "latest"), "not an NVIDIA driver version"),
        (("--device", "cpu", "--driver", "570.172.08"), "plan a cuda image"),
        (("--device", "cuda", "--gpu", "NVIDIA L4"), "plan a cuda image"),
    ],
)
def test_bad_driver_flags_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    from tests.support.cli import run_cli

    done = run_cli("render", "reference", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
