"""The CLI as a user runs it, in this process: `main()` (the error edge included) with argv,
environment, working folder and both streams of its own. Fast-tier tests use it instead of a
`python -m orchestrator` subprocess; it returns what such a subprocess would."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path
from unittest import mock


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """`mlorch ARGS` through the console-script entry point; exit code, stdout and stderr as a
    subprocess would give them (an uncaught exception: its traceback on stderr, exit 1)."""
    from orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    environment = {"COLUMNS": str(columns), **(env or {})}
    code = 0
    with (
        mock.patch.dict(os.environ, environment),
        mock.patch.object(sys, "argv", ["mlorch", *args]),
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                err.write(exc.code + "\n")
        except BaseException:
            err.write(traceback.format_exc())
            code = 1
    return subprocess.CompletedProcess(["mlorch", *args], code, out.getvalue(), err.getvalue())


# An engine that is not there: commands that need one fail with exit 3 at once.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def mlorch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`mlorch ARGS` in this process (run_cli at the default width)."""
    return run_cli(*args, env=env, cwd=cwd)


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """Exit `code`, no traceback, exactly one `error:` line, and it says `message`."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
