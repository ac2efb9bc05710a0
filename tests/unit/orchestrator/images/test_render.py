"""Dockerfile templates against golden renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import Device
from orchestrator.errors import ConfigError
from orchestrator.images.build import render_dockerfile
from orchestrator.images.catalog import BACKENDS, NGC_BASE, NGC_CUDA12_BASE, get_backend


@pytest.mark.parametrize(
    ("backend", "device", "base", "golden_name"),
    [
        ("reference", Device.CPU, "mlorch/base:bookworm", "reference-cpu-local.Dockerfile"),
        ("reference", Device.CUDA, NGC_BASE, "reference-cuda-ngc.Dockerfile"),
        ("dell-trt", Device.CPU, "mlorch/base:bookworm", "dell-trt-cpu-local.Dockerfile"),
        ("dell-trt", Device.CUDA, NGC_BASE, "dell-trt-cuda-ngc.Dockerfile"),
        ("dell-trt", Device.CUDA, NGC_CUDA12_BASE, "dell-trt-cuda12-ngc.Dockerfile"),
    ],
)
def test_render_matches_golden(
    golden: Path, backend: str, device: Device, base: str, golden_name: str
) -> None:
    rendered = render_dockerfile(get_backend(backend), device, base)
    assert rendered == (golden / "dockerfiles" / golden_name).read_text()


def _as_docker_runs_it(instruction: str) -> list[str]:
    """The process Docker starts for a RUN instruction: exec form (a JSON array) as it is,
    shell form through /bin/sh -c."""
    if instruction.startswith("["):
        return list(json.loads(instruction))
    return ["/bin/sh", "-c", instruction]


@pytest.mark.subprocess
@pytest.mark.parametrize("name", sorted(n for n, b in BACKENDS.items() if b.gpu_libraries))
def test_the_library_check_gets_every_spec_intact(name: str, tmp_path: Path) -> None:
    """The build-time ldd check receives the catalog's specs as they are: `a|b` alternatives
    and globs must reach it whole, not become a shell pipe or a file list."""
    backend = get_backend(name)
    rendered = render_dockerfile(backend, Device.CUDA, NGC_BASE)
    [instruction] = [
        line.removeprefix("RUN ").strip()
        for line in rendered.splitlines()
        if line.startswith("RUN ") and "backends.common.libcheck" in line
    ]
    shim = tmp_path / "bin" / "python"  # stands for the image's python: records its argv
    shim.parent.mkdir()
    record = tmp_path / "argv.json"
    shim.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    shim.chmod(0o755)
    for decoy in ("tensorrt_bindings:x.so", "capi"):  # files a glob or a pipe could pick up
        (tmp_path / decoy).touch()
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}"}
    argv = _as_docker_runs_it(instruction)
    if not argv[0].startswith("/"):  # exec form: Docker looks the program up on the image's PATH
        argv[0] = str(shim)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == [
        "-m",
        "backends.common.libcheck",
        *backend.gpu_libraries,
    ]


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


@pytest.mark.parametrize("base", [NGC_BASE, NGC_CUDA12_BASE])
def test_cuda_images_keep_ngcs_entrypoint_for_forward_compatibility(base: str) -> None:
    """NGC's entrypoint turns on /usr/local/cuda/compat on older data-center drivers: mlorch's
    command runs through it on cuda, and the build fails where the base lacks it."""
    for name in BACKENDS:
        rendered = render_dockerfile(get_backend(name), Device.CUDA, base)
        entry = [line for line in rendered.splitlines() if line.startswith("ENTRYPOINT")]
        assert entry == [
            f'ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python", "-m", '
            f'"{get_backend(name).module}"]'
        ]
        assert "RUN test -x /opt/nvidia/nvidia_entrypoint.sh" in rendered
    # cpu images and uncatalogued bases start python directly (no NGC banner, no driver check)
    for device, other in ((Device.CPU, base), (Device.CUDA, "registry.lab:5000/base:1")):
        rendered = render_dockerfile(get_backend("reference"), device, other)
        assert 'ENTRYPOINT ["python", "-m", "backends.reference"]' in rendered


def test_the_tensorrt_image_imports_and_records_its_tensorrt() -> None:
    rendered = render_dockerfile(get_backend("dell-trt"), Device.CUDA, NGC_BASE)
    assert "import tensorrt, cuda.bindings.runtime" in rendered
    assert "/opt/mlorch/tensorrt-version.txt" in rendered
    reference = render_dockerfile(get_backend("reference"), Device.CUDA, NGC_BASE)
    assert "import tensorrt" not in reference
