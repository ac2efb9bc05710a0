"""Wheelhouses: the image's Python packages, downloaded on the host for the image's platform.

Containers never reach a package index (air-gapped labs; intercepting proxies). mlorch downloads
binary wheels for the base image's Python version and glibc on the host, or takes a wheelhouse
folder the user brought (`--wheelhouse DIR`) and checks offline that it resolves.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from backends.common.locks import atomic_write_text
from orchestrator.errors import WheelhouseError

PIP_REQUIREMENT = "pip==26.3"
DOWNLOAD_TIMEOUT_S = 1800
COMPLETE = "mlorch-wheelhouse.json"


@dataclass(frozen=True)
class Platform:
    """What a base image runs: CPython version and glibc, probed from the image."""

    python: str  # "3.11"
    glibc: str  # "2.36"
    machine: str = "x86_64"

    def pip_platforms(self) -> list[str]:
        """manylinux tags this glibc accepts, newest first (pip matches each exactly)."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        if major != 2:
            raise WheelhouseError(f"unsupported glibc {self.glibc}")
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}", f"manylinux1_{self.machine}"]


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    requirements: tuple[str, ...]
    pip_wheel: str

    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))


def _pip_args(platform: Platform) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", platform.python, "--implementation", "cp"]
    for tag in platform.pip_platforms():
        args += ["--platform", tag]
    return args


def wheelhouse_key(requirements: tuple[str, ...], platform: Platform) -> str:
    payload = json.dumps(
        {"req": sorted((*requirements, PIP_REQUIREMENT)), "platform": platform.__dict__},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _pip_download(args: list[str], what: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WheelhouseError(f"{what}: pip download timed out") from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        detail = lines[0] if lines else (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise WheelhouseError(
            f"{what}: {detail}",
            hint="online: check the package index is reachable; offline: bring a wheelhouse made "
            "with `mlorch wheelhouse` and pass --wheelhouse DIR",
        )


def _pip_wheel_name(folder: Path) -> str:
    found = sorted(folder.glob("pip-*.whl"))
    if not found:
        raise WheelhouseError(
            f"no pip wheel in {folder}", hint=f"add {PIP_REQUIREMENT} to the wheelhouse"
        )
    return found[-1].name


def ensure_wheelhouse(
    requirements: tuple[str, ...], platform: Platform, cache_root: Path, given: Path | None
) -> Wheelhouse:
    """Return a wheelhouse holding `requirements` (+ pip) for `platform`.

    With `given`, resolve offline against that folder only; otherwise download into the cache
    once per (requirements, platform); the caller holds that key's lock (`wheelhouse_key`).
    """
    reqs = (*requirements, PIP_REQUIREMENT)
    if given is not None:
        folder = given.resolve()
        if not folder.is_dir():
            raise WheelhouseError(f"wheelhouse folder not found: {given}")
        _pip_download(
            [
                "--no-index",
                "--find-links",
                str(folder),
                "-d",
                str(folder),
                *_pip_args(platform),
                *reqs,
            ],
            f"wheelhouse {folder} does not satisfy the image's requirements",
        )
        return Wheelhouse(folder, requirements, _pip_wheel_name(folder))

    folder = cache_root / "wheelhouse" / wheelhouse_key(requirements, platform)
    marker = folder / COMPLETE
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _pip_download(
            ["-d", str(folder), *_pip_args(platform), *reqs],
            f"downloading wheels for Python {platform.python}",
        )
        record = {"requirements": list(reqs), "platform": platform.__dict__}
        atomic_write_text(marker, json.dumps(record, indent=2) + "\n")
    return Wheelhouse(folder, requirements, _pip_wheel_name(folder))


def export_wheelhouse(requirements: tuple[str, ...], platform: Platform, dest: Path) -> Wheelhouse:
    """Download a wheelhouse into `dest` to carry to an air-gapped host."""
    dest.mkdir(parents=True, exist_ok=True)
    reqs = (*requirements, PIP_REQUIREMENT)
    _pip_download(["-d", str(dest), *_pip_args(platform), *reqs], f"downloading wheels into {dest}")
    return Wheelhouse(dest.resolve(), requirements, _pip_wheel_name(dest))
