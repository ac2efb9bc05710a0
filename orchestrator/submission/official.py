"""The MLCommons submission checker itself, run on a tree from a checkout of mlcommons/inference.

`python3 -m submission_checker.main --input ROOT --version v6.1 --csv FILE` from the checkout's
`tools/submission/`: LoadGen 6.0.17 embeds the v6.1 rules and seeds, which the checker's default
version (v5.1) rejects. Its verdict is its exit status and the `SUMMARY:` line; its error lines
say why.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.submission.layout import VERSION

CHECKER_DIR = Path("tools") / "submission"
CHECKER_MAIN = CHECKER_DIR / "submission_checker" / "main.py"
DEFAULT_TIMEOUT_S = 600
# "[2026-11-23 19:21:11,135 performance_check.py:202 ERROR] message" (the checker's log format),
# or logging's default "ERROR:name:message"
_ERROR = re.compile(
    r"^\[[^\]]* (?P<where>\S+:\d+) ERROR\] (?P<message>.*)$|^ERROR:[^:]*:(?P<m2>.*)$"
)


@dataclass(frozen=True)
class OfficialVerdict:
    command: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout
    summary: str  # the checker's SUMMARY line, or why there is none
    errors: tuple[str, ...]  # its ERROR lines, without the timestamp
    output_tail: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and "looks OK" in self.summary


def checker_root(checkout: Path) -> Path:
    """`checkout/tools/submission`, after checking it holds the checker."""
    if not (checkout / CHECKER_MAIN).is_file():
        raise ConfigError(
            f"{checkout} has no {CHECKER_MAIN}",
            key="official",
            hint="pass a checkout of github.com/mlcommons/inference (the folder holding tools/)",
        )
    return (checkout / CHECKER_DIR).resolve()


def run_official_checker(
    checkout: Path,
    tree: Path,
    *,
    version: str = VERSION,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    python: str = sys.executable,
) -> OfficialVerdict:
    """Run the checker of `checkout` on `tree` (bounded by `timeout_s`) and read its verdict."""
    cwd = checker_root(checkout)
    with tempfile.TemporaryDirectory(prefix="mlorch-checker-") as scratch:
        command = (
            python, "-m", "submission_checker.main", "--input", str(tree.resolve()),
            "--version", version, "--csv", str(Path(scratch) / "summary.csv"),
        )  # fmt: skip
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout ends all of it
        )
        try:
            output, _ = process.communicate(timeout=timeout_s)
            returncode: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            returncode = None
    return read_verdict(command, returncode, output or "", timeout_s)


def read_verdict(
    command: tuple[str, ...], returncode: int | None, output: str, timeout_s: float
) -> OfficialVerdict:
    lines = output.splitlines()
    summary = next((line for line in reversed(lines) if "SUMMARY:" in line), "")
    if returncode is None:
        summary = f"killed after {timeout_s:g} s (--official-timeout)"
    elif not summary:
        summary = f"no SUMMARY line (exit status {returncode})"
    else:
        summary = summary[summary.index("SUMMARY:") :]
    errors = []
    for line in lines:
        match = _ERROR.match(line)
        if match:
            message = match.group("message") or match.group("m2") or ""
            where = match.group("where")
            errors.append(f"{where}: {message}" if where else message)
    tail = "\n".join(lines[-20:])
    return OfficialVerdict(command, returncode, summary, tuple(errors), tail)


# lines that only repeat an error already shown ("Some ... checks failed for: X")
_FOLLOW_UP = re.compile(
    r"^(Some .*[Cc]hecks? failed for|Execution occurred in running check|NoResults |SUMMARY:)"
)
_WHERE_PREFIX = re.compile(r"^\S+\.py:\d+: ")
_SCENARIO_PATH = re.compile(
    r"(?:\S*/)?(?:closed|open|network)/[^/\s]+/results/(?P<system>[^/\s]+)/[^/\s]+/"
    r"(?P<scenario>[^/\s]+)/?"
)
SCENARIO_MARK = "<scenario>/"


def summarize_errors(errors: Sequence[str], tree: Path) -> tuple[list[str], int]:
    """The checker's error lines, each message once: paths relative to the tree, the scenario
    folder replaced by `<scenario>/` and the scenarios it occurs in listed after it; lines that
    only repeat an earlier error are left out. Returns (lines, how many were left out)."""
    prefixes = (f"{tree.resolve()}/", f"{tree}/")
    grouped: dict[str, list[str]] = {}
    left_out = 0
    systems: set[str] = set()
    for error in errors:
        message = _WHERE_PREFIX.sub("", error)
        for prefix in prefixes:
            message = message.replace(prefix, "")
        if _FOLLOW_UP.match(message):
            left_out += 1
            continue
        found = [(m["system"], m["scenario"]) for m in _SCENARIO_PATH.finditer(message)]
        systems.update(system for system, _ in found)
        template = _SCENARIO_PATH.sub(SCENARIO_MARK, message)
        grouped.setdefault(template, []).extend(f"{a}/{b}" for a, b in found[:1])
    lines = []
    for template, places in grouped.items():
        shown = [p if len(systems) > 1 else p.split("/", 1)[1] for p in dict.fromkeys(places)]
        lines.append(f"{template} [{', '.join(shown)}]" if shown else template)
    return lines, left_out
