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
