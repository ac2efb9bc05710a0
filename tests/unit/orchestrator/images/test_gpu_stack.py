"""One consistent GPU stack: the base's CUDA major equals every pinned GPU wheel's, and a GPU
library whose shared-library needs do not resolve fails the image build (ldd, no GPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backends.common import libcheck
from orchestrator.config import Device
from orchestrator.images.catalog import BACKENDS, GPU_STACKS, NGC_BASE, GpuStack
from orchestrator.images.gpu_stack import cuda_major_of, gpu_stack_problems


@pytest.mark.parametrize(
    ("name", "version", "requires", "major"),
    [
        ("tensorrt-cu13-bindings", "10.16.0.72", [], 13),
        ("tensorrt_cu12_libs", "10.7.0", [], 12),
        ("cupy-cuda13x", "14.2.0", ["numpy>=2.0,<2.6"], 13),
        ("cuda-bindings", "13.2.0", ["cuda-pathfinder>=1.4.2"], 13),
        ("nvidia-cudnn-cu13", "9.20.0.48", [], 13),
        (
            "onnxruntime-gpu",
            "1.31.1",
            ["numpy>=1.21.6", 'nvidia-cuda-runtime~=13.0; extra == "cuda"'],
            13,
        ),
        ("onnxruntime-gpu", "1.20.1", ['nvidia-cuda-runtime-cu12~=12.0; extra == "cuda"'], 12),
        ("numpy", "2.4.6", [], None),
        ("nvidia-ml-py", "13.615.71", [], None),  # NVML talks to any driver
    ],
)
def test_cuda_major_of_a_wheel(name: str, version: str, requires: list[str], major: int) -> None:
    assert cuda_major_of(name, version, requires) == major


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {req}\n" for req in requires
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata)
    return path


def test_a_cuda13_wheel_on_a_cuda12_base_is_named(tmp_path: Path) -> None:
    wheels = [
        _wheel(tmp_path, "numpy", "2.4.6", []),
        _wheel(
            tmp_path, "onnxruntime-gpu", "1.31.1", ['nvidia-cuda-runtime~=13.0; extra == "cuda"']
        ),
    ]
    problems = gpu_stack_problems(
        "nvcr.io/nvidia/tensorrt:24.12-py3", "12.6.3", "10.7.0", wheels, False
    )
    assert problems == ["onnxruntime-gpu 1.31.1 is built for CUDA 13, the base has CUDA 12.6.3"]
    assert gpu_stack_problems(NGC_BASE, "13.2.0", "10.16.0.72", wheels, True) == []


def test_a_base_without_cuda_or_tensorrt_is_named(tmp_path: Path) -> None:
    wheels = [_wheel(tmp_path, "cuda-bindings", "13.2.0", [])]
    assert "has no CUDA" in gpu_stack_problems("mlorch/base:bookworm", None, None, wheels, True)[0]
    problems = gpu_stack_problems("some/cuda:13", "13.0.2", None, wheels, True)
    assert problems == ["base image some/cuda:13 has no TensorRT Python package"]


def _pinned_metadata(requirement: str, python: str) -> dict[str, object]:
    """The wheel metadata pip resolves for `requirement` on the base's platform (PyPI; the
    metadata only, PEP 658, so the large GPU wheels are not downloaded)."""
    report = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
            "--only-binary=:all:", "--python-version", python, "--platform",
            "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--target",
            "/nonexistent-mlorch-target", "--quiet", "--report", "-", requirement,
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    data = json.loads(report.stdout)
    return dict(data["install"][0]["metadata"])


@pytest.mark.network
@pytest.mark.parametrize("stack", GPU_STACKS, ids=lambda stack: stack.name)
def test_every_pinned_gpu_wheel_matches_its_bases_cuda_major(stack: GpuStack) -> None:
    """Both stacks: the default CUDA 13 one and the CUDA 12 one for older drivers."""
    checked = []
    base = stack.facts
    for backend in BACKENDS.values():
        for requirement in backend.requirements_for(Device.CUDA, stack.base):
            meta = _pinned_metadata(requirement, base.python)
            major = cuda_major_of(
                str(meta["name"]), str(meta["version"]), list(meta.get("requires_dist") or [])
            )
            if major is not None:
                assert major == base.cuda_major, (
                    f"{backend.name}: {requirement} is CUDA {major}, {base.ref} is CUDA {base.cuda}"
                )
                checked.append(requirement)
    assert any(req.startswith("onnxruntime-gpu") for req in checked), checked
    assert any(req.startswith("cuda-bindings") for req in checked), checked


def _compile(source: str, output: Path, *args: str) -> None:
    c_file = output.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(output), str(c_file), *args],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.mark.subprocess
@pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("ldd"), reason="needs gcc, ldd")
def test_libcheck_fails_on_an_unresolved_library_but_not_on_driver_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    _compile(
        "int bar(void) { return 1; }", libs / "libmlorchbar.so.13", "-Wl,-soname,libmlorchbar.so.13"
    )
    _compile("int cuInit(int f) { return f; }", libs / "libcuda.so.1", "-Wl,-soname,libcuda.so.1")
    package = tmp_path / "site" / "fakeprovider"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    _compile(
        "int bar(void); int cuInit(int); int foo(void) { return bar() + cuInit(0); }",
        package / "libprovider.so",
        f"-L{libs}", "-l:libmlorchbar.so.13", "-l:libcuda.so.1",
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    # Neither library resolves: the provider's own dependency is reported, the driver's is not.
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    problems = libcheck.check(["fakeprovider:*.so"])
    assert len(problems) == 1
    assert "libmlorchbar.so.13" in problems[0]
    assert "libcuda" not in problems[0]

    monkeypatch.setenv("LD_LIBRARY_PATH", str(libs))  # the base ships it: the image builds
    assert libcheck.check(["fakeprovider:*.so"]) == []
    assert libcheck.main(["fakeprovider:*.so"]) == 0
    assert libcheck.check(["not_a_package_mlorch:*.so"]) == [
        "not_a_package_mlorch: package not installed in the image"
    ]
