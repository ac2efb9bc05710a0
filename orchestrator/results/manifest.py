"""`runs/<run-id>/manifest.json`: what ran, on what, with which image, and how it ended."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, ResultError

MANIFEST = "manifest.json"
STATUSES = ("running", "complete", "failed", "interrupted")


def resolve_run(argument: str, runs_dir: Path) -> Path:
    """A run given as a folder path, or as a run id under `runs_dir` (what `compare` and `submit`
    take)."""
    for candidate in (Path(argument), runs_dir / argument):
        if (candidate / MANIFEST).is_file():
            return candidate.resolve()
    if Path(argument).is_dir():
        raise ConfigError(
            f"{argument} is not a run folder (no {MANIFEST})", key="run",
            hint="give a folder written by `mlorch up` or a run id from `mlorch runs`",
        )  # fmt: skip
    raise ConfigError(
        f"unknown run '{argument}' (not a run id under {runs_dir}, nor a run folder)",
        key="run",
        hint="`mlorch runs --runs-dir DIR` lists the run ids",
    )


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of the run in `run_dir`; ResultError when it is unreadable or not an object."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ResultError(f"{path}: expected a JSON object")
    return manifest


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunManifest:
    run_id: str
    run_dir: Path
    mlorch_version: str
    spec: dict[str, Any]
    host: dict[str, Any]
    status: str = "running"
    started: str = field(default_factory=utc_now)
    finished: str | None = None
    error: str | None = None
    submission_valid: bool = False
    invalid_because: list[str] = field(default_factory=list)  # why not submission-valid
    assets: dict[str, Any] = field(default_factory=dict)
    image: dict[str, Any] = field(default_factory=dict)
    loadgen_version: str | None = None
    tests: list[dict[str, Any]] = field(default_factory=list)
    # compliance audits: {"scenario", "test", "passed", "dir", "reasons", "status", ...}
    compliance: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] | None = None  # dell-trt: prepared model, engines, FP32 guards
    # per scenario: its expected rate/latency, where it came from, what was measured
    sizing: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float | None = None
    pid: int = field(default_factory=os.getpid)
    host_id: str = field(default_factory=socket.gethostname)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "wall_seconds": self.wall_seconds,
            "error": self.error,
            "mlorch_version": self.mlorch_version,
            "submission_valid": self.submission_valid,
            "invalid_because": self.invalid_because,
            "loadgen_version": self.loadgen_version,
            "spec": self.spec,
            "assets": self.assets,
            "image": self.image,
            "host": self.host,
            "recipe": self.recipe,
            "sizing": self.sizing,
            "tests": self.tests,
            "compliance": self.compliance,
            "pid": self.pid,
            "host_id": self.host_id,
        }

    def write(self) -> None:
        path = self.run_dir / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        tmp.replace(path)


@dataclass(frozen=True)
class RunListing:
    run_id: str
    status: str
    backend: str
    device: str
    profile: str
    started: str
    tests: int
    path: Path
    submission_valid: bool | None = None  # None: not judged (an older mlorch, or still running)
    invalid_because: tuple[str, ...] = ()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(data: dict[str, Any]) -> str:
    """A 'running' manifest whose process is gone was interrupted without a chance to say so."""
    status = str(data.get("status", "unknown"))
    if status == "running" and data.get("host_id") == socket.gethostname():
        pid = data.get("pid")
        if isinstance(pid, int) and not _alive(pid):
            return "interrupted"
    return status


def list_runs(runs_dir: Path) -> list[RunListing]:
    listings = []
    for path in sorted(runs_dir.glob(f"*/{MANIFEST}")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        spec = data.get("spec", {})
        status = effective_status(data)
        valid = data.get("submission_valid")
        # a run that never finished (still going, or killed) was never judged
        judged = isinstance(valid, bool) and data.get("status") != "running"
        listings.append(
            RunListing(
                run_id=str(data.get("run_id", path.parent.name)),
                status=status,
                backend=str(spec.get("backend", "?")),
                device=str(spec.get("device", "?")),
                profile=str(spec.get("profile", "?")),
                started=str(data.get("started", "")),
                tests=len(data.get("tests", [])),
                path=path.parent,
                submission_valid=valid if judged else None,
                invalid_because=tuple(str(r) for r in data.get("invalid_because") or ()),
            )
        )
    return listings
