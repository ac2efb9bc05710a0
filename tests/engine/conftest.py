"""Real-engine tests: a running dockerd and the locally bootstrapped base image.

They skip when no engine answers, unless MLORCH_REQUIRE_ENGINE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.errors import EngineUnavailable
from orchestrator.images.catalog import LOCAL_BASE


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    required = os.environ.get("MLORCH_REQUIRE_ENGINE") == "1"
    try:
        engine = DockerEngine.connect(timeout=10)
    except EngineUnavailable as exc:
        if required:
            pytest.fail(f"MLORCH_REQUIRE_ENGINE=1 but {exc.message}")
        pytest.skip(f"no Docker engine: {exc.message}")
    if engine.image_id(LOCAL_BASE) is None:
        message = f"{LOCAL_BASE} missing: run docker/bootstrap-base-image.sh"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return engine


def mlorch(
    *args: str, cwd: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def _as_from_a_terminal() -> None:
    """A shell without job control starts background jobs with SIGINT ignored, `nohup` ignores
    SIGHUP, and children inherit both: the tests send Ctrl-C and hang-ups to an mlorch started as
    from a terminal, whatever started the suite."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def mlorch_background(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        preexec_fn=_as_from_a_terminal,
    )


@pytest.fixture(scope="session")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory, engine: DockerEngine
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `mlorch up reference --device cpu --quick` (every scenario and mode) for the session:
    test_up checks the run, test_submit_engine builds a tree from it. Read it, never change it."""
    work = tmp_path_factory.mktemp("up")
    # COLUMNS=80: what a pipe (CI log) or a small terminal gets
    result = mlorch(
        "up", "reference", "--device", "cpu", "--quick", cwd=work, env={"COLUMNS": "80"}
    )
    return result, work / "runs"


def assert_sized_and_valid(run_dir: Path, manifest: dict[str, Any], backend: str) -> None:
    """A default quick run sizes every scenario from a measurement (this run's, or one cached
    or tuned for the same host, image and settings), and SingleStream, MultiStream and Offline
    come out VALID whatever the host's speed; a Server run that cannot be VALID says why in
    words."""
    from contract.sizing import loadgen_value
    from orchestrator.results.rules import parse_user_conf

    for scenario, entry in manifest["sizing"].items():
        # measured by this run, or earlier for the same key: by a run, or by `mlorch tune`
        sources = ("measured now", "cached measurement", "tuned", "measured by its own run")
        assert entry["source"] in sources, entry
        assert entry["measurement"]["samples_per_second"] > 0
        conf = parse_user_conf((run_dir / backend / scenario / "user.conf").read_text())
        sized = {e.key: float(e.value) for e in conf if e.key in ("target_qps", "target_latency")}
        assert list(sized.values()) == [loadgen_value(scenario, entry["value"], quick=True)]
    for test in manifest["tests"]:
        if test["mode"] != "PerformanceOnly":
            continue
        if test["scenario"] != "Server":  # Server's target is `mlorch tune`'s to find
            assert test["result"]["valid"] is True, (test["scenario"], test["result"])
        elif test.get("sizing_note"):
            assert " ms " in test["sizing_note"]
