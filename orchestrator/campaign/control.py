"""A campaign from the login node: submit one Slurm job per system, map Slurm's states and the
results folders onto the ledger, resubmit what is missing, and merge the results.

Nothing here schedules: Slurm does (`--nodelist`/`--constraint`, `--exclusive`, `--gres`,
`--requeue`). A system whose jobs failed more than `max_requeue` times is excluded: its units
are reported as such, never silently dropped.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.locks import atomic_write_text
from orchestrator.campaign import slurm
from orchestrator.campaign.ledger import Unit, plan_units
from orchestrator.campaign.spec import CampaignSpec, SystemTable
from orchestrator.campaign.store import (
    CAMPAIGN_FILE,
    JOB_SCRIPT,
    Attempt,
    attempts,
    first_complete,
    jobs,
    record_job,
)
from orchestrator.campaign.worker import mlorch_command
from orchestrator.config import Device
from orchestrator.errors import CampaignIncomplete, ConfigError

POLL_S = 5.0


def job_name(spec: CampaignSpec, system_id: str) -> str:
    return f"mlorch-{spec.campaign.name}-{system_id}"


# --- submitting ----------------------------------------------------------------------------------


def sbatch_args(spec: CampaignSpec, system: SystemTable, gpus: int | None) -> list[str]:
    """Where and how Slurm runs one system's job."""
    folder = spec.root / system.system_id
    args = [
        "--job-name", job_name(spec, system.system_id),
        "--exclusive", "--requeue", "--nodes", "1",
        "--output", str(folder / "slurm-%j.out"),
        "--chdir", str(folder),
    ]  # fmt: skip
    args += [f"--nodelist={system.node}"] if system.node else [f"--constraint={system.constraint}"]
    if system.device is Device.CUDA and gpus:
        args.append(f"--gres=gpu:{gpus}")
    table = spec.slurm
    if table.partition:
        args.append(f"--partition={table.partition}")
    if table.account:
        args.append(f"--account={table.account}")
    if table.time_limit:
        args.append(f"--time={table.time_limit}")
    return [*args, *table.extra_args]


def job_script(spec: CampaignSpec, system_id: str) -> str:
    """The batch script: the worker on the node, reading the campaign file from the storage."""
    command = [
        *mlorch_command(spec), "campaign", "worker", str(spec.root / CAMPAIGN_FILE),
        "--system", system_id,
    ]  # fmt: skip
    return (
        "#!/bin/bash\n"
        f"# mlorch campaign {spec.campaign.name}, system {system_id}\n"
        f"exec {shlex.join(command)}\n"
    )


def _gpus(system: SystemTable) -> int | None:
    if system.device is not Device.CUDA:
        return None
    if system.gpus:
        return system.gpus
    if system.node is None:
        raise ConfigError(
            f"system {system.system_id}: a cuda system placed by constraint needs gpus = N",
            key="system.gpus",
        )
    found = slurm.node_gpus(system.node)
    if found == 0:
        raise ConfigError(
            f"Slurm knows no GPU (Gres gpu:N) on node {system.node}",
            key="system.gpus",
            hint="set gpus = N for the system, or add Gres=gpu:N to the node in slurm.conf",
        )
    return found


def submit(
    spec: CampaignSpec, source: Path, systems: Sequence[str] | None = None
) -> dict[str, str]:
    """Copy the campaign file to the storage and submit one job per system (all, or `systems`);
    the job id per system."""
    spec.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(spec.root / CAMPAIGN_FILE, source.read_text())
    submitted = {}
    for system in spec.system:
        if systems is not None and system.system_id not in systems:
            continue
        folder = spec.root / system.system_id
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / JOB_SCRIPT
        atomic_write_text(script, job_script(spec, system.system_id))
        script.chmod(0o755)
        job = slurm.sbatch(sbatch_args(spec, system, _gpus(system)), str(script))
        record_job(spec.root, system.system_id, {"job": job, "submitted": time.time()})
        submitted[system.system_id] = job
    return submitted


# --- where everything stands -------------------------------------------------------------------


@dataclass(frozen=True)
class UnitStatus:
    unit: Unit
    state: str  # complete | running | pending | held | requeued | failed | node_fail | ...
    job: str | None
    attempts: int
    detail: str
    result: Attempt | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit.id,
            "system": self.unit.system,
            "backend": self.unit.backend,
            "scenario": str(self.unit.scenario),
            "state": self.state,
            "job": self.job,
            "attempts": self.attempts,
            "detail": self.detail,
            "result": str(self.result.folder) if self.result else None,
        }


@dataclass(frozen=True)
class CampaignStatus:
    units: tuple[UnitStatus, ...]
    jobs: dict[str, slurm.JobInfo]
    excluded: tuple[str, ...]  # systems out after too many failed jobs

    @property
    def complete(self) -> bool:
        return all(status.state == "complete" for status in self.units)

    @property
    def live(self) -> bool:
        return any(info.state.live for info in self.jobs.values())

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for status in self.units:
            counted[status.state] = counted.get(status.state, 0) + 1
        return counted


def _failed_jobs(system_jobs: list[str], infos: dict[str, slurm.JobInfo]) -> int:
    ended_badly = (slurm.JobState.FAILED, slurm.JobState.NODE_FAIL, slurm.JobState.TIMEOUT,
                   slurm.JobState.OUT_OF_MEMORY, slurm.JobState.GONE)  # fmt: skip
    return sum(1 for job in system_jobs if infos[job].state in ended_badly)


def campaign_status(spec: CampaignSpec) -> CampaignStatus:
    """Every unit against its results folder and its system's newest job."""
    submitted = jobs(spec.root)
    all_jobs = [str(entry["job"]) for entries in submitted.values() for entry in entries]
    names = [job_name(spec, system.system_id) for system in spec.system]
    infos = slurm.job_states(names, all_jobs) if all_jobs else {}
    excluded = []
    units = []
    planned = plan_units(spec)
    for system in spec.system:
        system_jobs = [str(entry["job"]) for entry in submitted.get(system.system_id, [])]
        newest = infos.get(system_jobs[-1]) if system_jobs else None
        failures = _failed_jobs(system_jobs, infos)
        out = failures > spec.slurm.max_requeue and not (newest and newest.state.live)
        if out:
            excluded.append(system.system_id)
        for unit in (u for u in planned if u.system == system.system_id):
            folder = spec.root / system.system_id / unit.id
            tried = attempts(folder, verify=False)
            result = first_complete(folder)
            if result is not None:
                units.append(UnitStatus(unit, "complete", result.job, len(tried), "", result))
                continue
            last_failed = next((a.failed for a in reversed(tried) if a.failed), None)
            why = str(last_failed.get("why", "")) if last_failed else ""
            if out:
                state, detail = "excluded", f"{failures} failed jobs on {system.system_id}"
            elif newest is None:
                state, detail = "not submitted", ""
            elif newest.state is slurm.JobState.RUNNING and tried and tried[-1].job == newest.job:
                state, detail = ("failed", why) if tried[-1].failed else ("running", newest.nodes)
            elif newest.state is slurm.JobState.RUNNING:
                state, detail = "waiting", f"job {newest.job} runs earlier units"
            elif newest.state.live:
                state, detail = str(newest.state), newest.reason
            else:
                state = "failed" if newest.state is slurm.JobState.COMPLETED else str(newest.state)
                detail = why or newest.slurm_state
            units.append(
                UnitStatus(unit, state, newest.job if newest else None, len(tried), detail, None)
            )
    return CampaignStatus(tuple(units), infos, tuple(excluded))


def resume(spec: CampaignSpec, source: Path) -> tuple[dict[str, str], CampaignStatus]:
    """Resubmit the systems that have incomplete units and no live job (not the excluded)."""
    status = campaign_status(spec)
    submitted = jobs(spec.root)
    wanted = []
    for system in spec.system:
        mine = [s for s in status.units if s.unit.system == system.system_id]
        if all(s.state == "complete" for s in mine) or system.system_id in status.excluded:
            continue
        newest = submitted.get(system.system_id, [])
        info = status.jobs.get(str(newest[-1]["job"])) if newest else None
        if info is not None and info.state.live:
            continue
        wanted.append(system.system_id)
    return (submit(spec, source, wanted) if wanted else {}), status


def wait(
    spec: CampaignSpec,
    timeout_s: float,
    on_status: Callable[[CampaignStatus], None],
    poll_s: float = POLL_S,
) -> CampaignStatus:
    """Poll until every unit is complete or no job is left alive; WaitTimeout after
    `timeout_s` (the jobs keep running: `status` and `resume` pick them up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = campaign_status(spec)
        on_status(status)
        if status.complete or not status.live:
            return status
        if time.monotonic() > deadline:
            raise CampaignIncomplete(
                f"campaign {spec.campaign.name} not finished after {timeout_s:g} s",
                hint=f"the jobs keep running: mlorch campaign status {spec.root / CAMPAIGN_FILE}",
            )
        time.sleep(poll_s)


def complete_runs(spec: CampaignSpec) -> tuple[list[Path], list[Unit]]:
    """The run folders of every unit's result, and the units that have none."""
    runs, missing = [], []
    for unit in plan_units(spec):
        result = first_complete(spec.root / unit.system / unit.id)
        if result is None:
            missing.append(unit)
        else:
            runs += result.run_dirs
    return runs, missing


# --- one tree and one report -------------------------------------------------------------------


@dataclass(frozen=True)
class MergeOutcome:
    submission: Any  # orchestrator.submission.tree.SubmissionOutcome
    check: Any  # orchestrator.submission.preflight.CheckReport of the tree
    report: Any  # orchestrator.report.ReportFiles
    missing: tuple[Unit, ...]


def merge(
    spec: CampaignSpec,
    output: Path,
    report_dir: Path,
    *,
    division: str,
    submitter: str | None,
    facts_file: Path | None,
) -> MergeOutcome:
    """Every unit's result into one submission tree (one system per node and backend), its
    preflight run once, and one comparison report of the runs."""
    from orchestrator.report import write_report
    from orchestrator.report.build import build_comparison
    from orchestrator.submission.tree import build_submission
    from orchestrator.submission.tree_check import check_tree

    runs, missing = complete_runs(spec)
    if not runs:
        raise CampaignIncomplete(
            f"campaign {spec.campaign.name}: no unit has a complete attempt yet",
            hint="mlorch campaign status FILE",
        )
    submission = build_submission(
        [str(run) for run in runs], output, division=division, submitter=submitter,
        facts_file=facts_file, runs_dir=spec.root,
    )  # fmt: skip
    report = write_report(build_comparison(runs), report_dir)
    return MergeOutcome(submission, check_tree(output), report, tuple(missing))
