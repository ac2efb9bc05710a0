"""The lines a container prints for the host, and the exit statuses that carry meaning.

Containers talk to the host through their log: ordinary lines are shown to the user; a line
that starts with one of these prefixes is read by the host instead. Each prefix is defined here
once, with the one function that writes its line and the one that reads it back.
"""

from __future__ import annotations

import json
from typing import Any

# `mlorch-progress DONE TODO` (absolute) or `mlorch-progress +N` (a step): drive the host's bar.
PROGRESS_PREFIX = "mlorch-progress"
# `mlorch-bad-image <relpath>\t<reason>`: one undecodable image of `prepare`, which then exits
# with BAD_IMAGES_EXIT (sysexits' EX_DATAERR), so the host tells damaged data from a crash.
BAD_IMAGE_PREFIX = "mlorch-bad-image"
BAD_IMAGES_EXIT = 65
# `mlorch-fatal {"where", "error"}`: a SUT aborted its LoadGen test (backends.common.fatal) and
# exits with EXIT_SUT_FAILED (distinct from Python's 1, argparse's 2 and the 128+N of signals).
FATAL_PREFIX = "mlorch-fatal"
EXIT_SUT_FAILED = 86
# `mlorch-guard {json}`: one engine's FP32 agreement, printed by dell-trt's engines step.
GUARD_PREFIX = "mlorch-guard"
# `mlorch-throughput {json}`: the raw engine's samples/s (the `throughput` command).
THROUGHPUT_PREFIX = "mlorch-throughput"
# `mlorch-probe {json}`: what a base image offers (python, glibc, CUDA, TensorRT). Printed by a
# script the host runs in the bare base image, which has no mlorch code to import this from.
PROBE_PREFIX = "mlorch-probe"


def json_line(prefix: str, payload: dict[str, Any]) -> str:
    """`<prefix> {json}`: one line, whatever the payload holds."""
    return f"{prefix} {json.dumps(payload)}"


def read_json_line(prefix: str, line: str) -> dict[str, Any] | None:
    """The payload of a `<prefix> {json}` line; None for any other line or a damaged payload."""
    head = prefix + " "
    if not line.startswith(head):
        return None
    try:
        data = json.loads(line[len(head) :])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def last_json_line(prefix: str, text: str) -> dict[str, Any] | None:
    """The payload of the last `<prefix> {json}` line of a log, None when there is none."""
    found = None
    for line in text.splitlines():
        found = read_json_line(prefix, line) or found
    return found


def progress_line(done: int, todo: int | None = None) -> str:
    """`DONE TODO` (absolute) when `todo` is given, else `+DONE` (a step)."""
    return f"{PROGRESS_PREFIX} {done} {todo}" if todo is not None else f"{PROGRESS_PREFIX} +{done}"


def read_progress(line: str, last: int) -> int | None:
    """The step a progress line reports, given the last absolute count; None otherwise."""
    parts = line.split()
    if len(parts) < 2 or parts[0] != PROGRESS_PREFIX:
        return None
    token = parts[1]
    try:
        return int(token[1:]) if token.startswith("+") else int(token) - last
    except ValueError:
        return None


def bad_image_line(relpath: str, reason: str) -> str:
    return f"{BAD_IMAGE_PREFIX} {relpath}\t{reason}"


def read_bad_image(line: str) -> tuple[str, str] | None:
    """(relpath, reason) of a bad-image line, None for any other line."""
    head = BAD_IMAGE_PREFIX + " "
    if not line.startswith(head):
        return None
    relpath, _, reason = line[len(head) :].partition("\t")
    return relpath, reason


def read_fatal(line: str) -> dict[str, str] | None:
    """The report of a `mlorch-fatal` line ({"where", "error"}), None for any other line."""
    data = read_json_line(FATAL_PREFIX, line)
    if data is None:
        return None
    return {"where": str(data.get("where", "?")), "error": str(data.get("error", "?"))}
