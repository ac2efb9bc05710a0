"""Real faults in the middle of a run: a disk that fills while a test runs.

The run writes to a small tmpfs of its own (root mounts it), which a filler fills once the SUT
container is running: what the container and the host write next meets ENOSPC.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.images.catalog import LOCAL_BASE
from tests.engine.conftest import mlorch_background
from tests.support.private_engine import PrivateEngine, running_private_engine

pytestmark = pytest.mark.engine

WAIT_S = 600


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs, unmounted afterwards."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        if os.environ.get("MLORCH_REQUIRE_ENGINE") == "1":
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], timeout=30, check=False)


def _fill(folder: Path) -> None:
    """Write until the filesystem is full."""
    chunk = bytes(1 << 20)
    with (folder / "filler").open("wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
                handle.flush()
        # what the buffer held: write it out byte by byte until nothing more fits
        with contextlib.suppress(OSError):
            while True:
                os.write(handle.fileno(), b"\0" * 512)


def _fault(process: subprocess.Popen[str], fault: Callable[[], None]) -> tuple[int, str, str]:
    """Do `fault` to a running mlorch and wait for its end: (exit code, stderr, its error line,
    which must be its only one)."""
    try:
        fault()
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return process.returncode, stderr, errors[0]


def _wait_for_running_sut(
    engine: DockerEngine, process: subprocess.Popen[str], settle_s: float = 2.0
) -> None:
    """Until this mlorch's SUT container runs, then `settle_s` more (LoadGen under way)."""
    deadline = time.monotonic() + WAIT_S
    mine = {"mlorch.role": "sut", "mlorch.owner-pid": str(process.pid)}
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if any(c.status == "running" for c in engine.labelled_containers(mine)):
            time.sleep(settle_s)
            return
        time.sleep(0.5)
    raise AssertionError("no SUT container started")


def test_a_disk_that_fills_during_a_test_is_exit_9_and_the_manifest_survives(
    engine: DockerEngine, small_disk: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ss.toml"
    config.write_text(
        '[run]\nscenarios = ["SingleStream"]\nmodes = ["PerformanceOnly"]\n'
        "[run.quick]\nmin_duration_ms = 8000\nsingle_stream_min_query_count = 64\n"
    )
    runs = small_disk / "runs"
    process = mlorch_background(
        "up", "reference", "--device", "cpu", "--quick", "--config", str(config),
        "--runs-dir", str(runs), cwd=tmp_path, env={"MLORCH_MIN_FREE_GIB": "0"},
    )  # fmt: skip

    def fill() -> None:
        _wait_for_running_sut(engine, process)
        _fill(small_disk)
        with pytest.raises(OSError, match="No space left") as full:
            (small_disk / "probe").write_bytes(bytes(4096))
        assert full.value.errno == errno.ENOSPC

    code, stderr, error = _fault(process, fill)
    assert code == 9, stderr[-3000:]
    assert "no space left on device" in error
    assert str(small_disk) in error
    assert " free" in error
    assert "Traceback" not in error
    [run_dir] = [p for p in runs.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"  # its final state, written on the full disk
    assert "no space left on device" in manifest["error"]
    left = engine.labelled_containers({"mlorch.owner-pid": str(process.pid)})
    assert left == []


def _manifest_of(runs: Path) -> dict[str, Any]:
    [path] = list(runs.glob("*/manifest.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_sigkill_mid_run_then_resume_finishes_it_keeping_what_was_done(
    engine: DockerEngine, tmp_path: Path
) -> None:
    """mlorch killed (SIGKILL: no clean-up at all) while its second test runs; `up --resume`
    removes the container it left, keeps the first test as it was, runs the second, and the run
    ends complete with the structure of an uninterrupted one."""
    args = ("up", "reference", "--device", "cpu", "--quick", "-s", "SingleStream", "-s",
            "Offline")  # fmt: skip
    process = mlorch_background(*args, cwd=tmp_path)
    runs = tmp_path / "runs"
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            done = list(runs.glob("*/manifest.json")) and _manifest_of(runs).get("tests")
            if done:
                break
            time.sleep(0.2)
        # the second test (an accuracy run, whose length follows the host's speed): at once
        _wait_for_running_sut(engine, process, settle_s=0)
        process.kill()
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)
    killed = _manifest_of(runs)
    run_id = str(killed["run_id"])
    [first] = killed["tests"]
    kept_files = dict(first["files"])
    left = engine.labelled_containers({"mlorch.owner-pid": str(process.pid)})
    assert left, "SIGKILL left the SUT container behind (what --resume must clean up)"

    listing = subprocess.run(
        [*_mlorch(), "runs", "--json"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    [row] = json.loads(listing.stdout)
    assert (row["status"], row["resumable"]) == ("interrupted", True)

    manifest = _resumed_to_completion(tmp_path, run_id, kept=1)
    tests = manifest["tests"]
    assert [t["scenario"] for t in tests] == ["SingleStream"] * 2 + ["Offline"] * 2
    assert all(t["status"] == "ok" for t in tests)
    assert tests[0]["files"] == kept_files
    [attempt] = manifest["attempts"]
    assert attempt["status"] == "interrupted"
    assert engine.labelled_containers({"mlorch.owner-pid": str(process.pid)}) == []
    plain = tmp_path / "uninterrupted"
    plain.mkdir()
    whole = subprocess.run(
        [*_mlorch(), *args], cwd=plain, capture_output=True, text=True, timeout=WAIT_S,
        check=False,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    uninterrupted = _manifest_of(plain / "runs")
    assert _structure(manifest) == _structure(uninterrupted)
    _read_as_one_run(tmp_path, runs / run_id, plain / "runs" / uninterrupted["run_id"])
    again = subprocess.run(
        [*_mlorch(), "up", "--resume", run_id], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "it is complete" in again.stderr


def _resumed_to_completion(work: Path, run_id: str, kept: int) -> dict[str, Any]:
    """`up --resume RUN` in `work`: it succeeds, keeps `kept` finished tests, and the run is
    complete; its manifest."""
    resumed = subprocess.run(
        [*_mlorch(), "up", "--resume", run_id], cwd=work, capture_output=True, text=True,
        timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"{kept} finished tests kept" in resumed.stderr
    manifest = _manifest_of(work / "runs")
    assert manifest["status"] == "complete"
    return manifest


def _structure(manifest: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        (t["scenario"], t["mode"], t["status"], t["result"]["valid"]) for t in manifest["tests"]
    ]


def _read_as_one_run(work: Path, run_dir: Path, other: Path) -> None:
    """The report (beside an uninterrupted run) and the submission tree take a resumed run as
    one run."""
    from tests.support.submission_fixtures import CI_HOST_FACTS

    facts = work / "facts.toml"
    facts.write_text(CI_HOST_FACTS)
    for args in (
        ("compare", str(run_dir), str(other), "--output", str(work / "report")),
        ("submit", str(run_dir), "--output", str(work / "tree"), "--submitter", "Acme",
         "--system-facts", str(facts)),
    ):  # fmt: skip
        done = subprocess.run(
            [*_mlorch(), *args], cwd=work, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, (args[0], done.stderr[-3000:])
    page = (work / "report" / "report.html").read_text()
    assert "SingleStream" in page
    assert "Offline" in page
    logs = sorted((work / "tree").rglob("performance/run_1/mlperf_log_detail.txt"))
    assert {"SingleStream", "Offline"} <= {path.parts[-4] for path in logs}


def _mlorch() -> list[str]:
    import sys

    return [sys.executable, "-m", "orchestrator"]


def test_the_engine_stopping_mid_test_is_exit_3_and_resume_finishes_after_restart(
    engine: DockerEngine, quick_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    """dockerd stopped for real while a test runs — a private engine in its own network
    namespace, so nothing else notices — is exit 3 naming the test, the run `interrupted` with
    the reason; after the engine is back, `up --resume` finishes the run and nothing is left."""
    first_result, first_runs = quick_run
    assert first_result.returncode == 0
    image = _manifest_of(first_runs)["image"]["tag"]
    with running_private_engine() as private:
        private.load_images(LOCAL_BASE, str(image))
        env = private.env
        args = ("up", "reference", "--device", "cpu", "--quick", "-s", "SingleStream", "-s",
                "Offline", "-m", "PerformanceOnly")  # fmt: skip
        process = mlorch_background(*args, cwd=tmp_path, env=env)

        def stop() -> None:
            _wait_for_second_test(private, process, tmp_path / "runs")
            private.stop()

        code, stderr, error = _fault(process, stop)
        assert code == 3, stderr[-3000:]
        assert "the Docker engine stopped" in error
        assert "Offline PerformanceOnly test" in error
        stopped = _manifest_of(tmp_path / "runs")
        assert stopped["status"] == "interrupted"
        assert "Docker engine stopped" in str(stopped["error"])
        private.start()
        resumed = subprocess.run(
            [*_mlorch(), "up", "--resume", str(stopped["run_id"])], cwd=tmp_path,
            capture_output=True, text=True, timeout=WAIT_S, check=False,
            env={**os.environ, "COLUMNS": "200", **env},
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        manifest = _manifest_of(tmp_path / "runs")
        assert manifest["status"] == "complete"
        assert [t["scenario"] for t in manifest["tests"]] == ["SingleStream", "Offline"]
        assert [a["status"] for a in manifest["attempts"]] == ["interrupted"]
        assert private.containers(all=True) == []


def _wait_for_second_test(
    private: PrivateEngine, process: subprocess.Popen[str], runs: Path
) -> None:
    """Until the first test is recorded and the second one's SUT runs in the private engine."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if list(runs.glob("*/manifest.json")) and _manifest_of(runs).get("tests"):
            break
        time.sleep(0.2)
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if any(c.status == "running" for c in private.containers(all=True)):
            time.sleep(0.5)  # Offline lasts its minimum duration (1.5 s) whatever the speed
            return
        time.sleep(0.3)
    raise AssertionError("the second test's SUT never ran")


PHASE_PLAN = ("up", "reference", "--device", "cpu", "--quick", "-s", "SingleStream", "-s",
              "Offline", "-m", "PerformanceOnly")  # fmt: skip


def _killed_at(
    engine: DockerEngine, process: subprocess.Popen[str], runs: Path, phase: str
) -> None:
    """SIGKILL `process` in `phase`: "preparation" (the run folder exists, no test started),
    "first test" / "second test" (that test's SUT container runs); then reap it."""
    deadline = time.monotonic() + WAIT_S
    try:
        if phase == "preparation":
            while not list(runs.glob("*/manifest.json")) and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.01)  # the run folder exists well before its first container
            mine = {"mlorch.role": "sut", "mlorch.owner-pid": str(process.pid)}
            assert engine.labelled_containers(mine) == [], "a test had started already"
        else:
            recorded = 0 if phase == "first test" else 1
            while time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                done = list(runs.glob("*/manifest.json")) and _manifest_of(runs).get("tests")
                if len(done or ()) == recorded:
                    break
                time.sleep(0.1)
            _wait_for_running_sut(engine, process, settle_s=0)
        process.kill()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def test_sigkill_in_each_phase_and_resume_each_time_completes_the_run(
    engine: DockerEngine, tmp_path: Path
) -> None:
    """One run killed (SIGKILL: no clean-up at all) in preparation, in its first test and in its
    second, each time resumed by `up --resume` (which is killed in turn): the last resume
    completes it, with every attempt on record and no container of any killed mlorch left."""
    runs = tmp_path / "runs"
    process = mlorch_background(*PHASE_PLAN, cwd=tmp_path)
    pids = [process.pid]
    _killed_at(engine, process, runs, "preparation")
    run_id = str(_manifest_of(runs)["run_id"])
    for phase in ("first test", "second test"):
        listing = subprocess.run(
            [*_mlorch(), "runs", "--json"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        [row] = json.loads(listing.stdout)
        assert row["resumable"] is True, (phase, row)
        process = mlorch_background("up", "--resume", run_id, cwd=tmp_path)
        pids.append(process.pid)
        _killed_at(engine, process, runs, phase)
    manifest = _resumed_to_completion(tmp_path, run_id, kept=1)
    tests = manifest["tests"]
    assert [(t["scenario"], t["mode"], t["status"]) for t in tests] == [
        ("SingleStream", "PerformanceOnly", "ok"),
        ("Offline", "PerformanceOnly", "ok"),
    ]
    assert [a["status"] for a in manifest["attempts"]] == ["interrupted"] * 3
    for pid in pids:
        assert engine.labelled_containers({"mlorch.owner-pid": str(pid)}) == []
