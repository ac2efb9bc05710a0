"""The native LoadGen issue path for tests on the host: the pinned mlcommons-loadgen sdist,
downloaded once from the package index, built once per (sdist, shim, flags) into the test cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from backends.common.native import build as native_build
from contract.locks import exclusive


def loadgen_sdist(cache: Path) -> Path:
    version = metadata.version("mlcommons-loadgen")
    folder = cache / "native-src"
    found = sorted(folder.glob(f"mlcommons_loadgen-{version}.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
         "--no-binary", "mlcommons-loadgen", "-d", str(folder),
         f"mlcommons-loadgen=={version}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return native_build.find_sdist(folder, version)


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
