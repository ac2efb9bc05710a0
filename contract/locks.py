"""Per-key file locks and atomic writes for every cache mlorch keeps (standard library only).

Host and containers share cache folders (synthetic assets, preprocessed data, models, engines),
and two `mlorch up` may fill the same key at once: whoever holds `exclusive(lock)` builds, the
other waits and then finds the result complete. Results appear atomically (write aside, rename),
so a reader never sees half a file. `flock` locks die with their process, so a killed builder
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_S = 0.2


class LockTimeout(TimeoutError):
    """The lock was held by someone else for longer than the caller would wait."""


@contextlib.contextmanager
def exclusive(
    lock_path: Path, timeout_s: float = 3600.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if missing) for the `with` block.

    `on_wait` is called once when the lock is busy (to tell the user why nothing happens).
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    # Lock files live in folders that containers (another uid) and the host share and hand
    # back and forth: keep them openable by both, whoever created them.
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    try:
        deadline = time.monotonic() + timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None and not told:
                    on_wait()
                    told = True
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"{lock_path} is held by another process for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
