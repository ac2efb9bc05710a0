"""`mlorch up --resume RUN`: finish an interrupted or failed run in its own folder.

The run keeps its spec; its image (by id) and assets (model md5, image count, dataset) must be
what they were, or the resume is refused with what changed. Each test that completed is kept
while every file it left matches the sha256 the manifest recorded; the rest run again. The
manifest stays one record: the earlier attempts go to `attempts`, the tests of all of them to
`tests`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import RunSpec
from orchestrator.errors import ConfigError
from orchestrator.results.files import digests_match
from orchestrator.results.manifest import (
    AttemptRecord,
    RunManifest,
    effective_status,
    run_kind,
    utc_now,
)

# What must not have changed since the run started, per manifest section.
SAME_ASSETS = ("synthetic", "model_md5", "count", "dataset_images")


class ResumeRefused(ConfigError):
    """The run cannot be resumed as it is: finished, still running, or its image or assets
    changed."""


@dataclass(frozen=True)
class Resumption:
    """A run to resume: its manifest (made ready for the new attempt), spec, the original
    record (written back if the resume is refused), and what was dropped and why."""

    manifest: RunManifest
    spec: RunSpec
    original: RunManifest
    kept: int
    dropped: tuple[tuple[str, str], ...]


def why_not_resumable(manifest: RunManifest) -> str | None:
    """None when `up --resume` can take the run; else why not, in words."""
    data = manifest.to_dict()
    if run_kind(data) == "tune":
        return "it is a `mlorch tune` run (run `mlorch tune` again)"
    status = effective_status(data)
    if status == "complete":
        return "it is complete"
    if status == "running":
        return f"it is still running (pid {manifest.pid} on {manifest.host_id})"
    if not manifest.spec:
        return "its manifest has no spec"
    return None


def prepare_resume(run_dir: Path) -> Resumption:
    """The run in `run_dir` ready for another attempt, or ResumeRefused."""
    manifest = RunManifest.read(run_dir)
    why = why_not_resumable(manifest)
    if why is not None:
        raise ResumeRefused(
            f"run {manifest.run_id} cannot be resumed: {why}",
            hint="`mlorch runs` says which runs can be resumed",
        )
    try:
        spec = RunSpec.model_validate({**manifest.spec, "runs_dir": str(run_dir.parent)})
    except ValueError as exc:
        raise ResumeRefused(
            f"run {manifest.run_id} cannot be resumed: its spec does not fit this mlorch "
            f"({' '.join(str(exc).split())[:200]})",
            hint="start a new run",
        ) from exc
    original = manifest.model_copy(deep=True)
    dropped: list[tuple[str, str]] = []

    def intact(folder: str, files: dict[str, str], finished: bool) -> bool:
        why = digests_match(run_dir / folder, files) if finished else "it did not finish"
        if why is not None:
            dropped.append((folder, why))
        return why is None

    kept = [test for test in manifest.tests if intact(test.dir, test.files, test.status == "ok")]
    # skipped audits are planned again, failed ones run again
    audits = [
        audit for audit in manifest.compliance
        if audit.status == "verified" and audit.dir is not None
        and intact(audit.dir, audit.files, finished=True)
    ]  # fmt: skip
    wall = manifest.wall_seconds
    own = None if wall is None else round(wall - manifest.earlier_seconds, 2)
    manifest.attempts.append(
        AttemptRecord(
            started=manifest.resumed or manifest.started,
            finished=manifest.finished,
            status=effective_status(manifest.to_dict()),
            error=manifest.error or "the mlorch process ended without recording why (killed?)",
            host_id=manifest.host_id,
            pid=manifest.pid,
            wall_seconds=own,
            tests_done=len(kept) + len(audits),
        )
    )
    manifest.tests, manifest.compliance = kept, audits
    manifest.status, manifest.error, manifest.finished = "running", None, None
    manifest.pid, manifest.host_id = os.getpid(), socket.gethostname()
    manifest.resumed = utc_now()
    return Resumption(manifest, spec, original, len(kept) + len(audits), tuple(dropped))


def check_unchanged(original: RunManifest, now: RunManifest) -> None:
    """After the new attempt prepared its image and assets: the same as the run's, or refused."""
    changes: list[str] = []
    before = original.image.id if original.image else None
    after = now.image.id if now.image else None
    if before and before != after:
        changes.append(f"the image is {_short(after)}, the run used {_short(before)}")
    for key in SAME_ASSETS:
        old, new = original.assets.get(key), now.assets.get(key)
        if key in original.assets and old != new:
            changes.append(f"assets {key} is {new}, the run had {old}")
    old_model = ((original.recipe or {}).get("model") or {}).get("sha256")
    new_model = ((now.recipe or {}).get("model") or {}).get("sha256")
    if old_model and old_model != new_model:
        changes.append("the recipe's model changed")
    if changes:
        raise ResumeRefused(
            f"run {original.run_id} cannot be resumed: {'; '.join(changes)}",
            hint="its results would mix two setups: start a new run (`mlorch up`)",
        )


def _short(value: Any) -> str:
    text = str(value)
    return text[:19] if text.startswith("sha256:") else text
