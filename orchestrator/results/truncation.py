"""Truncation of accuracy logs for a submission tree, as MLCommons' truncate tool leaves them.

A submission holds `mlperf_log_accuracy.json` cut to its first and last 4 KiB (the checker
rejects one over 10 KiB) and proves what the whole file was with a `hash=<sha256>` line in
accuracy.txt. Truncation belongs to building a submission tree only: the run folder keeps the
whole log, which TEST01's verification needs (`require_untruncated`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from backends.common.locks import atomic_write_bytes, atomic_write_text
from orchestrator.errors import ResultError
from orchestrator.results.loadgen_log import ACCURACY_LOG

ACCURACY_TXT = "accuracy.txt"
VIEWABLE_BYTES = 4096  # kept from each end of the log
MAX_TRUNCATED_BYTES = 10 * 1024  # the checker's limit for a submitted accuracy log
ELISION = b"\n\n...\n\n"  # between the kept head and tail
HASH_LINE = re.compile(r"^hash=(\w+)$", re.MULTILINE)  # what the checker matches
CHUNK = 1 << 20


@dataclass(frozen=True)
class Truncation:
    """The outcome of `truncate_accuracy_log`."""

    sha256: str  # of the whole log, as recorded in accuracy.txt
    truncated_now: bool  # False: the folder was already truncated and is left as it was
    size: int  # bytes of the log now


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_hash(accuracy_txt: Path) -> str | None:
    """The `hash=` value accuracy.txt records, or None (no line, or no file)."""
    if not accuracy_txt.is_file():
        return None
    match = HASH_LINE.search(accuracy_txt.read_text(errors="replace"))
    return match.group(1) if match else None


def is_truncated(accuracy_dir: Path) -> bool:
    """True when the folder's accuracy log is no longer the whole log of the run.

    A recorded hash the log no longer matches means it was cut; a log without a hash that is
    not JSON but holds the elision mark was cut by something that did not record the hash.
    A small log the truncation left whole still matches its hash: it is not truncated.
    """
    log = accuracy_dir / ACCURACY_LOG
    if not log.is_file():
        return False
    recorded = recorded_hash(accuracy_dir / ACCURACY_TXT)
    if recorded is not None:
        return recorded != file_sha256(log)
    if log.stat().st_size > 2 * VIEWABLE_BYTES + len(ELISION):
        return False
    data = log.read_bytes()
    if ELISION not in data:
        return False
    try:
        json.loads(data)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return True
    return False


def require_untruncated(accuracy_dir: Path) -> None:
    """Refuse (ResultError) a folder whose accuracy log was already truncated."""
    if is_truncated(accuracy_dir):
        raise ResultError(
            f"{accuracy_dir / ACCURACY_LOG} is truncated: only its first and last "
            f"{VIEWABLE_BYTES // 1024} KiB are left, responses cannot be compared",
            hint="verify compliance in the run folder, before a submission tree truncates it",
        )


def truncate_accuracy_log(accuracy_dir: Path, *, create_accuracy_txt: bool = False) -> Truncation:
    """Record the sha256 of the whole log in accuracy.txt, then cut the log to its first and
    last 4 KiB (a log under 4 KiB stays whole). Each file is replaced atomically, accuracy.txt
    first, so an interruption never loses the hash of a log already cut; calling it again on
    a truncated folder changes nothing (`truncated_now` False) and a half-done one is finished.

    accuracy.txt must exist (the scored accuracy run) unless `create_accuracy_txt`: a compliance
    folder (TEST01) has no score and gets an accuracy.txt holding just the hash line.
    """
    log = accuracy_dir / ACCURACY_LOG
    accuracy_txt = accuracy_dir / ACCURACY_TXT
    if not log.is_file():
        raise ResultError(f"no {ACCURACY_LOG} in {accuracy_dir}")
    if not accuracy_txt.is_file() and not create_accuracy_txt:
        raise ResultError(
            f"no {ACCURACY_TXT} in {accuracy_dir}",
            hint="score the accuracy run first; the hash line is appended to its accuracy.txt",
        )
    whole = file_sha256(log)
    recorded = recorded_hash(accuracy_txt)
    if recorded is not None and recorded != whole:
        size = log.stat().st_size
        if size > MAX_TRUNCATED_BYTES:
            raise ResultError(
                f"{accuracy_txt} records hash {recorded}, but {log.name} ({size} bytes) is "
                "neither that log nor a truncated one",
                hint="the accuracy log was replaced after truncation; use the run's original",
            )
        return Truncation(recorded, truncated_now=False, size=size)
    if recorded is None:
        text = accuracy_txt.read_text() if accuracy_txt.is_file() else ""
        atomic_write_text(accuracy_txt, f"{text}\nhash={whole}\n")
    size = log.stat().st_size
    if size < VIEWABLE_BYTES:
        return Truncation(whole, truncated_now=recorded is None, size=size)
    with log.open("rb") as handle:
        head = handle.read(VIEWABLE_BYTES)
        handle.seek(size - VIEWABLE_BYTES)
        tail = handle.read(VIEWABLE_BYTES)
    cut = head + ELISION + tail
    atomic_write_bytes(log, cut)
    return Truncation(whole, truncated_now=True, size=len(cut))
