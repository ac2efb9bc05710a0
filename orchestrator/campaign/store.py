"""A campaign's results on shared storage: one folder per unit attempt, finished by `done.json`.

    <results>/<campaign>/campaign.toml                  the file the nodes read (copied at run)
    <results>/<campaign>/jobs.json                      every job submitted, per system
    <results>/<campaign>/<system>/job.sh, slurm-<job>.out
    <results>/<campaign>/<system>/<unit>/attempt-<job>-<restart>/
        runs/<run-id>/...                               what `mlorch up` wrote
        done.json                                       written last, atomically: the sha256 of
                                                        every file of the attempt
        failed.json                                     why an attempt ended without a result

An attempt is complete only when its done.json exists and every file it lists still has its
digest; the first complete attempt of a unit (by finishing time) is its result, and a
half-written or orphaned attempt (killed node, scancel) is never merged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.digest import file_sha256
from contract.locks import atomic_write_text, exclusive
from orchestrator.results.files import known_sha256, read_json_object

CAMPAIGN_FILE = "campaign.toml"
JOBS_FILE = "jobs.json"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
RUNS_DIR = "runs"
JOB_SCRIPT = "job.sh"
LOCK_TIMEOUT_S = 60.0


def attempt_name(job: str, restart: int) -> str:
    return f"attempt-{job}-{restart}"


@dataclass(frozen=True)
class Attempt:
    folder: Path
    job: str
    restart: int
    done: dict[str, Any] | None  # done.json, when it is there and whole
    failed: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.done is not None

    @property
    def run_dirs(self) -> list[Path]:
        return [self.folder / RUNS_DIR / name for name in (self.done or {}).get("runs", [])]


def _read(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None when missing or damaged (a record is never empty)."""
    return read_json_object(path) or None


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in (DONE_FILE, FAILED_FILE):
            yield path


def finish_attempt(folder: Path, unit: str, runs: list[str], extra: dict[str, Any]) -> None:
    """Write done.json last: every file's sha256, the run folders; atomically."""
    files = {str(path.relative_to(folder)): file_sha256(path) for path in _files(folder)}
    record = {"unit": unit, "runs": runs, "finished": time.time(), **extra, "files": files}
    atomic_write_text(folder / DONE_FILE, json.dumps(record, indent=1) + "\n")


def fail_attempt(folder: Path, unit: str, why: str, extra: dict[str, Any]) -> None:
    record = {"unit": unit, "why": why, "at": time.time(), **extra}
    atomic_write_text(folder / FAILED_FILE, json.dumps(record, indent=1) + "\n")


def _verified(folder: Path, done: dict[str, Any] | None) -> dict[str, Any] | None:
    """done.json when every file it names is there with its digest (else the attempt is not
    complete: something changed or removed files after it finished)."""
    if done is None or not isinstance(done.get("files"), dict):
        return None
    for name, digest in done["files"].items():
        path = folder / name
        if not path.is_file() or known_sha256(path) != digest:
            return None
    return done


def attempts(unit_folder: Path, verify: bool = True) -> list[Attempt]:
    """Every attempt of a unit, oldest job first."""
    found: list[Attempt] = []
    if not unit_folder.is_dir():
        return found
    for folder in unit_folder.iterdir():
        parts = folder.name.split("-")
        if len(parts) != 3 or parts[0] != "attempt" or not folder.is_dir():
            continue
        done = _read(folder / DONE_FILE)
        found.append(
            Attempt(
                folder,
                parts[1],
                int(parts[2]) if parts[2].isdigit() else 0,
                _verified(folder, done) if verify else done,
                _read(folder / FAILED_FILE),
            )
        )
    return sorted(found, key=lambda a: (int(a.job) if a.job.isdigit() else 0, a.restart))


def first_complete(unit_folder: Path) -> Attempt | None:
    """The unit's result: its first complete attempt by finishing time (ties: job order)."""
    complete = [attempt for attempt in attempts(unit_folder) if attempt.complete]
    if not complete:
        return None
    return min(complete, key=lambda a: float((a.done or {}).get("finished", 0.0)))


def record_job(root: Path, system: str, job: dict[str, Any]) -> None:
    """Append one submitted job to jobs.json (under its lock: several submitters may write)."""
    path = root / JOBS_FILE
    with exclusive(root / f".{JOBS_FILE}.lock", LOCK_TIMEOUT_S):
        data = _read(path) or {}
        data.setdefault(system, []).append(job)
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def jobs(root: Path) -> dict[str, list[dict[str, Any]]]:
    data = _read(root / JOBS_FILE) or {}
    return {str(k): list(v) for k, v in data.items() if isinstance(v, list)}
