"""Containers as bounded, always-cleaned-up runs.

`ContainerSpec` says what a container is (image, command, mounts, user, labels, GPUs, limits); the
same object feeds the docker SDK and compose.yaml, so the two cannot drift apart.
`run_to_completion` creates, starts, streams logs, waits with a deadline and removes the container
on success, failure, timeout and Ctrl-C. Containers are labelled with their owning mlorch process
(`orchestrator.engine.owner`) so that another mlorch's `down` leaves them alone while it lives.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.protocol import EXIT_SUT_FAILED, read_fatal
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.owner import Owner
from orchestrator.errors import (
    ENOSPC_TEXTS,
    ContainerFailed,
    DiskFull,
    EngineWentAway,
    WaitTimeout,
    no_space,
)

POLL_INTERVAL_S = 0.25
LOG_JOIN_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5
TAIL_LINES = 30
# Enough for onnxruntime's and the harness' threads on large hosts; stops a runaway fork or thread
# loop from taking the host's pid space. Threads count against it.
PIDS_LIMIT = 4096


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """What one mlorch container is; hardened by default."""

    image: str
    command: tuple[str, ...]
    name: str
    user: str
    mounts: tuple[Mount, ...]
    labels: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = "/tmp"
    gpus: bool = False
    gpu_access: str = "hook"  # how GPUs are requested: hook | cdi | runtime (orchestrator.host.gpu)
    network_disabled: bool = True
    read_only_rootfs: bool = True
    tmpfs: dict[str, str] = field(default_factory=lambda: {"/tmp": "rw,exec,size=1g"})
    shm_size: str = "1g"
    pids_limit: int = PIDS_LIMIT
    mem_limit: int | None = None  # bytes; swap is not allowed beyond it

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `client.containers.create`; the labels name this process as
        the owner."""
        from docker.types import Mount as SdkMount

        kwargs: dict[str, Any] = {
            "image": self.image,
            "command": list(self.command),
            "name": self.name,
            "user": self.user,
            "labels": {**self.labels, **Owner.current().labels()},
            "environment": dict(self.environment),
            "working_dir": self.working_dir,
            "mounts": [
                SdkMount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
                for m in self.mounts
            ],
            "privileged": False,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": self.read_only_rootfs,
            "tmpfs": dict(self.tmpfs),
            "shm_size": self.shm_size,
            "detach": True,
            "init": True,  # forwards signals to the harness and reaps its worker processes
            "pids_limit": self.pids_limit,
        }
        if self.mem_limit is not None:
            kwargs["mem_limit"] = self.mem_limit
            kwargs["memswap_limit"] = self.mem_limit
        if self.entrypoint is not None:
            kwargs["entrypoint"] = list(self.entrypoint)
        if self.network_disabled:
            kwargs["network_mode"] = "none"
        if self.gpus:
            gpu_kwargs, gpu_env = _gpu_request(self.gpu_access)
            kwargs.update(gpu_kwargs)
            kwargs["environment"].update(gpu_env)
        return kwargs


def _gpu_request(access: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(create kwargs, environment) asking for every GPU the way this engine can give them
    (hook: --gpus all; cdi: nvidia.com/gpu=all; runtime: the legacy nvidia runtime)."""
    from docker.types import DeviceRequest

    if access == "cdi":
        request = DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])
        return {"device_requests": [request]}, {}
    if access == "runtime":
        env = {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
        return {"runtime": "nvidia"}, env
    return {"device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])]}, {}


@dataclass(frozen=True)
class ContainerOutcome:
    exit_status: int
    seconds: float
    log_tail: str


class _LogPump(threading.Thread):
    """Follows a container's output into a file and a per-line callback."""

    def __init__(self, container: Any, log_file: Path, on_line: Callable[[str], None]) -> None:
        super().__init__(name="container-logs", daemon=True)
        self.container = container
        self.log_file = log_file
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.fatal: dict[str, str] | None = None  # the SUT's `mlorch-fatal` report, if any

    def run(self) -> None:
        pending = b""
        with self.log_file.open("ab") as sink, contextlib.suppress(Exception):
            for chunk in self.container.logs(stream=True, follow=True):
                sink.write(chunk)
                sink.flush()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._emit(raw)
            if pending:
                self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        self.tail.append(line)
        self.fatal = read_fatal(line) or self.fatal
        with contextlib.suppress(Exception):
            self.on_line(line)


def run_to_completion(
    engine: DockerEngine,
    spec: ContainerSpec,
    *,
    timeout_s: float,
    log_file: Path,
    on_line: Callable[[str], None],
    what: str,
    on_started: Callable[[], None] | None = None,
) -> ContainerOutcome:
    """Run `spec` to its end within `timeout_s`; the container never outlives this call.

    `on_started` is called as soon as the engine has started the container (telemetry's zero)."""

    log_file.parent.mkdir(parents=True, exist_ok=True)
    container = None
    pump: _LogPump | None = None
    started = time.monotonic()
    try:
        with engine.mapped_errors(f"starting {what}"):
            try:
                container = engine.client.containers.create(**spec.create_kwargs())
            except KeyboardInterrupt:
                # Interrupted inside `create`: the engine may make the container anyway (the
                # request was sent); its name, unique to the run and test, finds it for removal.
                container = _created_anyway(engine, spec.name)
                raise
            pump = _LogPump(container, log_file, on_line)
            container.start()
            if on_started is not None:
                on_started()
            pump.start()
        deadline = started + timeout_s
        state: dict[str, Any] = {}
        while True:
            with engine.mapped_errors(f"waiting for {what}"):
                container.reload()
                state = container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    container.kill()
                pump.join(LOG_JOIN_TIMEOUT_S)
                raise WaitTimeout(
                    f"{what} did not finish within {timeout_s:.0f} s",
                    exit_status=None,
                    log_tail="\n".join(pump.tail),
                    hint="raise --timeout, or check the container log in the run folder",
                )
            time.sleep(POLL_INTERVAL_S)
        pump.join(LOG_JOIN_TIMEOUT_S)
        status = int(state.get("ExitCode", -1))
        tail = "\n".join(pump.tail)
        if status != 0 and _engine_stopping(engine, status, bool(state.get("OOMKilled"))):
            raise EngineWentAway(
                f"the Docker engine stopped during the {what} (its container ended with "
                f"status {status})"
            )
        if status != 0:
            raise _failure(spec, what, status, bool(state.get("OOMKilled")), tail, pump.fatal)
        return ContainerOutcome(status, time.monotonic() - started, tail)
    finally:
        if container is not None:
            # Removal must happen even on Ctrl-C: shield it from a second interrupt.
            _remove_quietly(engine, container)


SIGNALLED = (128 + 15, 128 + 9)  # SIGTERM, SIGKILL: what a stopping dockerd does to containers


def _engine_stopping(engine: DockerEngine, status: int, oom: bool) -> bool:
    """Whether the engine is going away under the test: it no longer answers, or — for a
    container ended by a signal, which a stopping dockerd sends before it closes its socket —
    it stops answering within a few seconds."""
    if status not in SIGNALLED or oom:
        return not engine.answers()
    return engine.went_away()


def _failure(
    spec: ContainerSpec,
    what: str,
    status: int,
    oom: bool,
    tail: str,
    fatal: dict[str, str] | None,
) -> ContainerFailed | DiskFull:
    """The error for a container that exited non-zero, with the likeliest cause as the hint."""
    message = f"{what} exited with status {status}"
    hint = "the container log tail is above; the full log is in the run folder"
    full = _disk_full(spec, what, tail, fatal)
    if full is not None:
        return full
    if status == EXIT_SUT_FAILED and fatal is not None:
        message = f"{what}: the SUT failed in {fatal['where']}: {fatal['error']}"
        hint = "the SUT ended the test at its first error; its traceback is in the log above"
    elif oom:
        hint = "the container ran out of memory; lower --max-batchsize or --count" + (
            ", or raise --memory" if spec.mem_limit is not None else ""
        )
    elif status == 137:
        hint = "the container was killed (SIGKILL: `docker kill`, OOM or a timeout)"
    elif "can't start new thread" in tail or "Resource temporarily unavailable" in tail:
        hint = f"the container may have hit its limit of {spec.pids_limit} processes and threads"
    return ContainerFailed(message, exit_status=status, log_tail=tail, hint=hint)


def _disk_full(
    spec: ContainerSpec, what: str, tail: str, fatal: dict[str, str] | None
) -> DiskFull | None:
    """A container that failed writing to a full disk: the error names the host folder it
    writes to (its writable mount) and that folder's free space; when that folder has room, the
    container's own space (/tmp, /dev/shm) is what filled."""
    said = tail + " " + " ".join((fatal or {}).values())
    if not any(text in said for text in ENOSPC_TEXTS):
        return None
    full = [m.source for m in spec.mounts if not m.read_only and not _has_room(m.source)]
    if full:
        return no_space(full[0], f"in the {what}")
    return DiskFull(
        f"no space left on device in the {what}, inside the container: its /tmp "
        f"({spec.tmpfs.get('/tmp', 'tmpfs')}) or /dev/shm ({spec.shm_size}) filled",
        hint="lower --count or --max-batchsize; the folders it writes to on the host have room",
    )


ROOM_BYTES = 64 << 20  # a writable mount with less free than this is where ENOSPC came from


def _has_room(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free >= ROOM_BYTES
    except OSError:
        return False


CREATED_ANYWAY_WAIT_S = 3.0  # how long an interrupted create may still be finishing in the engine


def _created_anyway(engine: DockerEngine, name: str) -> Any | None:
    """The container `name` if the engine made it after all (polled briefly: an interrupted
    request may still be completing there), else None."""
    from docker.errors import DockerException, NotFound
    from requests.exceptions import RequestException

    deadline = time.monotonic() + CREATED_ANYWAY_WAIT_S
    while True:
        try:
            return engine.client.containers.get(name)
        except KeyboardInterrupt:
            pass  # a second interrupt: keep looking, the clean-up is bounded
        except NotFound:
            pass
        except (DockerException, RequestException):
            return None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


REMOVE_TRIES = 6  # a removal the engine refuses (the container still starting) is tried again
REMOVE_RETRY_S = 0.5


def _remove_quietly(engine: DockerEngine, container: Any) -> None:
    """Remove the container, whatever interrupted the test. An engine that refuses (an
    interrupt that landed while the container was starting: the start is still going on in the
    engine) is asked again for a few seconds; an engine that is gone leaves it to the next
    `up`/`down`, which reap it."""
    from docker.errors import APIError, DockerException
    from requests.exceptions import RequestException

    for attempt in range(REMOVE_TRIES):
        try:
            engine.remove_container(container)
            return
        except KeyboardInterrupt:
            continue
        except APIError:  # the engine answered, and refused for now
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(REMOVE_RETRY_S * (attempt + 1))
        except (DockerException, RequestException):
            return
