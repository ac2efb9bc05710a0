"""`mlorch up reference --device cpu --quick` end to end: real dockerd, containers and LoadGen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from tests.engine.conftest import assert_sized_and_valid, mlorch, mlorch_background

pytestmark = pytest.mark.engine

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
WAIT_S = 300


def _manifest(runs: Path) -> dict[str, Any]:
    manifests = sorted(runs.glob("*/manifest.json"))
    assert len(manifests) == 1, manifests
    return dict(json.loads(manifests[0].read_text()))


def _mlorch_containers(engine: DockerEngine, run_id: str) -> list[str]:
    """The containers mlorch labelled for run `run_id` (other runs may share this engine)."""
    from orchestrator.engine import labels as L

    return [c.name for c in engine.labelled_containers({L.RUN_ID: run_id})]


def test_quick_run_writes_every_scenario_and_mode(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, runs = quick_run
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = _manifest(runs)
    run_dir = runs / manifest["run_id"]
    for scenario in SCENARIOS:
        assert (run_dir / "reference" / scenario / "user.conf").is_file()
        for mode in ("performance", "accuracy"):
            folder = run_dir / "reference" / scenario / mode
            for name in (*LOG_FILES, "result.json", "container.log"):
                assert (folder / name).stat().st_size > 0, folder / name
        accuracy = (run_dir / "reference" / scenario / "accuracy" / "accuracy.txt").read_text()
        assert accuracy.strip() == "accuracy=100.000%, good=64, total=64"
    assert "SYNTHETIC" in result.stderr  # synthetic assets are announced
    assert "plumbing check" in result.stdout  # and the table says what accuracy means here


def test_plan_comes_before_the_long_steps(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _ = quick_run
    lines = result.stderr.splitlines()

    def first(text: str) -> int:
        return next(n for n, line in enumerate(lines) if text in line)

    plan = first("plan: 8 LoadGen tests on 64 images")
    assert plan < first("base image mlorch/base:bookworm: Python")
    assert plan < first("mlorch/reference-cpu:")  # built, or found up to date
    assert plan < first("preprocess")
    assert plan < first("[1/8]")


def test_results_table_fits_80_columns(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, runs = quick_run
    out = result.stdout.splitlines()
    assert max(len(line) for line in out) <= 80
    assert "…" not in result.stdout
    assert _manifest(runs)["run_id"] in result.stdout
    rows = [line.split("│") for line in out if line.startswith("│")]
    verdicts = [row[5].strip() for row in rows if row[1].strip()]  # not the raw-percentile rows
    raw = [row[3].strip() for row in rows if not row[1].strip()]
    assert raw == ["raw p90 latency (ms)", "raw p99 latency (ms)"]  # beside the estimates
    assert len(verdicts) == 8, result.stdout
    assert verdicts.count("acc") == 4
    assert set(verdicts) <= {"VALID", "INVAL", "acc"}  # no LoadGen errors in a healthy run
    legend = [line for line in out if line.startswith("acc: ") or " acc: " in line]
    assert legend, result.stdout  # the codes are explained under the table


def test_quick_run_sizes_itself_and_is_valid(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, runs = quick_run
    manifest = _manifest(runs)
    assert_sized_and_valid(runs / manifest["run_id"], manifest, "reference")
    assert "sizing: SingleStream" in result.stderr  # the plan says where each value comes from


def test_manifest_records_provenance(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, runs = quick_run
    manifest = _manifest(runs)
    assert manifest["status"] == "complete"
    assert manifest["submission_valid"] is False  # --quick
    assert manifest["loadgen_version"] == "6.0.17"
    image = manifest["image"]
    assert image["id"].startswith("sha256:")
    assert len(image["dockerfile_sha256"]) == 64
    assert image["base_image"] == "mlorch/base:bookworm"
    assert image["base_fallback"] is True
    assert image["base_local_bootstrap"] is True
    assert image["base_image_repo_digests"] == []  # never pulled from a registry
    assert image["base_image_digest"] == image["base_image_id"]
    assert image["base_image_id"].startswith("sha256:")
    assert "mlcommons_loadgen==6.0.17" in image["pip_freeze"]
    assert manifest["host"]["cpu_count"] >= 1
    assert manifest["spec"]["profile"] == "quick"
    assert manifest["spec"]["device"] == "cpu"
    assert len(manifest["tests"]) == 8
    for test in manifest["tests"]:
        assert test["status"] == "ok"
        assert test["harness"]["uid"] != 0  # non-root inside the container
        assert test["harness"]["providers"] == ["CPUExecutionProvider"]


def test_results_belong_to_the_invoking_user(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, runs = quick_run
    owners = {path.stat().st_uid for path in runs.rglob("*")}
    assert owners == {int(os.environ.get("SUDO_UID", os.getuid()))}


def test_no_container_left(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine
) -> None:
    _, runs = quick_run
    assert _mlorch_containers(engine, _manifest(runs)["run_id"]) == []


def test_second_up_builds_nothing(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    first_result, first_runs = quick_run
    assert first_result.returncode == 0
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        "--quick",
        "-s",
        "Offline",
        "-m",
        "PerformanceOnly",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "up to date (nothing to build)" in result.stderr
    assert "preprocessed cache" in result.stderr
    assert "is complete" in result.stderr
    second = _manifest(tmp_path / "runs")
    assert second["image"]["built_now"] is False
    assert second["image"]["id"] == _manifest(first_runs)["image"]["id"]
    # the first run measured Offline for this host, image and settings: nothing is measured now
    assert second["sizing"]["Offline"]["source"] in ("cached measurement", "tuned")
    assert "sizing" not in second["tests"][0]["harness"]


def test_a_stale_cached_rate_is_replaced_and_the_test_run_again(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    """A rate cached while the host was slow (here: a tenth of the real one) makes Offline end
    before its minimum duration; `up` keeps that try, runs the test again sized by the rate it
    ran at, ends VALID, and the next run starts from the new value."""
    from tests.conftest import TEST_CACHE

    _, first_runs = quick_run
    entry = _manifest(first_runs)["sizing"]["Offline"]
    stale = dict(entry["measurement"])
    stale["samples_per_second"] = stale["samples_per_second"] / 10
    cached = TEST_CACHE / "sizing" / f"{entry['cache_key']}.json"
    cached.write_text(json.dumps({"measured_at": "under load", "measurement": stale}))
    args = ("up", "reference", "--device", "cpu", "--quick", "-s", "Offline", "-m",
            "PerformanceOnly", "--no-tuned")  # fmt: skip
    result = mlorch(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "finished before its minimum duration" in result.stderr
    manifest = _manifest(tmp_path / "runs")
    run_dir = tmp_path / "runs" / manifest["run_id"]
    sizing = manifest["sizing"]["Offline"]
    assert sizing["source"] == "measured by its own run"
    assert "(cached measurement)" in sizing["outran"]
    [test] = manifest["tests"]
    assert test["result"]["valid"] is True, test["result"]
    first_try = run_dir / "outrun" / test["dir"]
    assert "min duration" in json.loads((first_try / "result.json").read_text())["unmet"]
    (tmp_path / "again").mkdir()
    again = mlorch(*args, cwd=tmp_path / "again")
    assert again.returncode == 0, again.stderr[-4000:]
    later = _manifest(tmp_path / "again" / "runs")
    assert later["sizing"]["Offline"]["source"] == "cached measurement"
    assert later["sizing"]["Offline"]["value"] == sizing["value"]
    assert later["tests"][0]["result"]["valid"] is True


def _long_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "long.toml"
    cfg.write_text(
        '[run]\nscenarios = ["SingleStream"]\nmodes = ["PerformanceOnly"]\n'
        "[run.quick]\nmin_duration_ms = 120000\nsingle_stream_min_query_count = 100000\n"
    )
    return cfg


def _wait_for_sut(engine: DockerEngine, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        mine = {"mlorch.role": "sut", "mlorch.owner-pid": str(process.pid)}  # not another run's
        running = [c for c in engine.labelled_containers(mine) if c.status == "running"]
        if running:
            time.sleep(3)  # let LoadGen start issuing queries
            return str(running[0].name)
        time.sleep(0.5)
    raise AssertionError("no SUT container started")


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_mlorch_outlives_its_test(engine: DockerEngine) -> Iterator[None]:
    """A test that fails half-way must not leave its mlorch (and its SUT) running for the next."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)
        for container in engine.labelled_containers({"mlorch.owner-pid": str(process.pid)}):
            engine.remove_container(container)


def _start_long_run(engine: DockerEngine, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    """A SingleStream run long enough to be interrupted; returns it and its SUT container."""
    args = [
        "up",
        "reference",
        "--device",
        "cpu",
        "--quick",
        "--config",
        str(_long_config(tmp_path)),
    ]
    process = mlorch_background(*args, cwd=tmp_path)
    _started.append(process)
    return process, _wait_for_sut(engine, process)


def _sut_log(tmp_path: Path, manifest: dict[str, Any]) -> str:
    folder = tmp_path / "runs" / manifest["run_id"] / "reference" / "SingleStream" / "performance"
    return (folder / "container.log").read_text()


def test_sigint_removes_container_and_keeps_partial_logs(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine, tmp_path: Path
) -> None:
    process, _ = _start_long_run(engine, tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    manifest = _manifest(tmp_path / "runs")
    assert _mlorch_containers(engine, manifest["run_id"]) == []
    assert manifest["status"] == "interrupted"
    assert "reference SUT" in _sut_log(tmp_path, manifest)


def test_docker_kill_of_sut_fails_cleanly(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine, tmp_path: Path
) -> None:
    process, name = _start_long_run(engine, tmp_path)
    subprocess.run(["docker", "kill", name], check=True, capture_output=True, timeout=60)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 6, stderr
    assert "exited with status 137" in stderr
    manifest = _manifest(tmp_path / "runs")
    assert _mlorch_containers(engine, manifest["run_id"]) == []
    assert manifest["status"] == "failed"
    assert manifest["tests"][-1]["status"] == "failed"
    assert "reference SUT" in _sut_log(tmp_path, manifest)


def test_timeout_kills_and_removes_the_container(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine, tmp_path: Path
) -> None:
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        "--quick",
        "--timeout",
        "8",
        "--config",
        str(_long_config(tmp_path)),
        cwd=tmp_path,
    )
    assert result.returncode == 7, result.stderr[-3000:]
    assert "did not finish within 8 s" in result.stderr
    manifest = _manifest(tmp_path / "runs")
    assert _mlorch_containers(engine, manifest["run_id"]) == []
    assert manifest["status"] == "failed"


def test_build_bootstraps_a_missing_local_base(engine: DockerEngine, tmp_path: Path) -> None:
    """No registry and no local base: mlorch announces and bootstraps one (debootstrap)."""
    tag = "mlorch/base:autotest"
    built: list[str] = []
    try:
        if engine.image_id(tag):
            engine.client.images.remove(tag, force=True)
        result = mlorch("build", "reference", "--device", "cpu", cwd=tmp_path,
                        env={"MLORCH_LOCAL_BASE": tag})  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "cannot pull nvcr.io/nvidia/tensorrt" in result.stderr
        assert f"built local base image {tag}" in result.stderr
        built.append(result.stdout.strip())
        assert engine.image_labels(built[0])["mlorch.base-image"] == tag
    finally:
        for ref in (*built, tag):
            if engine.image_id(ref):
                engine.client.images.remove(ref, force=True)


def test_runs_lists_the_verdicts(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, runs = quick_run
    result = mlorch("runs", "--runs-dir", str(runs), cwd=runs.parent)
    assert result.returncode == 0, result.stderr
    assert _manifest(runs)["run_id"] in result.stdout
    assert "complete" in result.stdout


def test_down_removes_orphans(engine: DockerEngine, tmp_path: Path) -> None:
    from orchestrator.engine import labels as L
    from orchestrator.images.catalog import LOCAL_BASE

    orphan = engine.client.containers.run(
        LOCAL_BASE, ["sleep", "300"], detach=True, name=f"mlorch-orphan-{os.getpid()}",
        labels=L.base_labels(run_id="orphan", role="sut"), user="65534:65534", network_mode="none",
    )  # fmt: skip
    unrelated = engine.client.containers.run(
        LOCAL_BASE, ["sleep", "300"], detach=True, name=f"not-mlorch-{os.getpid()}",
        user="65534:65534", network_mode="none",
    )  # fmt: skip
    try:
        result = mlorch("down", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert orphan.name in result.stderr
        assert _mlorch_containers(engine, "orphan") == []
        unrelated.reload()
        assert unrelated.status == "running"  # only mlorch's containers are touched
    finally:
        unrelated.remove(force=True)


def test_sighup_removes_container_and_marks_interrupted(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine, tmp_path: Path
) -> None:
    """A closed terminal (SIGHUP) takes the interrupt path, like Ctrl-C and SIGTERM."""
    process, _ = _start_long_run(engine, tmp_path)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    manifest = _manifest(tmp_path / "runs")
    assert _mlorch_containers(engine, manifest["run_id"]) == []
    assert manifest["status"] == "interrupted"
    assert manifest["tests"][-1]["status"] == "interrupted"


def test_next_up_reaps_the_container_of_a_sigkilled_mlorch(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], engine: DockerEngine, tmp_path: Path
) -> None:
    process, name = _start_long_run(engine, tmp_path)
    process.kill()  # no clean-up can run: its SUT container keeps going
    process.communicate(timeout=60)
    killed_run = _manifest(tmp_path / "runs")["run_id"]
    assert name in _mlorch_containers(engine, killed_run)
    later = tmp_path / "later"
    later.mkdir()
    result = mlorch("up", "reference", "--device", "cpu", "--quick", "-s", "Offline",
                    "-m", "PerformanceOnly", cwd=later)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"removed {name}, left behind: its mlorch (pid {process.pid} on" in result.stderr
    assert _mlorch_containers(engine, killed_run) == []
