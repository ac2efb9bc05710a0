"""Two `mlorch up` at once on cold caches, and a `mlorch down` while they run: both finish.

The caches (wheelhouse, probe, build, pip freeze, synthetic assets, preprocessed data) are filled
once under their per-key locks while the other run waits; `down` leaves live runs alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine

pytestmark = pytest.mark.engine

WAIT_S = 1500
LONG_ROLES = ("assets", "prepare", "sut")  # containers that run long enough to be seen


def _start(folder: Path, cache: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    folder.mkdir()
    log = folder / "stderr.txt"
    with log.open("w") as sink:  # a file, not a pipe: nobody reads while both run
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "up", "reference", "--device", "cpu",
             "--quick", "-s", "Offline", *extra],
            cwd=folder, text=True, stdout=subprocess.DEVNULL, stderr=sink,
            env={**os.environ, "COLUMNS": "200", "MLORCH_CACHE": str(cache)},
        )  # fmt: skip
    return process, log


def _owned(engine: DockerEngine, pids: set[int]) -> list[Any]:
    return [
        c
        for c in engine.labelled_containers()
        if c.labels.get("mlorch.owner-pid") in {str(pid) for pid in pids}
    ]


def test_two_cold_runs_and_a_down_between_them(engine: DockerEngine, tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # cold: every cache is filled by these two runs
    # the first run also limits each container's memory
    runs = [_start(tmp_path / "first", cache, "--memory", "2g"), _start(tmp_path / "second", cache)]
    pids = {process.pid for process, _ in runs}
    deadline = time.monotonic() + WAIT_S
    seen: list[Any] = []
    while not seen:
        assert time.monotonic() < deadline, "no long-running container of theirs started"
        for process, log in runs:
            assert process.poll() is None, log.read_text()[-3000:]
        seen = [
            c
            for c in _owned(engine, pids)
            if c.status == "running" and c.labels.get("mlorch.role") in LONG_ROLES
        ]
        time.sleep(0.5)
    for container in seen:
        limits = container.attrs["HostConfig"]
        assert limits["PidsLimit"] == 4096
        first = container.labels["mlorch.owner-pid"] == str(runs[0][0].pid)
        assert limits["Memory"] == (2 << 30 if first else 0)

    down = subprocess.run(
        [sys.executable, "-m", "orchestrator", "down"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    for container in seen:
        assert f"kept {container.name}: its mlorch (pid" in down.stderr
        assert f"removed {container.name}" not in down.stderr

    stderr = []
    for process, log in runs:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
        stderr.append(log.read_text())
        assert process.returncode == 0, stderr[-1][-4000:]
    assert any("waiting for another mlorch to finish" in text for text in stderr)
    for name in ("first", "second"):
        (manifest_file,) = (tmp_path / name / "runs").glob("*/manifest.json")
        manifest = json.loads(manifest_file.read_text())
        assert manifest["status"] == "complete"
        assert [t["status"] for t in manifest["tests"]] == ["ok", "ok"]
    assert _owned(engine, pids) == []
    # every cache entry was made by one run and reused by the other
    both = "\n".join(stderr)
    assert both.count("generating synthetic assets (64 images") == 1
    assert both.count("preprocessing 64 images (fp32, in the SUT image)") == 1
    assert both.count("built mlorch/reference-cpu:") <= 1
