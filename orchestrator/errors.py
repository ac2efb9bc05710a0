"""One exception tree for mlorch; the CLI edge maps each class to one line and an exit code."""

from __future__ import annotations


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


class Interrupted(MlorchError):
    """The user interrupted a run (Ctrl-C or SIGTERM)."""

    exit_code = 130
