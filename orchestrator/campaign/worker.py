"""What a campaign job runs on its node: the system's units one after the other, each as one
`mlorch up` into a fresh attempt folder, finished by done.json (or failed.json).

`scancel`, a time limit or a requeue sends SIGTERM to the job's processes: `mlorch up` stops
and removes its own containers (a container is outside the job's cgroup, so nobody else would),
and the worker records the attempt as stopped and exits 143 before Slurm's KillWait runs out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from orchestrator.campaign.ledger import Unit, plan_units, up_argv
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.campaign.store import (
    RUNS_DIR,
    attempt_name,
    fail_attempt,
    finish_attempt,
    first_complete,
)
from orchestrator.console import Terminal
from orchestrator.results.manifest import MANIFEST

STOP_GRACE_S = 25.0  # below Slurm's default KillWait (30 s): the child removes its containers


def mlorch_command(spec: CampaignSpec) -> list[str]:
    """How the nodes start mlorch: the [slurm] table's command, else this Python's module."""
    return list(spec.slurm.mlorch) or [sys.executable, "-m", "orchestrator"]


class _Child:
    """The running `mlorch up`; SIGTERM/SIGINT to the worker stops it and is remembered."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped_by: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.stopped_by = signum
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def _trapped(child: _Child) -> Iterator[None]:
    previous = {sig: signal.signal(sig, child.handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1][:300]


def _run_unit(spec: CampaignSpec, unit: Unit, attempt: Path, child: _Child) -> int:
    attempt.mkdir(parents=True, exist_ok=True)
    argv = [
        *mlorch_command(spec),
        "up",
        *up_argv(unit, spec.campaign.profile, str(attempt / RUNS_DIR)),
    ]
    log = attempt / "up.log"
    with log.open("wb") as out:
        out.write((" ".join(argv) + "\n").encode())
        out.flush()
        child.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            return child.process.wait()
        except BaseException:
            child.process.terminate()
            raise
        finally:
            if child.stopped_by is not None and child.process.poll() is None:
                try:
                    child.process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.process.kill()


def run_worker(spec: CampaignSpec, system_id: str, terminal: Terminal) -> int:
    """Run `system_id`'s units that have no complete attempt; 0 when all are complete now,
    1 when one failed (the next unit still runs), 143 when stopped by a signal."""
    spec.system_by_id(system_id)
    job = os.environ.get("SLURM_JOB_ID") or f"local{os.getpid()}"
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    node = os.environ.get("SLURMD_NODENAME") or os.uname().nodename
    where = {"job": job, "restart": restart, "node": node}
    units = [unit for unit in plan_units(spec) if unit.system == system_id]
    child, failed = _Child(), 0
    with _trapped(child):
        for number, unit in enumerate(units, 1):
            folder = spec.root / system_id / unit.id
            if first_complete(folder) is not None:
                terminal.info(f"[{number}/{len(units)}] {unit.describe()}: complete already")
                continue
            attempt = folder / attempt_name(job, restart)
            terminal.step(f"[{number}/{len(units)}] {unit.describe()} → {attempt}")
            code = _run_unit(spec, unit, attempt, child)
            if child.stopped_by is not None:
                fail_attempt(attempt, unit.id, f"stopped by signal {child.stopped_by}", where)
                terminal.warn(f"stopped by signal {child.stopped_by}: {unit.describe()}")
                return 143
            if code == 0:
                runs = sorted(
                    p.name for p in (attempt / RUNS_DIR).iterdir() if (p / MANIFEST).is_file()
                )
                finish_attempt(attempt, unit.id, runs, where)
                terminal.success(f"{unit.describe()}: complete ({', '.join(runs)})")
            else:
                why = f"mlorch up exited {code}: {_last_line(attempt / 'up.log')}"
                fail_attempt(attempt, unit.id, why, where)
                terminal.warn(f"{unit.describe()}: {why}")
                failed += 1
    return 1 if failed else 0
