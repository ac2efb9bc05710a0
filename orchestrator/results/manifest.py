"""`runs/<run-id>/manifest.json`: what ran, on what, with which image, and how it ended."""

from __future__ import annotations

import errno
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.locks import atomic_write_bytes
from contract.sizing import Measurement
from orchestrator.errors import ConfigError, ResultError

MANIFEST = "manifest.json"
# Room kept beside the manifest for its last write on a disk that fills during the run: released
# when a write meets ENOSPC, so the run's final state is never lost to the disk.
MANIFEST_RESERVE = ".manifest.reserve"
RESERVE_MIN_BYTES = 1 << 20
STATUSES = ("running", "complete", "failed", "interrupted")
RESUMABLE = ("failed", "interrupted")  # what `up --resume` continues


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
    """The manifest of the run in `run_dir`, validated (RunManifest.read), as the JSON object
    the readers of run folders take."""
    return RunManifest.read(run_dir).to_dict()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Record(BaseModel):
    """A part of the run record: typed, validated when read back, no key it does not know."""

    model_config = ConfigDict(extra="forbid")


class ImageRecord(Record):
    """The SUT image a run used: what `up --resume` compares, what the system description and
    the report show. Keys were only ever added: an older manifest lacks some (None)."""

    tag: str | None = None
    id: str | None = None
    dockerfile_sha256: str | None = None
    base_image: str | None = None
    base_image_id: str | None = None
    base_image_digest: str | None = None
    base_image_repo_digests: list[str] = Field(default_factory=list)
    base_local_bootstrap: bool | None = None
    base_fallback: bool | None = None
    python: str | None = None
    built_now: bool | None = None
    pip_freeze: list[str] = Field(default_factory=list)


class SizingRecord(Record):
    """One scenario's sizing in the run record: the value LoadGen was given (tuning units: qps
    or ms), where it came from, and what was measured (running/sizing.py builds it)."""

    key: str
    value: float
    source: str
    cache_key: str
    measured_at: str | None = None
    measurement: Measurement | None = None
    bracket: tuple[float | None, float | None] | None = None  # tuned Server: (VALID, INVALID)
    outran: str | None = None  # what the test that outran the previous value did, in words


class TestRecord(Record):
    """One LoadGen test of a run: where its logs are, how it ended, what its SUT recorded
    (harness.json), its parsed result and telemetry."""

    __test__ = False  # a record, not a pytest test class

    scenario: str
    mode: str
    dir: str
    status: Literal["ok", "failed", "interrupted"]
    container_seconds: float | None = None
    loadgen_seconds: float | None = None
    harness: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None
    sizing_note: str | None = None  # why this Server run could not be VALID, in words
    # sha256 of every file in its folder when it was recorded: `up --resume` keeps the test
    # only while they all match
    files: dict[str, str] = Field(default_factory=dict)


class AuditRecord(Record):
    """One compliance audit of a scenario: verified (passed or not), skipped, failed or
    interrupted, with the reasons."""

    scenario: str
    test: str
    status: Literal["verified", "skipped", "failed", "interrupted"]
    passed: bool = False
    dir: str | None = None
    reasons: list[str] = Field(default_factory=list)
    checks: Any = None
    container_seconds: float | None = None
    loadgen_seconds: float | None = None
    harness: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    files: dict[str, str] = Field(default_factory=dict)  # as TestRecord.files


class AttemptRecord(Record):
    """One earlier attempt of a resumed run: how it ended, and what it left that was kept."""

    started: str
    finished: str | None = None
    status: str
    error: str | None = None
    host_id: str | None = None
    pid: int | None = None
    wall_seconds: float | None = None
    tests_done: int = 0


class ProbeRecord(Record):
    """One LoadGen run of `mlorch tune`'s search."""

    scenario: str
    value: float
    valid: bool
    confirming: bool
    seconds: float
    folder: str
    p99_ms: float | None = None
    early_stopping_ms: float | None = None
    result: float | None = None
    unmet: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


MANIFEST_VERSION = 2  # 1: written before the run record was typed (read all the same)


def _keep_room(reserve: Path, size: int) -> None:
    """Grow `reserve` to `size` allocated bytes; best effort (a disk already full keeps what the
    reserve holds)."""
    try:
        if reserve.is_file() and reserve.stat().st_size >= size:
            return
        with reserve.open("ab") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                handle.truncate(0)
                handle.write(bytes(size))  # a filesystem without fallocate: real blocks
                handle.flush()
                os.fsync(handle.fileno())
    except OSError:
        return


class RunManifest(Record):
    """The run record, built by `up` and `tune` as the run goes and written by `write` alone."""

    run_id: str
    run_dir: Path = Field(exclude=True)  # where it lives, not part of the file
    mlorch_version: str
    spec: dict[str, Any]
    host: dict[str, Any]
    manifest_version: int = MANIFEST_VERSION
    status: Literal["running", "complete", "failed", "interrupted"] = "running"
    kind: Literal["up", "tune"] = "up"  # what made it: `up` (resumable) or `tune`
    started: str = Field(default_factory=utc_now)
    resumed: str | None = None  # when the latest `up --resume` attempt started
    finished: str | None = None
    wall_seconds: float | None = None
    error: str | None = None
    submission_valid: bool = False
    invalid_because: list[str] = Field(default_factory=list)  # why not submission-valid
    loadgen_version: str | None = None
    assets: dict[str, Any] = Field(default_factory=dict)
    image: ImageRecord | None = None  # None until the image is built or found
    host_id: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    recipe: dict[str, Any] | None = None  # dell-trt: prepared model, engines, accuracy guards
    # cuda: how the driver runs the image's CUDA (native / minor-version / forward compatibility)
    cuda: dict[str, str] | None = None
    # per scenario: its expected rate/latency, where it came from, what was measured
    sizing: dict[str, SizingRecord] = Field(default_factory=dict)
    tests: list[TestRecord] = Field(default_factory=list)
    compliance: list[AuditRecord] = Field(default_factory=list)
    probes: list[ProbeRecord] = Field(default_factory=list)  # `tune`'s runs
    attempts: list[AttemptRecord] = Field(default_factory=list)  # before `up --resume`

    @field_validator("image", mode="before")
    @classmethod
    def _no_image_yet(cls, value: Any) -> Any:
        return None if value == {} else value  # written as {} before the record was typed

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def earlier_seconds(self) -> float:
        """The wall time of the attempts before this one (`up --resume`)."""
        return sum(attempt.wall_seconds or 0.0 for attempt in self.attempts)

    def write(self) -> None:
        """The one writer: the whole record, replaced atomically (a crash leaves the old or the
        new). The room for it is kept: on a full disk the reserve beside it is given up."""
        data = (json.dumps(self.to_dict(), indent=2, default=str) + "\n").encode()
        path, reserve = self.run_dir / MANIFEST, self.run_dir / MANIFEST_RESERVE
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not reserve.is_file():
                raise
            reserve.unlink()
            atomic_write_bytes(path, data)
            return
        _keep_room(reserve, max(RESERVE_MIN_BYTES, 2 * len(data)))

    def release_reserve(self) -> None:
        """Give back the room kept for the manifest (the run has written its last state)."""
        (self.run_dir / MANIFEST_RESERVE).unlink(missing_ok=True)

    @classmethod
    def read(cls, run_dir: Path) -> RunManifest:
        """The record in `run_dir`, validated: one from an older mlorch is read (what it lacks
        takes its default); one that is damaged, or from a newer mlorch, is refused naming the
        first field that does not fit."""
        path = run_dir / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ResultError(f"{path}: expected a JSON object")
        version = data.get("manifest_version", 1)
        if isinstance(version, int) and version > MANIFEST_VERSION:
            raise ResultError(
                f"{path}: written by a newer mlorch (manifest version {version}, this one reads "
                f"up to {MANIFEST_VERSION})",
                hint="read it with the mlorch that wrote it, or upgrade",
            )
        try:
            return cls.model_validate({**data, "run_dir": run_dir})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "<root>"
            raise ResultError(
                f"{path}: not a run record this mlorch reads: {where}: {first.get('msg')}"
            ) from None


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

    kind: str = "up"

    @property
    def resumable(self) -> bool:
        """Whether `up --resume` can finish it (an `up` run that failed or was interrupted)."""
        return self.status in RESUMABLE and self.kind == "up"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_kind(data: dict[str, Any]) -> str:
    """'up' or 'tune'; a manifest from before `kind` was recorded says it by its run id."""
    tune = data.get("kind") == "tune" or "-tune-" in str(data.get("run_id", ""))
    return "tune" if tune else "up"


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
                kind=run_kind(data),
            )
        )
    return listings
