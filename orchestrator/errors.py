"""One exception tree for mlorch; the CLI edge maps each class to one line and an exit code."""

from __future__ import annotations

import errno
import traceback
from pathlib import Path


class MlorchError(Exception):
    """Base of every error mlorch reports to a user."""

    exit_code = 1
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    @property
    def details(self) -> str:
        """Supporting text shown above the error line (log tails); empty by default."""
        return ""


class ConfigError(MlorchError):
    """A flag, config file key or value is invalid."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class EngineUnavailable(MlorchError):
    """The Docker engine cannot be reached."""

    exit_code = 3
    default_hint = (
        "start the engine (`dockerd &` as root, or `systemctl start docker`) and check "
        "`docker info`; `mlorch doctor` lists what is missing"
    )


class EngineWentAway(EngineUnavailable):
    """The Docker engine stopped answering during a run: what finished is kept."""

    default_hint = (
        "start the engine again (`systemctl start docker`, or `dockerd &` as root); the tests "
        "that finished are kept in the run folder, and the next `up` or `down` removes what the "
        "engine left behind"
    )


class ImageError(MlorchError):
    """A base image cannot be pulled, bootstrapped or probed."""

    exit_code = 4


class BuildFailed(MlorchError):
    """`docker build` of a rendered Dockerfile failed."""

    exit_code = 4

    def __init__(self, reason: str, build_log: str = "", *, hint: str | None = None) -> None:
        super().__init__(f"image build failed: {reason}", hint=hint)
        self.reason = reason
        self.build_log = build_log

    @property
    def details(self) -> str:
        return self.build_log


class WheelhouseError(MlorchError):
    """Python wheels for the image could not be downloaded or are missing offline."""

    exit_code = 4


class AssetError(MlorchError):
    """Model or dataset missing, corrupt or empty."""

    exit_code = 5


class DamagedDataset(AssetError):
    """Dataset lines or images that cannot be used; `summary` lists them per kind."""

    default_hint = "fix them, or pass --skip-bad to run without them (not submission-valid)"

    def __init__(self, message: str, summary: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.summary = summary

    @property
    def details(self) -> str:
        return self.summary


class ContainerFailed(MlorchError):
    """A container mlorch started exited non-zero."""

    exit_code = 6

    def __init__(
        self, message: str, *, exit_status: int | None, log_tail: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_status = exit_status
        self.log_tail = log_tail

    @property
    def details(self) -> str:
        return self.log_tail


class WaitTimeout(ContainerFailed):
    """A bounded wait on a container ran out."""

    exit_code = 7


class ResultError(MlorchError):
    """LoadGen output is missing or cannot be parsed."""

    exit_code = 8


class DiskFull(MlorchError):
    """Not enough free disk for the step that comes next."""

    exit_code = 9


class GpuUnavailable(MlorchError):
    """--device cuda cannot work on this host (no GPU, no container GPU support, old driver)."""

    exit_code = 10


class AccuracyGuardFailed(MlorchError):
    """A built engine or quantized model disagrees with the FP32 model too often."""

    exit_code = 11


class PreflightFailed(MlorchError):
    """`mlorch check` found rules a run would break, or problems in a submission tree."""

    exit_code = 12


class SlurmError(MlorchError):
    """A Slurm command is missing, refused, or did not answer (campaigns)."""

    exit_code = 13


class CampaignIncomplete(MlorchError):
    """A campaign wait ran out, or units are left without a complete attempt."""

    exit_code = 14


class BackendsFailed(MlorchError):
    """Some backends of a multi-backend `up` failed; the others ran and the comparison was
    written. Exits with the first failure's own code (3 engine, 6 container, ...)."""

    def __init__(self, failures: list[tuple[str, MlorchError]], total: int, report: str) -> None:
        named = ", ".join(name for name, _ in failures)
        super().__init__(
            f"{len(failures)} of {total} backends failed: {named} (errors above)",
            hint=f"the comparison shows what every backend did: {report}",
        )
        self.failures = failures
        self.exit_code = failures[0][1].exit_code


class InternalError(MlorchError):
    """An exception mlorch did not expect: a bug, or a case it does not handle yet.

    The traceback is saved to a file (the run folder for `up`) so the terminal shows one line.
    """

    exit_code = 70  # EX_SOFTWARE

    def __init__(self, message: str, *, traceback_file: Path | None = None) -> None:
        where = f"the traceback is in {traceback_file}; " if traceback_file else ""
        super().__init__(
            message,
            hint=f"{where}rerun with --debug to see it here, and report it if it is a bug",
        )
        self.traceback_file = traceback_file

    @classmethod
    def wrap(cls, exc: BaseException, traceback_file: Path | None) -> InternalError:
        """The error for `exc`; the traceback is first written to `traceback_file` if given."""
        saved = traceback_file if traceback_file and save_traceback(exc, traceback_file) else None
        return cls(f"unexpected error: {describe(exc)}", traceback_file=saved)


class Interrupted(MlorchError):
    """The user interrupted a run (Ctrl-C, SIGTERM, or SIGHUP when the terminal closed)."""

    exit_code = 130


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def save_traceback(exc: BaseException, path: Path) -> bool:
    """Write the full traceback of `exc` to `path`; False when that is impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
    except OSError:
        return False
    return True


def disk_full(exc: OSError, folder: Path | None = None) -> DiskFull | None:
    """The DiskFull error for an ENOSPC `exc` (naming the folder and its free space: the file's,
    else `folder`, where the work was writing), None for any other OSError."""
    if exc.errno != errno.ENOSPC:
        return None
    if exc.filename:
        return no_space(Path(str(exc.filename)).parent, f"writing {exc.filename}")
    if folder is not None:
        return no_space(folder, "writing")
    return DiskFull(f"no space left on device: {exc}", hint=DISK_HINT)


DISK_HINT = "free disk space there, or point --runs-dir / MLORCH_CACHE at a larger disk"
ENOSPC_TEXTS = ("No space left on device", "[Errno 28]", "ENOSPC")


def no_space(folder: Path, doing: str) -> DiskFull:
    """The DiskFull error for running out of space in `folder` while `doing` something."""
    return DiskFull(f"no space left on device {doing}: {folder} has {free_text(folder)}",
                    hint=DISK_HINT)  # fmt: skip


def free_text(folder: Path) -> str:
    """'12.3 MiB free' for the filesystem of `folder` (or its nearest existing parent)."""
    from orchestrator.paths import free_bytes

    try:
        free = float(free_bytes(folder))
    except OSError:
        return "an unknown amount free"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit} free" if unit == "B" else f"{free:.1f} {unit} free"
        free /= 1024
    return f"{free:.1f} GiB free"
