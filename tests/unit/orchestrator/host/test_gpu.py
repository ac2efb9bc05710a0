"""GPU support as Docker decides it, the driver floor, and the `--device cuda` preflight."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.config import Device, Mode, Scenario
from orchestrator.errors import GpuUnavailable
from orchestrator.host.facts import GpuInfo
from orchestrator.host.gpu import (
    HOOK,
    GpuAccess,
    GpuSupport,
    gpu_support,
    require_cuda,
)
from orchestrator.images.catalog import NGC_BASE

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-0")
GEFORCE = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564, "GPU-1")


def _hook_on(folder: Path) -> str:
    hook = folder / HOOK
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    return str(folder)


def _cdi_spec(folder: Path, kind: str, suffix: str = ".yaml") -> None:
    text = (
        json.dumps({"cdiVersion": "0.5.0", "kind": kind, "devices": []})
        if suffix == ".json"
        else f"cdiVersion: 0.5.0\nkind: {kind}\ndevices: []\n"
    )
    (folder / f"spec{suffix}").write_text(text)


@pytest.fixture
def no_hook_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host has no toolkit; make sure the fixed install folders are not consulted."""
    monkeypatch.setattr("orchestrator.host.gpu.HOOK_DIRS", ())


def test_hook_on_path_is_what_gpus_all_needs(tmp_path: Path, no_hook_dirs: None) -> None:
    support = gpu_support(
        {"Runtimes": {"runc": {}}}, local_engine=True, path_env=_hook_on(tmp_path)
    )
    assert support.access is GpuAccess.HOOK
    assert str(tmp_path / HOOK) in support.detail


def test_a_registered_runtime_without_hook_is_the_legacy_path(
    tmp_path: Path, no_hook_dirs: None
) -> None:
    info = {"Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}}
    support = gpu_support(info, local_engine=True, path_env=str(tmp_path))
    assert support.access is GpuAccess.RUNTIME


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_cdi_spec_for_nvidia_gpus(tmp_path: Path, no_hook_dirs: None, suffix: str) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    _cdi_spec(cdi, "nvidia.com/gpu", suffix)
    support = gpu_support({"CDISpecDirs": [str(cdi)]}, local_engine=True, path_env=str(tmp_path))
    assert support.access is GpuAccess.CDI
    assert "nvidia.com/gpu" in support.detail


def test_cdi_spec_of_another_vendor_does_not_count(tmp_path: Path, no_hook_dirs: None) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    _cdi_spec(cdi, "vendor.example/fpga")
    support = gpu_support({"CDISpecDirs": [str(cdi)]}, local_engine=True, path_env=str(tmp_path))
    assert support.access is None
    assert "no nvidia.com/gpu CDI spec" in support.detail


def test_nothing_says_what_was_looked_for(tmp_path: Path, no_hook_dirs: None) -> None:
    support = gpu_support({"Runtimes": {"runc": {}}}, local_engine=True, path_env=str(tmp_path))
    assert support.access is None
    assert HOOK in support.detail
    assert "CDI not enabled" in support.detail


def test_remote_engine_never_reads_local_files(tmp_path: Path) -> None:
    # A hook on this host's PATH says nothing about a remote daemon.
    support = gpu_support({}, local_engine=False, path_env=_hook_on(tmp_path))
    assert support.access is None
    assert "remote engine" in support.detail


def _unreachable() -> GpuSupport:
    raise AssertionError("the engine must not be asked before the cheap checks pass")


def test_preflight_without_gpu_never_asks_the_engine() -> None:
    with pytest.raises(GpuUnavailable, match="no NVIDIA GPU is visible") as caught:
        require_cuda([], None, "NVML unavailable", _unreachable, None)
    assert caught.value.exit_code == 10


def test_preflight_with_a_driver_no_stack_can_use() -> None:
    with pytest.raises(GpuUnavailable, match="none of mlorch's GPU stacks") as caught:
        require_cuda([H100], "470.256.02", None, _unreachable, None)
    assert caught.value.exit_code == 10
    assert "install NVIDIA driver" in (caught.value.hint or "")


def test_preflight_refuses_a_named_base_the_driver_cannot_run() -> None:
    with pytest.raises(GpuUnavailable, match=r"CUDA 13\.2 needs ≥ 580"):
        require_cuda([GEFORCE], "550.54.15", None, _unreachable, NGC_BASE)


def test_preflight_moves_to_the_stack_the_driver_can_run() -> None:
    _access, plan = require_cuda(
        [GEFORCE], "550.54.15", None, lambda: GpuSupport(GpuAccess.HOOK, "hook"), None
    )
    assert plan is not None
    assert (plan.stack, plan.mode) == ("cuda12", "minor-version compatibility")


def test_preflight_without_container_support() -> None:
    with pytest.raises(GpuUnavailable, match="Docker cannot give containers GPUs") as caught:
        require_cuda([H100], "580.159.04", None, lambda: GpuSupport(None, "nothing found"), None)
    assert "nvidia-ctk" in (caught.value.hint or "")


def test_preflight_passes_the_mechanism_on() -> None:
    access, plan = require_cuda(
        [H100], "580.159.04", None, lambda: GpuSupport(GpuAccess.CDI, "spec"), None
    )
    assert access is GpuAccess.CDI
    assert plan is not None
    assert plan.base.ref == NGC_BASE


def test_an_uncatalogued_base_gets_no_driver_verdict() -> None:
    _, plan = require_cuda(
        [H100], "580.159.04", None, lambda: GpuSupport(GpuAccess.CDI, "spec"), "my/base:1"
    )
    assert plan is None


@pytest.mark.parametrize("access", list(GpuAccess))
def test_containers_ask_for_gpus_the_way_the_engine_can_give_them(access: GpuAccess) -> None:
    from orchestrator.images.catalog import get_backend
    from orchestrator.images.containers import loadgen_spec

    spec = loadgen_spec(
        get_backend("reference"), "img:1", "run1", Scenario.OFFLINE, Mode.PERFORMANCE,
        Device.CUDA, model=Path("/m"), cache=Path("/c"), user_conf=Path("/u"),
        results=Path("/r"), user="1000:1000", count=8, performance_count=8, threads=None,
        max_batchsize=8, gpu_access=access.value,
    )  # fmt: skip
    kwargs = spec.create_kwargs()
    if access is GpuAccess.HOOK:
        request = kwargs["device_requests"][0]
        assert request["Count"] == -1
        assert request["Capabilities"] == [["gpu"]]
    elif access is GpuAccess.CDI:
        request = kwargs["device_requests"][0]
        assert request["Driver"] == "cdi"
        assert request["DeviceIDs"] == ["nvidia.com/gpu=all"]
    else:
        assert kwargs["runtime"] == "nvidia"
        assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "all"
        assert "device_requests" not in kwargs
    assert kwargs["privileged"] is False  # GPU access never needs privileges


def test_cpu_containers_get_no_gpu() -> None:
    from orchestrator.images.catalog import get_backend
    from orchestrator.images.containers import loadgen_spec

    spec = loadgen_spec(
        get_backend("reference"), "img:1", "run1", Scenario.OFFLINE, Mode.PERFORMANCE,
        Device.CPU, model=Path("/m"), cache=Path("/c"), user_conf=Path("/u"),
        results=Path("/r"), user="1000:1000", count=8, performance_count=8, threads=None,
        max_batchsize=8, gpu_access="cdi",
    )  # fmt: skip
    kwargs = spec.create_kwargs()
    assert "device_requests" not in kwargs
    assert "runtime" not in kwargs


def test_hook_detection_honours_executable_bit(tmp_path: Path, no_hook_dirs: None) -> None:
    hook = tmp_path / HOOK
    hook.write_text("not executable")
    os.chmod(hook, 0o644)
    assert gpu_support({}, local_engine=True, path_env=str(tmp_path)).access is None
