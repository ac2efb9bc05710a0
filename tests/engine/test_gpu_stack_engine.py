"""The GPU stack checked on a real engine without a GPU: --device cuda never silently falls
back to the CPU-only local base, and a base whose CUDA does not match the GPU wheels is refused
before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.images.catalog import LOCAL_BASE, NGC_BASE
from tests.engine.conftest import mlorch

pytestmark = pytest.mark.engine


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    return errors[0]


def test_cuda_build_refuses_the_cpu_only_fallback(tmp_path: Path, engine: DockerEngine) -> None:
    assert engine.image_id(NGC_BASE) is None  # no registry here: the NGC base cannot be pulled
    result = mlorch("build", "reference", "--device", "cuda", cwd=tmp_path, timeout=600)
    assert result.returncode == 4
    line = _one_error_line(result.stderr)
    assert "--device cuda needs the NGC base" in line
    assert "CUDA 13.2" in line
    assert "docker load" in result.stderr
    assert "falls back" not in result.stderr
    assert LOCAL_BASE not in line


def test_a_base_without_cuda_is_refused_before_building(
    tmp_path: Path, engine: DockerEngine
) -> None:
    images_before = {image.id for image in engine.client.images.list()}
    result = mlorch(
        "build", "dell-trt", "--device", "cuda", "--base-image", LOCAL_BASE, cwd=tmp_path,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert "GPU stack mismatch for dell-trt" in line
    assert "has no CUDA" in line
    assert NGC_BASE in result.stderr  # the hint names the pinned base
    assert {image.id for image in engine.client.images.list()} == images_before  # nothing built


def test_up_cuda_without_gpu_stops_before_anything(tmp_path: Path, engine: DockerEngine) -> None:
    result = mlorch("up", "dell-trt", "--device", "cuda", "--quick", cwd=tmp_path, timeout=300)
    assert result.returncode == 10
    assert "no NVIDIA GPU is visible" in _one_error_line(result.stderr)
    assert "harness profile" not in result.stderr  # no profile chosen for GPUs that are not there
    assert not (tmp_path / "runs").exists()  # no run folder, no image, no container
    assert engine.labelled_containers() == []
