"""Cache locks and atomic writes: exclusion across processes, timeouts, no torn files."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from contract.locks import LockTimeout, atomic_write_text, exclusive


def _hold(lock: str, ready: str, seconds: float) -> None:
    with exclusive(Path(lock)):
        Path(ready).write_text("held")
        time.sleep(seconds)


def _start_holder(tmp_path: Path, seconds: float) -> multiprocessing.process.BaseProcess:
    ready = tmp_path / "ready"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold, args=(str(tmp_path / "key.lock"), str(ready), seconds)
    )
    holder.start()
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "holder never took the lock"
        time.sleep(0.05)
    return holder


def test_second_holder_waits_until_the_first_releases(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path, 1.0)
    told: list[bool] = []
    started = time.monotonic()
    with exclusive(tmp_path / "key.lock", timeout_s=30, on_wait=lambda: told.append(True)):
        waited = time.monotonic() - started
    holder.join(10)
    assert told == [True]  # the waiter was told once that the key is busy
    assert waited > 0.3


def test_timeout_names_the_lock(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path, 3.0)
    with (
        pytest.raises(LockTimeout, match=r"key\.lock"),
        exclusive(tmp_path / "key.lock", timeout_s=0.3),
    ):
        pass
    holder.join(10)


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    holder = _start_holder(tmp_path, 60.0)
    holder.kill()
    holder.join(10)
    with exclusive(tmp_path / "key.lock", timeout_s=5):
        pass


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "new" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]
