"""Real binding wheels for API conformance tests: download, unpack, make importable, describe.

TensorRT's Python bindings (`tensorrt-cu13-bindings`) are a real ~1.3 MB wheel whose
`tensorrt_bindings/tensorrt.so` links against libnvinfer/libnvinfer_plugin/libnvonnxparser,
which are not installable here. The extension only needs a handful of their symbols to load
(factory functions it calls later, never at import), so for introspection we build do-nothing
shared libraries with those sonames and symbols (gcc) and point LD_LIBRARY_PATH at them: the REAL
binding module then imports and its classes, methods, properties and enums can be described.
Nothing of TensorRT is ever called. cuda-bindings imports as is (without a GPU its calls return
cudaErrorInsufficientDriver).

Everything is cached per (wheel, version, interpreter, dump script) under the test cache, built
under a lock, with the description written last.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.locks import atomic_write_text, exclusive

DUMP_SCRIPT = Path(__file__).with_name("api_dump.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOWNLOAD_TIMEOUT_S = 600


class WheelUnavailable(RuntimeError):
    """The wheel could not be downloaded or made importable on this machine."""


@dataclass(frozen=True)
class Binding:
    dist: str  # the PyPI distribution
    version: str
    module: str  # what to import and describe
    extra: tuple[str, ...] = ()  # further pinned requirements the import needs
    stub_libraries: bool = False  # build stand-in sonames for the native libraries it links

    @property
    def folder_name(self) -> str:
        dump = hashlib.sha256(DUMP_SCRIPT.read_bytes()).hexdigest()[:12]
        tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        return f"{self.dist}-{self.version}-{tag}-{dump}"


def tensorrt_bindings(version: str, cuda_major: int = 13) -> Binding:
    return Binding(
        f"tensorrt-cu{cuda_major}-bindings", version, "tensorrt_bindings", stub_libraries=True
    )


def cuda_bindings(version: str, pathfinder: str) -> Binding:
    return Binding(
        "cuda-bindings", version, "cuda.bindings.runtime", extra=(f"cuda-pathfinder=={pathfinder}",)
    )


@dataclass(frozen=True)
class Prepared:
    binding: Binding
    site: Path
    stubs: Path

    def env(self, *, with_project: bool = False) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.site)] + ([str(PROJECT_ROOT)] if with_project else [])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["LD_LIBRARY_PATH"] = str(self.stubs)
        return env

    def api(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.site.parent / "api.json").read_text())
        return loaded

    def run(self, code: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `code` with this binding (and the project) importable, in a fresh interpreter."""
        return subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(with_project=True),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def prepare(binding: Binding, cache: Path) -> Prepared:
    """Download, unpack, stub and describe `binding` once; later calls reuse the cache."""
    folder = cache / "api-wheels" / binding.folder_name
    prepared = Prepared(binding, folder / "site", folder / "stubs")
    if (folder / "api.json").is_file():
        return prepared
    with exclusive(folder.parent / f"{folder.name}.lock", timeout_s=DOWNLOAD_TIMEOUT_S * 2):
        if (folder / "api.json").is_file():
            return prepared
        shutil.rmtree(folder, ignore_errors=True)
        wheels = _download(binding, folder / "wheels")
        prepared.site.mkdir(parents=True)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(prepared.site)
        prepared.stubs.mkdir()
        if binding.stub_libraries:
            for extension in prepared.site.rglob("*.so"):
                build_link_stubs(extension, prepared.stubs)
        out = folder / "api.json.tmp"
        result = subprocess.run(
            [sys.executable, str(DUMP_SCRIPT), binding.module, str(out), binding.dist],
            env=prepared.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise WheelUnavailable(
                f"{binding.dist}=={binding.version} does not import:\n{result.stderr[-3000:]}"
            )
        atomic_write_text(folder / "api.json", out.read_text())
        out.unlink()
    return prepared


def _download(binding: Binding, dest: Path) -> list[Path]:
    requirements = [f"{binding.dist}=={binding.version}", *binding.extra]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        *requirements,
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise WheelUnavailable(f"pip download {' '.join(requirements)} timed out") from error
    if result.returncode != 0:
        raise WheelUnavailable(
            f"pip download {' '.join(requirements)} failed:\n{result.stderr[-2000:]}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != len(requirements):
        raise WheelUnavailable(f"expected {len(requirements)} wheels, got {wheels}")
    return wheels


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise WheelUnavailable(f"{name} is needed to build the link stubs and is not installed")
    return path


def _needed_libraries(extension: Path) -> list[str]:
    output = subprocess.run(
        [_tool("readelf"), "-d", str(extension)], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.split("[", 1)[1].split("]", 1)[0] for line in output.splitlines() if "(NEEDED)" in line
    ]


def _undefined_symbols(extension: Path) -> list[str]:
    output = subprocess.run(
        [_tool("nm"), "-D", "--undefined-only", str(extension)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    symbols = []
    for line in output.split("\n"):
        parts = line.split()
        # "U name" is a strong reference; "name@VERSION" comes from a versioned system library.
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]:
            symbols.append(parts[1])
    return symbols


def build_link_stubs(extension: Path, out: Path) -> list[str]:
    """Build empty stand-ins for the libraries `extension` needs that cannot be loaded here.

    Every stand-in defines every strong undefined symbol this process cannot resolve (functions
    returning 0); they exist only so the dynamic loader accepts the extension. Returns the sonames.
    """
    missing_libraries = []
    for soname in _needed_libraries(extension):
        if (out / soname).exists():
            continue
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing_libraries.append(soname)
    if not missing_libraries:
        return []
    process = ctypes.CDLL(None)
    symbols = [s for s in _undefined_symbols(extension) if not hasattr(process, s)]
    source = out / f"{extension.stem}-stub.c"
    source.write_text("".join(f"void *{symbol}(void) {{ return 0; }}\n" for symbol in symbols))
    for soname in missing_libraries:
        subprocess.run(
            [
                _tool("gcc"),
                "-shared",
                "-fPIC",
                "-o",
                str(out / soname),
                f"-Wl,-soname,{soname}",
                str(source),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return missing_libraries
