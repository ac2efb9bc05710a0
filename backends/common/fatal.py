"""Ending a LoadGen test at the first SUT error (standard library only; the host parses it too).

An exception in a SUT worker thread (inference, encoding a response, QuerySamplesComplete) would
otherwise only end that thread: LoadGen keeps waiting for responses that never come, until the
host's timeout. `abort_test` ends the whole process at once instead, with the traceback on
stderr, one machine-readable line on stdout and the documented exit status `EXIT_SUT_FAILED`,
which the host reports as a failed test naming the error.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

from contract.protocol import EXIT_SUT_FAILED, FATAL_PREFIX, json_line


def abort_test(exc: BaseException, where: str) -> NoReturn:
    """Print `exc` (traceback to stderr, `mlorch-fatal {"where", "error"}` to stdout) and end
    the process with EXIT_SUT_FAILED, without unwinding: LoadGen cannot be stopped cleanly from
    a worker thread, and waiting for it is exactly what this avoids."""
    try:
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
        error = " ".join(f"{type(exc).__name__}: {exc}".split())
        sys.stdout.write(json_line(FATAL_PREFIX, {"where": where, "error": error}) + "\n")
        sys.stdout.flush()
    finally:
        os._exit(EXIT_SUT_FAILED)
