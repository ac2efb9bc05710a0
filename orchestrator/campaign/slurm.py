"""The Slurm seam: sbatch, squeue, scontrol, sacct and scancel, each with a timeout.

Scheduling is Slurm's; mlorch only submits one job per system, asks where the jobs are, and
maps Slurm's job states onto its ledger. `sacct` needs slurmdbd, which small clusters often
lack: every question is answered from `squeue` and `scontrol` first, `sacct` only fills in jobs
both have forgotten, and a job none of them knows is `gone` (the results folders then tell).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.errors import ConfigError, SlurmError

TIMEOUT_S = 30.0


class JobState(StrEnum):
    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    REQUEUED = "requeued"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NODE_FAIL = "node_fail"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    GONE = "gone"  # no Slurm command knows the job any more

    @property
    def live(self) -> bool:
        return self in (JobState.PENDING, JobState.HELD, JobState.RUNNING, JobState.REQUEUED)


_STATES = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "NODE_FAIL": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "DEADLINE": JobState.TIMEOUT,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PREEMPTED": JobState.REQUEUED,
    "REQUEUED": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.HELD,
    "SPECIAL_EXIT": JobState.HELD,
    "REVOKED": JobState.CANCELLED,
}


def map_state(slurm_state: str, reason: str = "") -> JobState:
    """mlorch's state of a job from Slurm's (`CANCELLED by 0` → cancelled; a pending job held
    by a user or admin → held)."""
    word = slurm_state.strip().split()[0].rstrip("+").upper() if slurm_state.strip() else ""
    state = _STATES.get(word, JobState.GONE)
    if state is JobState.PENDING and "held" in reason.lower():
        return JobState.HELD
    return state


@dataclass(frozen=True)
class JobInfo:
    job: str
    state: JobState
    slurm_state: str
    reason: str
    nodes: str
    restarts: int = 0
    source: str = "squeue"


def _run(argv: Sequence[str], timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise SlurmError(
            f"{argv[0]} is not installed here",
            hint="run campaign commands on a Slurm login node (slurm-client installed)",
        )
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer within {timeout_s:g} s", hint=HINT) from None


HINT = "is this a Slurm host and slurmctld up? (`scontrol ping`; SLURM_CONF names the cluster)"


def _last_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one line that says why (Slurm prints a chain of them, the cause last)."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def sbatch(args: Sequence[str], script: str) -> str:
    """Submit `script` (a path) with `args`; the job id."""
    done = _run(["sbatch", "--parsable", *args, script])
    if done.returncode != 0:
        raise SlurmError(
            f"sbatch refused the job: {_last_error(done)}",
            hint="check the [slurm] table and the node names; " + HINT,
        )
    return done.stdout.strip().split(";")[0]


def scancel(jobs: Sequence[str]) -> None:
    if jobs:
        _run(["scancel", *jobs])


def squeue(names: Sequence[str]) -> dict[str, JobInfo]:
    """The live jobs with these names, by id."""
    if not names:
        return {}
    done = _run(["squeue", "-h", "--name", ",".join(names), "-o", "%i|%T|%r|%N"])
    if done.returncode != 0:
        raise SlurmError(f"squeue failed: {_last_error(done)}", hint=HINT)
    found = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            job, state, reason, nodes = parts
            found[job] = JobInfo(job, map_state(state, reason), state, reason, nodes)
    return found


def parse_scontrol(text: str) -> dict[str, str]:
    """`scontrol show job -o` output as key → value (values may hold spaces only in the last
    fields, which mlorch does not read)."""
    fields = {}
    for token in text.split():
        key, _, value = token.partition("=")
        if key and key not in fields:
            fields[key] = value
    return fields


def scontrol_job(job: str) -> JobInfo | None:
    """A job slurmctld still remembers (it forgets them MinJobAge after they end)."""
    done = _run(["scontrol", "show", "job", "-o", job])
    if done.returncode != 0 or "JobId=" not in done.stdout:
        return None
    fields = parse_scontrol(done.stdout)
    state, reason = fields.get("JobState", ""), fields.get("Reason", "")
    restarts = int(fields.get("Restarts", "0") or 0)
    return JobInfo(
        job, map_state(state, reason), state, reason, fields.get("NodeList", ""), restarts,
        "scontrol",
    )  # fmt: skip


def sacct_jobs(jobs: Sequence[str]) -> dict[str, JobInfo]:
    """Ended jobs from accounting, where slurmdbd answers; {} where it does not."""
    if not jobs or shutil.which("sacct") is None:
        return {}
    done = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(jobs), "-o", "JobID,State,NodeList"])
    if done.returncode != 0:
        return {}
    found = {}
    for line in done.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0] in jobs:
            found[parts[0]] = JobInfo(
                parts[0], map_state(parts[1]), parts[1], "", parts[2], 0, "sacct"
            )
    return found


def job_states(names: Sequence[str], jobs: Sequence[str]) -> dict[str, JobInfo]:
    """Each of `jobs` (submitted with one of `names`): squeue, then scontrol, then sacct."""
    known = {job: info for job, info in squeue(names).items() if job in jobs}
    for job in jobs:
        if job not in known:
            info = scontrol_job(job)
            if info is not None:
                known[job] = info
    missing = [job for job in jobs if job not in known]
    known.update(sacct_jobs(missing))
    for job in jobs:
        known.setdefault(job, JobInfo(job, JobState.GONE, "", "", ""))
    return known


def node_gpus(node: str) -> int:
    """The GPUs Slurm knows on `node` (its Gres gpu:N), 0 when none."""
    done = _run(["scontrol", "show", "node", "-o", node])
    if done.returncode != 0:
        raise ConfigError(f"Slurm knows no node {node!r}", key="system.node")
    gres = parse_scontrol(done.stdout).get("Gres", "")
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            return int(parts[-1])
    return 0
