"""Dockerfile templates against golden renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.catalog import NGC_BASE, get_backend
from orchestrator.config import Device
from orchestrator.errors import ConfigError
from orchestrator.image import render_dockerfile


@pytest.mark.parametrize(
    ("device", "base", "golden_name"),
    [
        (Device.CPU, "mlorch/base:bookworm", "reference-cpu-local.Dockerfile"),
        (Device.CUDA, NGC_BASE, "reference-cuda-ngc.Dockerfile"),
    ],
)
def test_render_matches_golden(golden: Path, device: Device, base: str, golden_name: str) -> None:
    rendered = render_dockerfile(get_backend("reference"), device, base)
    assert rendered == (golden / "dockerfiles" / golden_name).read_text()


def test_base_image_is_a_parameter() -> None:
    rendered = render_dockerfile(get_backend("reference"), Device.CPU, "registry.lab:5000/base:1")
    assert rendered.count("FROM registry.lab:5000/base:1") == 2
    assert "nvcr.io" not in rendered


def test_default_base_is_pinned_ngc() -> None:
    backend = get_backend("reference")
    assert backend.default_base[Device.CUDA].startswith("nvcr.io/nvidia/")
    assert ":latest" not in backend.default_base[Device.CUDA]


def test_requirements_are_pinned_and_device_specific() -> None:
    backend = get_backend("reference")
    for device in Device:
        assert all("==" in req for req in backend.requirements[device])
    assert any(req.startswith("onnxruntime-gpu==") for req in backend.requirements[Device.CUDA])
    assert any(req.startswith("onnxruntime==") for req in backend.requirements[Device.CPU])


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'refrence'") as info:
        get_backend("refrence")
    assert "reference" in (info.value.hint or "")
