"""A real two-node Slurm cluster on 127.0.0.1 for the tests: `scripts/slurm-cluster.sh` run through
subprocess, every call bounded.

    cluster = loopback_cluster()          # started, or the test skipped (failed under CI=true)
    job = cluster.submit("-w", "node2", wrap="hostname")
    cluster.wait_job(job, "COMPLETED")
    cluster.kill_node("node2")            # slurmd, its slurmstepd and their tasks: a node death
    cluster.start_node("node2")
    cluster.stop()

Slurm commands find the cluster through `env()` (SLURM_CONF); `run()` passes it. The cluster lives
under one root folder (MLORCH_SLURM_ROOT, default /var/lib/mlorch-slurm) and on fixed loopback
ports, so there is one per host: a developer's running cluster of the same configuration is
reused by `start()` and ended by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-cluster.sh"
NODES = ("node1", "node2")
COMMAND_TIMEOUT_S = 30.0  # one sbatch / squeue / scontrol / srun
START_TIMEOUT_S = 60  # the script's own wait for both nodes
INSTALL_TIMEOUT_S = 1800.0  # a first start may install Slurm with apt
# squeue's states of a job still in the queue; anything else is final
ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
)


class ClusterError(RuntimeError):
    """The script or a Slurm command failed or ran out of time; the message says which and why,
    `output` holds the script's whole stderr (log tails included) when there was one."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class LoopbackCluster:
    def __init__(
        self,
        root: Path | str | None = None,
        gres: str | None = None,
        start_timeout_s: int = START_TIMEOUT_S,
    ) -> None:
        self.root = Path(root or os.environ.get("MLORCH_SLURM_ROOT") or "/var/lib/mlorch-slurm")
        self.gres = gres
        self.start_timeout_s = start_timeout_s

    # --- the script -------------------------------------------------------------------------------
    def _script(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        options = ["--state", str(self.root)]
        if self.gres:
            options += ["--gres", self.gres]
        command = ["bash", str(SCRIPT), *options, *args]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(
                f"slurm-cluster.sh {' '.join(args)}: no answer in {timeout:.0f}s"
            ) from exc
        except OSError as exc:
            raise ClusterError(f"slurm-cluster.sh {' '.join(args)}: {exc}") from exc
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            why = lines[-1] if lines else f"exit {result.returncode}, no output"
            raise ClusterError(why.removeprefix("slurm-cluster: "), result.stderr)
        return result

    def start(self) -> None:
        """Install Slurm when missing, start the daemons (idempotent) and wait until both nodes
        are idle."""
        timeout = self.start_timeout_s + 120.0
        if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
            timeout += INSTALL_TIMEOUT_S
        self._script("--timeout", str(self.start_timeout_s), "start", timeout=timeout)

    def stop(self) -> None:
        """Kill the daemons, the slurmstepd processes and the job processes of the cluster."""
        self._script("stop", timeout=90.0)

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's slurmd, its slurmstepd processes and their tasks."""
        self._script("kill-node", name, timeout=90.0)

    def start_node(self, name: str) -> None:
        """Start the node's slurmd on a clean spool; RESUME the node when it stays DOWN."""
        self._script(
            "--timeout", str(self.start_timeout_s), "start-node", name,
            timeout=self.start_timeout_s + 120.0,
        )  # fmt: skip

    def status(self) -> subprocess.CompletedProcess[str]:
        """The script's status report (exit 0: fully up, 3: not); never raises on the exit code."""
        try:
            return subprocess.run(
                ["bash", str(SCRIPT), "--state", str(self.root), "status"],
                capture_output=True,
                text=True,
                timeout=60.0,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError("slurm-cluster.sh status: no answer in 60s") from exc

    def env(self) -> dict[str, str]:
        """What a Slurm command needs to find this cluster."""
        return {"SLURM_CONF": str(self.root / "etc" / "slurm.conf")}

    # --- Slurm commands ---------------------------------------------------------------------------
    def run(
        self,
        *argv: str,
        timeout: float = COMMAND_TIMEOUT_S,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A Slurm client command (sbatch, srun, squeue...) against this cluster."""
        try:
            result = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, **self.env()},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{' '.join(argv)}: no answer in {timeout:.0f}s") from exc
        if check and result.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()[-500:]}"
            )
        return result

    def submit(self, *sbatch_args: str, wrap: str, cwd: Path | None = None) -> str:
        """`sbatch --parsable ARGS --wrap WRAP`; the job id."""
        out = self.run("sbatch", "--parsable", *sbatch_args, "--wrap", wrap, cwd=cwd).stdout
        return out.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict ({} once slurmctld has forgotten the job)."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if result.returncode != 0:
            return {}
        fields: dict[str, str] = {}
        for item in result.stdout.split():
            key, sep, value = item.partition("=")
            if sep and key not in fields:
                fields[key] = value
        return fields

    def in_queue(self, job_id: str) -> bool:
        """Whether squeue still lists the job (pending, running or completing)."""
        return bool(self.run("squeue", "-h", "-j", job_id, "-o", "%i", check=False).stdout.strip())

    def wait_job(self, job_id: str, states: str | Iterable[str], timeout: float = 60.0) -> str:
        """Until the job's state is one of STATES; that state. ClusterError when the job reaches
        another final state or on timeout."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            state = self.job(job_id).get("JobState", "")
            if state in wanted:
                return state
            if state and state not in ACTIVE_STATES:
                raise ClusterError(f"job {job_id} ended {state}, not {'/'.join(sorted(wanted))}")
            if time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} still {state or 'unknown'} after {timeout:.0f}s")
            time.sleep(0.2)

    def release_requeued(self, timeout: float = 60.0) -> list[str]:
        """Start now the jobs Slurm requeued after a node failure. Slurm holds each one until a
        begin time two minutes ahead (squeue reason `BeginTime`); a test checks the requeue and
        the rerun, not that wait. The ids released ([] when none was held within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.run("squeue", "-h", "-t", "PENDING", "-o", "%i %r", check=False)
            held = [
                line.split()[0]
                for line in listed.stdout.splitlines()
                if line.strip().endswith("BeginTime")
            ]
            for job_id in held:
                self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
            if held:
                return held
            time.sleep(0.5)
        return []

    def node_state(self, name: str) -> str:
        """sinfo's long node state: idle, allocated, down*, idle* (not responding), drained..."""
        out = self.run("sinfo", "-h", "-N", "-n", name, "-o", "%T").stdout
        return out.strip().splitlines()[0] if out.strip() else ""

    def wait_node(self, name: str, prefixes: Iterable[str], timeout: float = 60.0) -> str:
        """Until the node's state starts with one of PREFIXES ("down", "idle"...); that state."""
        wanted = tuple(prefixes)
        deadline = time.monotonic() + timeout
        while True:
            state = self.node_state(name)
            if state.startswith(wanted):
                return state
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} still {state or 'unknown'} after {timeout:.0f}s")
            time.sleep(0.2)


def cannot_start_reason() -> str | None:
    """Why this host cannot run the cluster at all, before trying (None: it may)."""
    if not sys.platform.startswith("linux"):
        return f"the loopback Slurm cluster needs Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "the loopback Slurm cluster needs root (slurmd runs jobs as their users)"
    if shutil.which("bash") is None:
        return "the loopback Slurm cluster needs bash"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and there is no apt-get to install it"
    return None


def loopback_cluster(root: Path | str | None = None, gres: str | None = None) -> LoopbackCluster:
    """A started LoopbackCluster, or the test skipped with the reason it cannot start; under
    CI=true that is a failure instead. For a fixture:

        @pytest.fixture(scope="module")
        def cluster():
            cluster = loopback_cluster()
            yield cluster
            cluster.stop()
    """
    required = os.environ.get("CI") == "true"
    reason = cannot_start_reason()
    cluster = LoopbackCluster(root, gres)
    if reason is None:
        try:
            cluster.start()
            return cluster
        except ClusterError as exc:
            reason = f"the loopback Slurm cluster did not start: {exc}"
    if required:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)
