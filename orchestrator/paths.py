"""Where mlorch keeps its caches and finds the files it ships (templates, backends)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parent


def source_root() -> Path:
    """The folder holding the `orchestrator` package (a git checkout, or site-packages)."""
    return _REPO_ROOT


def cache_dir() -> Path:
    """Root of mlorch's caches (assets, wheelhouses, preprocessed data): $MLORCH_CACHE."""
    env = os.environ.get("MLORCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlorch"


def docker_dir() -> Path:
    """The Jinja2 templates and image scripts (repo `docker/`, or the copy inside a wheel)."""
    for candidate in (_REPO_ROOT / "docker", _PACKAGE_DIR / "_project" / "docker"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("mlorch's docker/ templates are missing from this installation")


def container_packages() -> tuple[Path, ...]:
    """The packages copied into every image: the host/container contract and the backends."""
    found = []
    for name in ("contract", "backends"):  # located, not imported: the host runs no backend code
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"mlorch's {name} package is missing from this installation")
        found.append(Path(next(iter(spec.submodule_search_locations))).resolve())
    return tuple(found)


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of `path`, or of its nearest existing parent (a folder not
    made yet); OSError when even that cannot be read."""
    import shutil

    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free
