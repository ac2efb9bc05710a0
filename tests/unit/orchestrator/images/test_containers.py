"""Every container mlorch starts is labelled, non-root, unprivileged, with read-only inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import Device, Mode, Scenario
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import CONTAINER_UID, Identity, loadgen_spec, prepare_spec


def _test_kwargs(device: Device) -> dict[str, object]:
    spec = loadgen_spec(
        get_backend("reference"),
        "img:1",
        "run1",
        Scenario.SERVER,
        Mode.ACCURACY,
        device,
        model=Path("/m/resnet50_v1.onnx"),
        cache=Path("/c"),
        user_conf=Path("/u.conf"),
        results=Path("/r"),
        user="1000:1000",
        count=64,
        performance_count=64,
        threads=None,
        max_batchsize=32,
    )
    return spec.create_kwargs()


def test_hardening_and_labels() -> None:
    kwargs = _test_kwargs(Device.CPU)
    assert kwargs["user"] == "1000:1000"
    assert kwargs["privileged"] is False
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges:true"]
    assert kwargs["read_only"] is True
    assert kwargs["network_mode"] == "none"
    labels = kwargs["labels"]
    assert labels["mlorch.tool"] == "mlorch"
    assert labels["mlorch.run-id"] == "run1"
    assert labels["mlorch.backend"] == "reference"
    assert labels["mlorch.scenario"] == "Server"
    assert labels["mlorch.mode"] == "AccuracyOnly"
    mounts = {m["Target"]: m["ReadOnly"] for m in kwargs["mounts"]}
    assert mounts == {
        "/model/resnet50_v1.onnx": True,
        "/cache": True,
        "/config/user.conf": True,
        "/results": False,
    }
    assert "device_requests" not in kwargs
    assert kwargs["pids_limit"] == 4096
    assert "mem_limit" not in kwargs


def test_memory_limit_reaches_create_kwargs() -> None:
    from dataclasses import replace

    spec = prepare_spec(
        get_backend("reference"), "img:1", "run1", Path("/d"), Path("/c"), 64, "1000:1000"
    )
    kwargs = replace(spec, mem_limit=512 << 20).create_kwargs()
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 512 << 20
    assert kwargs["pids_limit"] == 4096


def test_owner_labels_name_this_process() -> None:
    import os

    labels = _test_kwargs(Device.CPU)["labels"]
    assert labels["mlorch.owner-pid"] == str(os.getpid())
    assert labels["mlorch.owner-boot-id"]
    assert labels["mlorch.owner-started"]


def test_cuda_requests_all_gpus() -> None:
    requests = _test_kwargs(Device.CUDA)["device_requests"]
    assert len(requests) == 1
    assert requests[0]["Count"] == -1
    assert requests[0]["Capabilities"] == [["gpu"]]


def test_prepare_mounts_dataset_read_only() -> None:
    spec = prepare_spec(
        get_backend("reference"), "img:1", "run1", Path("/d"), Path("/c"), 64, "1000:1000"
    )
    mounts = {m.target: m.read_only for m in spec.mounts}
    assert mounts == {"/data": True, "/cache": False}
    # one single-threaded process per CPU: threads stay well inside the pids limit
    assert spec.environment["OPENCV_FOR_THREADS_NUM"] == "1"
    assert spec.environment["OPENBLAS_NUM_THREADS"] == "1"


def test_identity_as_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.getuid", lambda: 1234)
    monkeypatch.setattr("os.getgid", lambda: 99)
    identity = Identity.current()
    assert identity.container_user == "1234:99"
    assert not identity.handover


def test_identity_as_root_uses_dedicated_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.getuid", lambda: 0)
    monkeypatch.setattr("os.getgid", lambda: 0)
    monkeypatch.setenv("SUDO_UID", "1000")
    monkeypatch.setenv("SUDO_GID", "1001")
    identity = Identity.current()
    assert identity.container_user == f"{CONTAINER_UID}:{CONTAINER_UID}"
    assert (identity.owner_uid, identity.owner_gid) == (1000, 1001)
    assert identity.handover


def test_an_audit_mounts_its_audit_config_read_only_and_names_it() -> None:
    from orchestrator.images.containers import AUDIT_CONFIG_MOUNT, AuditInputs

    spec = loadgen_spec(
        get_backend("dell-trt"), "img:1", "run1", Scenario.SINGLE_STREAM, Mode.PERFORMANCE,
        Device.CPU, model=Path("/m/model.onnx"), cache=Path("/c"), user_conf=Path("/u.conf"),
        results=Path("/r/compliance/TEST04"), user="1000:1000", count=64, performance_count=64,
        threads=None, max_batchsize=32, audit=AuditInputs("TEST04", Path("/r/audit.config")),
    )  # fmt: skip
    kwargs = spec.create_kwargs()
    mounts = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]}
    assert mounts[AUDIT_CONFIG_MOUNT] == ("/r/audit.config", True)
    assert mounts["/results"] == ("/r/compliance/TEST04", False)
    command = list(spec.command)
    assert command[command.index("--audit-config") + 1] == AUDIT_CONFIG_MOUNT
    assert command[command.index("--mode") + 1] == "PerformanceOnly"
    assert spec.name == "mlorch-run1-singlestream-test04"
    assert kwargs["labels"]["mlorch.audit"] == "TEST04"
