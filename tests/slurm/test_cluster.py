"""The loopback Slurm cluster (scripts/slurm-cluster.sh) for real: batch jobs and srun on both
nodes, a node death while a job runs on it (its payload must not outlive it), the node's return,
and a relaunch that runs jobs (no stale spool holds them). Skipped where the cluster cannot start
(no root, no Slurm and no apt), unless CI=true."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.slurm import LoopbackCluster, loopback_cluster

pytestmark = pytest.mark.slurm

# Slurm 22.05 with SlurmdTimeout=10 and MessageTimeout=5 flags a dead node DOWN after ~18 s
NODE_DOWN_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    cluster = loopback_cluster()
    yield cluster
    cluster.stop()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_batch_jobs_and_srun_run_on_both_nodes(cluster: LoopbackCluster, tmp_path: Path) -> None:
    jobs = {
        node: cluster.submit(
            "-w", node, "-o", str(tmp_path / f"{node}.out"), wrap="echo $SLURMD_NODENAME; sleep 2"
        )
        for node in ("node1", "node2")
    }
    for job in jobs.values():
        cluster.wait_job(job, "COMPLETED")
    deadline = time.monotonic() + 30
    while any(cluster.in_queue(job) for job in jobs.values()):
        assert time.monotonic() < deadline, "finished jobs still in squeue after 30s"
        time.sleep(0.2)
    for node in jobs:
        assert (tmp_path / f"{node}.out").read_text().split() == [node]
    srun = cluster.run("srun", "-w", "node2", "printenv", "SLURMD_NODENAME")
    assert srun.stdout.strip() == "node2"


def test_node_death_fails_its_job_and_the_node_comes_back(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    beat = tmp_path / "beat"
    # the payload daemonizes a writer, as an orphaned payload would: kill-node must end it too
    job = cluster.submit(
        "-w", "node2", "-o", str(tmp_path / "dying.out"),
        wrap=f"setsid sh -c 'while :; do date +%s.%N >> {beat}; sleep 0.2; done' & sleep 600",
    )  # fmt: skip
    cluster.wait_job(job, "RUNNING")
    deadline = time.monotonic() + 10
    while lines(beat) < 2:
        assert time.monotonic() < deadline, "the payload never wrote"
        time.sleep(0.1)

    cluster.kill_node("node2")
    written = lines(beat)
    time.sleep(1.0)
    assert lines(beat) == written, "the payload outlived its node"
    assert cluster.wait_node("node2", ["down"], timeout=NODE_DOWN_TIMEOUT_S).startswith("down")
    # JobRequeue=0: a job submitted without --requeue fails with its node
    assert cluster.wait_job(job, "NODE_FAIL", timeout=30) == "NODE_FAIL"
    assert cluster.node_state("node1") == "idle"

    cluster.start_node("node2")
    assert cluster.node_state("node2") == "idle"
    again = cluster.submit("-w", "node2", "-o", str(tmp_path / "again.out"), wrap="hostname")
    cluster.wait_job(again, "COMPLETED")


def test_relaunch_after_a_killed_node_runs_jobs(cluster: LoopbackCluster, tmp_path: Path) -> None:
    held = cluster.submit("-w", "node1", "-o", str(tmp_path / "held.out"), wrap="sleep 600")
    cluster.wait_job(held, "RUNNING")
    cluster.kill_node("node1")  # its spool keeps the step's traces; start must not trip on them
    cluster.stop()
    cluster.start()
    for node in ("node1", "node2"):
        job = cluster.submit("-w", node, "-o", str(tmp_path / f"{node}.out"), wrap="true")
        cluster.wait_job(job, "COMPLETED", timeout=30)


def test_quick_relaunch_of_a_killed_node_frees_it(cluster: LoopbackCluster, tmp_path: Path) -> None:
    """slurmd back before slurmctld noticed its death: the jobs it counted there died with it (a
    --requeue job goes back to the queue), and a new job on the node runs at once instead of
    waiting a minute behind them."""
    lost = cluster.submit("-w", "node2", "-o", str(tmp_path / "lost.out"), wrap="sleep 600")
    requeued = cluster.submit(
        "--requeue", "-w", "node1", "-o", str(tmp_path / "requeued.out"), wrap="sleep 600"
    )
    cluster.wait_job(lost, "RUNNING")
    cluster.wait_job(requeued, "RUNNING")
    for node in ("node2", "node1"):
        cluster.kill_node(node)
        cluster.start_node(node)
    assert cluster.job(lost)["JobState"] == "NODE_FAIL"
    job = cluster.job(requeued)
    assert (job["JobState"], job["Restarts"]) == ("PENDING", "1")
    cluster.run("scancel", requeued)
    fresh = cluster.submit("-w", "node2", "-o", str(tmp_path / "fresh.out"), wrap="true")
    cluster.wait_job(fresh, "COMPLETED", timeout=15)
