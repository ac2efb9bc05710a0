"""The native LoadGen issue path for tests on the host: the pinned mlcommons-loadgen sdist,
downloaded once from the package index, built once per (sdist, shim, flags) into the test cache.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from backends.common.native import build as native_build
from contract.locks import exclusive
from orchestrator.images.wheelhouse import download_sources, sdist_name


def loadgen_sdist(cache: Path) -> Path:
    """The sdist of the installed mlcommons-loadgen, fetched as a dell-trt wheelhouse fetches
    it (once; the test cache keeps it)."""
    requirement = f"mlcommons-loadgen=={metadata.version('mlcommons-loadgen')}"
    folder = cache / "native-src"
    folder.mkdir(parents=True, exist_ok=True)
    download_sources((requirement,), folder)
    return folder / sdist_name(requirement)


def native_library(cache: Path) -> Path:
    """A folder holding a built libmlorch_loadgen.so (and its build.json)."""
    with exclusive(cache / "locks" / "native-build.lock"):
        sdist = loadgen_sdist(cache)
        out = cache / "native" / native_build.source_digest(sdist)[:16]
        record = out / native_build.RECORD
        if record.is_file() and json.loads(record.read_text()).get("built"):
            return out
        status = native_build.main(["--sdist", str(sdist), "--out", str(out), "--match-installed"])
        if status != 0:
            raise RuntimeError(f"native build failed ({status}): {record.read_text()}")
        return out
