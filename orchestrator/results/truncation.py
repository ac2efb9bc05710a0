"""Truncation of an accuracy log for a submission tree, with the official semantics.

The full `mlperf_log_accuracy.json` of a 50 000-image run is megabytes; a submission keeps its
first and last 4 KiB and records the sha256 of the full file as a `hash=` line in accuracy.txt.
TEST01's verification needs the full log: verify first, truncate after (in the tree, never in the
run folder, which keeps the full log; `require_untruncated` refuses a log already cut).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from contract.digest import file_sha256
from contract.locks import atomic_write_bytes, atomic_write_text
from orchestrator.errors import ResultError
from orchestrator.results.loadgen_log import ACCURACY_LOG

ACCURACY_TXT = "accuracy.txt"
VIEWABLE_BYTES = 4096  # kept from each end
MAX_TRUNCATED_BYTES = 10 * 1024  # what the checker accepts
ELISION = b"\n\n...\n\n"
_HASH_LINE = re.compile(r"^hash=(\w+)$", re.MULTILINE)


def recorded_hash(accuracy_txt: str) -> str | None:
    """The sha256 an accuracy.txt records for its full log (`hash=` line), if any."""
    match = _HASH_LINE.search(accuracy_txt)
    return match.group(1) if match else None


def truncate_accuracy_log(accuracy_dir: Path, *, create_accuracy_txt: bool = False) -> str:
    """Append `hash=<sha256 of the full log>` to accuracy_dir/accuracy.txt and cut the log to
    its first and last 4 KiB. Returns the hash.

    accuracy.txt must exist (the score comes first), except with `create_accuracy_txt` (a TEST01
    folder, whose sampled log is not scored: its accuracy.txt holds only the hash). Idempotent: a
    folder whose accuracy.txt has a hash and whose log is already small is left as it is. A log
    of 8 KiB or less is kept whole (nothing to cut) but still hashed.
    """
    log = accuracy_dir / ACCURACY_LOG
    txt = accuracy_dir / ACCURACY_TXT
    if not txt.is_file() and not create_accuracy_txt:
        raise ResultError(f"{txt} is missing", hint="score the accuracy log before truncating it")
    try:
        data = log.read_bytes()
    except OSError as exc:
        raise ResultError(f"cannot read {log}: {exc}") from exc
    text = txt.read_text() if txt.is_file() else ""
    known = recorded_hash(text)
    if known is not None and len(data) <= MAX_TRUNCATED_BYTES:
        return known
    digest = file_sha256(log)
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write_text(txt, f"{text}hash={digest}\n")
    if len(data) > 2 * VIEWABLE_BYTES:
        atomic_write_bytes(log, data[:VIEWABLE_BYTES] + ELISION + data[-VIEWABLE_BYTES:])
    return digest


def is_truncated(accuracy_dir: Path) -> bool:
    """True when the folder's accuracy log is no longer the whole log of its run.

    A recorded hash the log no longer matches means it was cut (a small log the truncation kept
    whole still matches); a log without a hash is cut when it is small, holds the elision mark
    and is no longer JSON.
    """
    log = accuracy_dir / ACCURACY_LOG
    if not log.is_file():
        return False
    txt = accuracy_dir / ACCURACY_TXT
    recorded = recorded_hash(txt.read_text(errors="replace")) if txt.is_file() else None
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
