"""Wheelhouses: the image's Python packages, downloaded on the host for the image's platform.

Containers never reach a package index (air-gapped labs; intercepting proxies). mlorch downloads
binary wheels for the base image's Python version and glibc on the host, or takes a wheelhouse
folder the user brought (`--wheelhouse DIR`) and checks offline that it resolves.

Every wheelhouse mlorch makes carries a record (`mlorch-wheelhouse.json`) of the platform it was
made for, so a folder made for another Python is refused by name, with the command that makes the
right one, before pip reports "no matching distribution".
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.locks import atomic_write_text
from orchestrator import __version__
from orchestrator.errors import ConfigError, WheelhouseError

PIP_REQUIREMENT = "pip==26.3"
DOWNLOAD_TIMEOUT_S = 1800
# The record of what a wheelhouse was made for; written last, so it also marks a complete download.
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

    def describe(self) -> str:
        return f"Python {self.python} / glibc {self.glibc} ({self.machine})"

    def serves(self, target: Platform) -> bool:
        """Whether wheels chosen for this platform install on `target`: the same CPython and
        machine, and a glibc no newer than the target's (manylinux wheels need at least theirs)."""
        return (
            self.python == target.python
            and self.machine == target.machine
            and _glibc_key(self.glibc) <= _glibc_key(target.glibc)
        )


def _glibc_key(glibc: str) -> tuple[int, ...]:
    return tuple(int(part) for part in glibc.split("."))


def platform_from_flags(python: str, glibc: str) -> Platform:
    """A target platform given by hand (`--python 3.12 --glibc 2.39`), validated."""
    if not re.fullmatch(r"3\.\d+", python):
        raise ConfigError(f"--python {python}: expected a CPython version like 3.12", key="python")
    if not re.fullmatch(r"2\.\d+", glibc):
        raise ConfigError(f"--glibc {glibc}: expected a glibc version like 2.39", key="glibc")
    return Platform(python, glibc)


@dataclass(frozen=True)
class WheelhouseTarget:
    """The image a given wheelhouse must fit; it names the command that makes one that does."""

    backend: str
    device: str
    base_image: str

    def remake_command(self, folder: Path) -> str:
        return (
            f"mlorch wheelhouse {self.backend} --device {self.device} "
            f"--base-image {shlex.quote(self.base_image)} -o {shlex.quote(str(folder))}"
        )


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    requirements: tuple[str, ...]
    pip_wheel: str

    sources: tuple[str, ...] = ()  # sdists the image builds from (backends' native code)

    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))

    def sdists(self) -> list[Path]:
        """The source archives of `sources`, in their order."""
        return [self.path / sdist_name(requirement) for requirement in self.sources]


def sdist_name(requirement: str) -> str:
    """The file an sdist of a pinned `name==version` has (PEP 625: normalised, underscores)."""
    name, _, version = requirement.partition("==")
    if not version:
        raise ValueError(f"a source must be pinned (name==version), got {requirement!r}")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}.tar.gz"


def download_sources(sources: tuple[str, ...], folder: Path) -> None:
    """Fetch each pinned source archive (no wheel, no dependencies) into `folder`."""
    for requirement in sources:
        if (folder / sdist_name(requirement)).is_file():
            continue
        name = requirement.partition("==")[0]
        _pip_download(
            ["--no-deps", "--no-binary", name, "-d", str(folder), requirement],
            f"downloading the source of {requirement}",
        )


def read_record(folder: Path) -> dict[str, Any] | None:
    """The wheelhouse record in `folder`, or None when mlorch did not make the folder."""
    path = folder / COMPLETE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        Platform(**record["platform"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WheelhouseError(
            f"unreadable wheelhouse record {path}: {exc}",
            hint="remake the folder with `mlorch wheelhouse`, or delete the record to let pip "
            "check the wheels alone",
        ) from exc
    return dict(record)


def recorded_platform(folder: Path) -> Platform | None:
    """The platform `folder`'s wheels were made for, when its record says."""
    record = read_record(folder)
    return None if record is None else Platform(**record["platform"])


def write_record(
    folder: Path, requirements: tuple[str, ...], platform: Platform, base_image: str | None
) -> None:
    """Record what `folder` holds (requirements accumulate over exports to the same folder)."""
    previous = read_record(folder) or {}
    record = {
        "platform": platform.__dict__,
        "base_image": base_image or previous.get("base_image"),
        "requirements": sorted({*previous.get("requirements", ()), *requirements}),
        "mlorch_version": __version__,
    }
    atomic_write_text(folder / COMPLETE, json.dumps(record, indent=2) + "\n")


def check_made_for(
    folder: Path, platform: Platform, given_as: Path, target: WheelhouseTarget | None
) -> None:
    """Refuse a wheelhouse whose record names a platform that cannot serve `platform`."""
    made_for = recorded_platform(folder)
    if made_for is None or made_for.serves(platform):
        return
    image = target.base_image if target is not None else "the base image"
    raise WheelhouseError(
        f"wheelhouse {given_as} was made for {made_for.describe()}, "
        f"but {image} runs {platform.describe()}",
        hint=_remake_hint(given_as, target),
    )


def _remake_hint(folder: Path, target: WheelhouseTarget | None) -> str:
    if target is None:
        return "make one for this image: mlorch wheelhouse BACKEND --base-image IMAGE -o DIR"
    return f"make one for this image (on a connected host): {target.remake_command(folder)}"


def _pip_args(platform: Platform) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", platform.python, "--implementation", "cp"]
    for tag in platform.pip_platforms():
        args += ["--platform", tag]
    return args


def wheelhouse_key(
    requirements: tuple[str, ...], platform: Platform, sources: tuple[str, ...] = ()
) -> str:
    data: dict[str, Any] = {
        "req": sorted((*requirements, PIP_REQUIREMENT)),
        "platform": platform.__dict__,
    }
    if sources:  # keys of wheelhouses without sources stay what they were
        data["sources"] = sorted(sources)
    payload = json.dumps(data, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _pip_download(args: list[str], what: str, hint: str | None = None) -> None:
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
            hint=hint
            or "online: check the package index is reachable; offline: bring a wheelhouse made "
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
    requirements: tuple[str, ...],
    platform: Platform,
    cache_root: Path,
    given: Path | None,
    target: WheelhouseTarget | None = None,
    sources: tuple[str, ...] = (),
) -> Wheelhouse:
    """Return a wheelhouse holding `requirements` (+ pip) for `platform`, and the source
    archives of `sources`.

    With `given`, resolve offline against that folder only; otherwise download into the cache
    once per (requirements, platform, sources); the caller holds that key's lock
    (`wheelhouse_key`).
    """
    reqs = (*requirements, PIP_REQUIREMENT)
    if given is not None:
        folder = given.resolve()
        if not folder.is_dir():
            raise WheelhouseError(f"wheelhouse folder not found: {given}")
        check_made_for(folder, platform, given, target)  # by name, before pip's vaguer error
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
            _remake_hint(given, target) if target is not None else None,
        )
        missing = [sdist_name(req) for req in sources if not (folder / sdist_name(req)).is_file()]
        if missing:
            raise WheelhouseError(
                f"wheelhouse {folder} lacks the source archive {', '.join(missing)} "
                "(the image compiles the native LoadGen issue path from it)",
                hint=_remake_hint(given, target) if target is not None else None,
            )
        return Wheelhouse(folder, requirements, _pip_wheel_name(folder), sources)

    folder = cache_root / "wheelhouse" / wheelhouse_key(requirements, platform, sources)
    marker = folder / COMPLETE
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _pip_download(
            ["-d", str(folder), *_pip_args(platform), *reqs],
            f"downloading wheels for Python {platform.python}",
        )
        download_sources(sources, folder)
        record = {
            "requirements": list(reqs),
            "sources": list(sources),
            "platform": platform.__dict__,
        }
        atomic_write_text(marker, json.dumps(record, indent=2) + "\n")
    return Wheelhouse(folder, requirements, _pip_wheel_name(folder), sources)


def export_wheelhouse(
    requirements: tuple[str, ...],
    platform: Platform,
    dest: Path,
    base_image: str | None = None,
    sources: tuple[str, ...] = (),
) -> Wheelhouse:
    """Download a wheelhouse into `dest` to carry to an air-gapped host, and record its platform.

    One folder holds wheels for one platform: exporting another platform into it is refused.
    """
    dest.mkdir(parents=True, exist_ok=True)
    holds = recorded_platform(dest)
    if holds is not None and holds != platform:
        raise WheelhouseError(
            f"{dest} already holds wheels for {holds.describe()}",
            hint=f"choose another -o folder for {platform.describe()}",
        )
    reqs = (*requirements, PIP_REQUIREMENT)
    _pip_download(["-d", str(dest), *_pip_args(platform), *reqs], f"downloading wheels into {dest}")
    download_sources(sources, dest)
    write_record(dest, reqs, platform, base_image)
    return Wheelhouse(dest.resolve(), requirements, _pip_wheel_name(dest), sources)
