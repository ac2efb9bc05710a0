"""Which mlorch process owns a container, and whether that process is still alive.

Every container mlorch creates carries its owner's host name, pid, boot id and process start time
(clock ticks after boot, /proc/<pid>/stat). `mlorch down` and the start of `mlorch up` remove only
containers whose owner is gone, so a second mlorch on the same host is never disturbed. The start
time and boot id stop a recycled pid (or a pid from before a reboot) passing for the owner.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def process_started(pid: int) -> str | None:
    """Start time of `pid` in clock ticks after boot; None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: count from the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]  # field 22 of the whole line


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    boot_id: str
    started: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, boot_id(), process_started(pid) or "")

    def labels(self) -> dict[str, str]:
        return {
            L.OWNER_HOST: self.host,
            L.OWNER_PID: str(self.pid),
            L.OWNER_BOOT_ID: self.boot_id,
            L.OWNER_STARTED: self.started,
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Owner | None:
        try:
            return cls(
                labels[L.OWNER_HOST],
                int(labels[L.OWNER_PID]),
                labels[L.OWNER_BOOT_ID],
                labels[L.OWNER_STARTED],
            )
        except (KeyError, ValueError):
            return None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class OwnerState(Enum):
    ALIVE = "alive"  # the owning mlorch still runs: never touched without --all
    GONE = "gone"  # the owner exited or was killed (or the host rebooted): an orphan
    UNKNOWN = "unknown"  # no owner labels (older mlorch, compose): an orphan for `down` only
    ELSEWHERE = "elsewhere"  # owned by an mlorch on another host sharing this engine


def owner_state(owner: Owner | None, here: Owner) -> OwnerState:
    """Whether `owner` is alive, judged from the host `here` runs on."""
    if owner is None:
        return OwnerState.UNKNOWN
    if owner.host != here.host:
        return OwnerState.ELSEWHERE
    if owner.boot_id != here.boot_id:
        return OwnerState.GONE
    started = process_started(owner.pid)
    return OwnerState.ALIVE if started is not None and started == owner.started else OwnerState.GONE


@dataclass(frozen=True)
class Owned:
    """One mlorch container, its owner (from its labels) and that owner's state."""

    container: Any
    owner: Owner | None
    state: OwnerState

    @property
    def name(self) -> str:
        return str(self.container.name)

    def why(self) -> str:
        """Why this container is (or would be) removed, or why it is kept."""
        return {
            OwnerState.ALIVE: f"its mlorch ({self.owner}) is still running",
            OwnerState.GONE: f"its mlorch ({self.owner}) is gone",
            OwnerState.UNKNOWN: "no owning mlorch recorded",
            OwnerState.ELSEWHERE: f"owned by an mlorch on another host ({self.owner})",
        }[self.state]


@dataclass(frozen=True)
class Sorted:
    """mlorch's containers split by what may be done with them."""

    removable: list[Owned]
    kept: list[Owned]


def sort_containers(
    containers: list[Any], *, force: bool, include_unowned: bool, here: Owner | None = None
) -> Sorted:
    """Orphans (owner gone; unowned too when `include_unowned`) are removable; with `force`
    every container is."""
    here = here or Owner.current()
    removable: list[Owned] = []
    kept: list[Owned] = []
    for container in containers:
        owner = Owner.from_labels(dict(container.labels or {}))
        item = Owned(container, owner, owner_state(owner, here))
        orphan = item.state is OwnerState.GONE or (
            include_unowned and item.state is OwnerState.UNKNOWN
        )
        (removable if force or orphan else kept).append(item)
    return Sorted(removable, kept)


def remove_orphans(engine: DockerEngine, *, force: bool = False, include_unowned: bool) -> Sorted:
    """Remove mlorch's containers whose owner is gone (every one with `force`)."""
    with engine.mapped_errors("removing containers"):
        found = sort_containers(
            engine.labelled_containers(), force=force, include_unowned=include_unowned
        )
        for item in found.removable:
            engine.remove_container(item.container)
    return found
