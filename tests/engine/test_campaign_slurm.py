"""`mlorch campaign` on a real two-node Slurm cluster (127.0.0.1) with real containers: a quick
reference campaign merged into one tree of two systems; `scancel` leaving no container; a node
killed mid-unit whose requeued job finishes the campaign with no unit lost or merged twice."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine
from tests.engine.conftest import mlorch
from tests.support.slurm import LoopbackCluster, loopback_cluster
from tests.support.submission_fixtures import CI_HOST_FACTS

pytestmark = [pytest.mark.engine, pytest.mark.slurm]

# What the preflight says of any quick run, whichever system it came from.
QUICK_LIMITS = re.compile(
    r"TEST0[14]: missing: the compliance test did not run|min_duration .* the rules need 600 s"
    r"|minimum [\d,]+ samples, the rules need|performance sample count \d+, the rules need 1024"
    r"|the accuracy run covered \d+ samples|early-stopping p99 estimate"
)


def _campaign(folder: Path, name: str, systems: list[str], scenarios: list[str]) -> Path:
    text = (
        f'[campaign]\nname = "{name}"\nresults = "{folder / "shared"}"\nprofile = "quick"\n'
        f'backends = ["reference"]\nscenarios = {json.dumps(scenarios)}\n'
    )
    for node in systems:
        text += f'\n[[system]]\nnode = "{node}"\n'
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    started = loopback_cluster()
    yield started
    started.stop()


def _run(
    cluster: LoopbackCluster, *args: str, cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return mlorch("campaign", *args, cwd=cwd, timeout=timeout, env=cluster.env())


def _status(cluster: LoopbackCluster, path: Path) -> list[dict[str, object]]:
    done = _run(cluster, "status", str(path), "--json", cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["units"])


def _containers(engine: DockerEngine, role: str | None = None) -> list[str]:
    wanted = [f"{L.TOOL}={L.TOOL_VALUE}"] + ([f"{L.ROLE}={role}"] if role else [])
    listed = engine.client.containers.list(all=True, filters={"label": wanted})
    return [container.name for container in listed]


def _wait_for_new_sut(engine: DockerEngine, before: set[str], poll_s: float) -> None:
    """Until a SUT container this test's campaign started is there (one another test left
    behind does not count)."""
    deadline = time.monotonic() + 300
    while not set(_containers(engine, "sut")) - before:
        assert time.monotonic() < deadline, "the unit's container never started"
        time.sleep(poll_s)


def test_a_two_node_campaign_merges_into_one_tree(
    cluster: LoopbackCluster, engine: DockerEngine, tmp_path: Path
) -> None:
    path = _campaign(tmp_path, "lab", ["node1", "node2"], ["Offline", "SingleStream"])
    planned = _run(cluster, "plan", str(path), "--json", cwd=tmp_path)
    units = json.loads(planned.stdout)
    assert [u["system"] for u in units] == ["node1", "node1", "node2", "node2"]
    assert planned.stdout == _run(cluster, "plan", str(path), "--json", cwd=tmp_path).stdout

    done = _run(cluster, "run", str(path), "--wait", "--timeout", "900", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    status = _status(cluster, path)
    assert [s["state"] for s in status] == ["complete"] * 4
    results = {Path(str(s["result"])).parent.parent.name for s in status}
    assert results == {"node1", "node2"}

    (tmp_path / "facts.toml").write_text(CI_HOST_FACTS)
    tree = tmp_path / "tree"
    merged = _run(
        cluster, "merge", str(path), "-o", str(tree), "--submitter", "Acme",
        "--system-facts", str(tmp_path / "facts.toml"), cwd=tmp_path,
    )  # fmt: skip
    # A quick campaign's tree is never submission-valid: the preflight accepts everything in it
    # but the quick profile's own limits (durations, counts, the audits it skips, the accuracy
    # run's 64 images) — nothing about the two systems, their fields or their files' places.
    assert merged.returncode == 12, merged.stderr[-3000:]
    systems = sorted(p.stem for p in (tree / "closed" / "Acme" / "systems").glob("*.json"))
    assert systems == ["node1", "node2"]
    problems = [line.strip() for line in merged.stdout.splitlines() if line.startswith("    ")]
    assert problems
    unexpected = [line for line in problems if not QUICK_LIMITS.search(line)]
    assert not unexpected, unexpected
    for node in systems:
        for scenario in ("Offline", "SingleStream", "MultiStream"):  # MultiStream: edge rule
            folder = tree / "closed" / "Acme" / "results" / node / "resnet50" / scenario
            assert (folder / "performance" / "run_1" / "mlperf_log_detail.txt").is_file()
            assert (folder / "accuracy" / "mlperf_log_accuracy.json").is_file()
    assert (tmp_path / "tree-report" / "report.html").is_file()
    assert not _containers(engine)


def test_scancel_stops_the_unit_and_leaves_no_container(
    cluster: LoopbackCluster, engine: DockerEngine, tmp_path: Path
) -> None:
    path = _campaign(tmp_path, "stop", ["node1"], ["MultiStream"])
    before = set(_containers(engine))
    done = _run(cluster, "run", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _wait_for_new_sut(engine, before, poll_s=1.0)
    job = json.loads((tmp_path / "shared" / "stop" / "jobs.json").read_text())["node1"][0]["job"]
    subprocess.run(["scancel", job], env={**cluster.env()}, check=True, timeout=30)
    deadline = time.monotonic() + 60
    while _containers(engine) or cluster.in_queue(job):
        assert time.monotonic() < deadline, f"left behind: {_containers(engine)}"
        time.sleep(1)
    (attempt,) = (tmp_path / "shared" / "stop" / "node1").glob("*/attempt-*")
    failed = json.loads((attempt / "failed.json").read_text())
    assert failed["why"] == "stopped by signal 15"
    assert not (attempt / "done.json").exists()
    (status,) = _status(cluster, path)
    assert status["state"] in ("cancelled", "failed")


def test_a_node_killed_mid_unit_is_requeued_and_nothing_is_lost_or_merged_twice(
    cluster: LoopbackCluster, engine: DockerEngine, tmp_path: Path
) -> None:
    """The node dies while its unit's container runs (slurmd, slurmstepd and mlorch SIGKILLed:
    nothing can clean up); it comes back; Slurm requeues the job (`--requeue`), which runs the
    unit again in a new attempt and removes the container the dead mlorch left."""
    path = _campaign(tmp_path, "death", ["node2"], ["Offline"])
    before = set(_containers(engine))
    assert _run(cluster, "run", str(path), cwd=tmp_path).returncode == 0
    # kill within the unit, before its done.json, on a fast host too
    _wait_for_new_sut(engine, before, poll_s=0.1)
    cluster.kill_node("node2")
    cluster.start_node("node2")
    assert cluster.release_requeued(), "Slurm did not requeue the dead node's job"
    waited = _run(cluster, "resume", str(path), "--wait", "--timeout", "600", cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr[-3000:]
    assert "nothing to resubmit" in waited.stderr  # Slurm requeued the job itself
    (status,) = _status(cluster, path)
    assert status["state"] == "complete"
    unit = tmp_path / "shared" / "death" / "node2" / str(status["unit"])
    tried = sorted(p.name for p in unit.glob("attempt-*"))
    assert len(tried) == 2, tried
    first, second = (unit / name for name in tried)
    assert tried[0].endswith("-0")  # the same job, restarted once
    assert tried[1].endswith("-1")
    assert not (first / "done.json").exists()  # orphaned by the node's death: never merged
    assert (second / "done.json").is_file()
    assert str(status["result"]) == str(second)
    assert not _containers(engine)  # the dead mlorch's container was removed by the rerun


def test_a_system_whose_jobs_keep_failing_is_excluded_and_its_units_reported(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    """max_requeue = 0: after one failed job (its unit's `mlorch up` refuses an option) the
    system is out; status lists its unit as excluded with why, and resume leaves it alone."""
    path = _campaign(tmp_path, "bad", ["node1"], ["Offline"])
    path.write_text(
        path.read_text().replace(
            "[[system]]", '[campaign.up]\ncalibration = "entropy"\n[slurm]\nmax_requeue = 0\n'
            "\n[[system]]", 1,
        )
    )  # fmt: skip
    assert _run(cluster, "run", str(path), cwd=tmp_path).returncode == 0
    deadline = time.monotonic() + 120
    while (state := _status(cluster, path)[0])["state"] != "excluded":
        assert time.monotonic() < deadline, state
        time.sleep(1)
    assert state["detail"] == "1 failed jobs on node1"
    (attempt,) = (tmp_path / "shared" / "bad" / "node1").glob("*/attempt-*")
    assert (
        "--calibration applies to dell-trt"
        in json.loads((attempt / "failed.json").read_text())["why"]
    )
    resumed = _run(cluster, "resume", str(path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "node1: excluded after repeated failed jobs (not resubmitted)" in resumed.stderr
    shown = _run(cluster, "status", str(path), cwd=tmp_path)
    assert "excluded" in shown.stdout
    assert "units are listed above, not lost" in shown.stderr
