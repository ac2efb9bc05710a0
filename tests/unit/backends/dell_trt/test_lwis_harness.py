"""The LWIS harness core with null slots: batching, timeouts, round robin, errors, shutdown.

Timing assertions are generous bounds only (the test machine is shared and noisy).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from backends.dell_trt.harness import LwisHarness
from backends.dell_trt.null_engine import NullDevice, NullSlot, null_labels

WAIT_S = 20.0  # upper bound for anything that should happen "soon"


class Recorder:
    """The harness' `complete` and `on_error` callbacks, recorded."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[int], np.ndarray, float]] = []
        self.errors: list[BaseException] = []
        self._changed = threading.Condition()

    def complete(self, ids: list[int], labels: np.ndarray) -> None:
        with self._changed:
            self.batches.append((list(ids), labels.copy(), time.monotonic()))
            self._changed.notify_all()

    def on_error(self, exc: BaseException) -> None:
        with self._changed:
            self.errors.append(exc)
            self._changed.notify_all()

    @property
    def samples(self) -> int:
        return sum(len(ids) for ids, _, _ in self.batches)

    def wait_for_samples(self, count: int, timeout: float = WAIT_S) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.samples >= count, timeout):
                raise AssertionError(f"{self.samples} of {count} samples completed")

    def wait_for_error(self, timeout: float = WAIT_S) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.errors, timeout), "no error reported"


def harness(
    recorder: Recorder,
    devices: Sequence[NullDevice],
    batch_size: int,
    deque_timeout_us: int,
) -> LwisHarness:
    lwis = LwisHarness(devices, batch_size, deque_timeout_us, recorder.complete, recorder.on_error)
    lwis.start()
    return lwis


def lwis_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lwis-")]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> object:
    yield
    deadline = time.monotonic() + 5
    while lwis_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lwis_threads() == []


def test_lone_sample_leaves_after_the_deque_timeout_not_before() -> None:
    recorder = Recorder()
    lwis = harness(recorder, [NullDevice("null", 2, 8)], batch_size=8, deque_timeout_us=200_000)
    started = time.monotonic()
    lwis.issue([41], [7])
    recorder.wait_for_samples(1)
    elapsed = recorder.batches[0][2] - started
    assert 0.2 <= elapsed < 0.2 + 5.0
    assert recorder.batches[0][0] == [41]
    assert recorder.batches[0][1].tolist() == null_labels([7]).tolist()
    lwis.stop(5)


def test_full_batch_leaves_without_waiting_for_the_timeout() -> None:
    recorder = Recorder()
    lwis = harness(recorder, [NullDevice("null", 1, 4)], batch_size=4, deque_timeout_us=60_000_000)
    lwis.issue([1, 2], [1, 2])
    time.sleep(0.2)
    assert recorder.batches == []  # half a batch waits
    lwis.issue([3, 4], [3, 4])
    recorder.wait_for_samples(4, timeout=10)  # far less than the 60 s timeout
    assert [ids for ids, _, _ in recorder.batches] == [[1, 2, 3, 4]]
    lwis.stop(5)


def test_partial_batches_leave_on_timeout_and_big_issues_are_cut() -> None:
    recorder = Recorder()
    lwis = harness(recorder, [NullDevice("null", 2, 8)], batch_size=8, deque_timeout_us=50_000)
    lwis.issue(list(range(5)), list(range(5)))
    recorder.wait_for_samples(5)
    lwis.issue(list(range(100, 119)), list(range(100, 119)))
    recorder.wait_for_samples(5 + 19)
    sizes = [len(ids) for ids, _, _ in recorder.batches]
    assert sizes == [5, 8, 8, 3]
    stats = lwis.stats()
    assert (stats["batches"], stats["samples"], stats["full_batches"]) == (4, 24, 2)
    assert stats["mean_batch_size"] == pytest.approx(6.0)
    lwis.stop(5)


class JitterSlot(NullSlot):
    """A null slot whose batches take a little while (GIL released), so slots overlap."""

    def __init__(self, capacity: int, rng: random.Random) -> None:
        super().__init__(capacity)
        self._delay = rng.uniform(0, 0.002)

    def wait(self) -> np.ndarray:
        time.sleep(self._delay)
        return super().wait()


def test_every_sample_once_with_its_own_answer_under_concurrent_issues() -> None:
    rng = random.Random(1234)
    batch_size = 16
    devices = [NullDevice(f"null{n}", slots, batch_size) for n, slots in enumerate((1, 2, 3))]
    for device in devices:
        device.slots = [JitterSlot(batch_size, rng) for _ in device.slots]
    recorder = Recorder()
    lwis = harness(recorder, devices, batch_size, deque_timeout_us=1000)
    per_thread = 3000
    index_of: dict[int, int] = {}

    def issuer(number: int) -> None:
        local = random.Random(number)
        next_id = number * per_thread
        end = next_id + per_thread
        while next_id < end:
            size = min(local.randint(1, 3 * batch_size), end - next_id)
            ids = list(range(next_id, next_id + size))
            indices = [local.randrange(50_000) for _ in ids]
            index_of.update(zip(ids, indices, strict=True))
            lwis.issue(ids, indices)
            next_id += size
            if local.random() < 0.3:
                time.sleep(local.uniform(0, 0.002))

    threads = [threading.Thread(target=issuer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.wait_for_samples(4 * per_thread, timeout=60)
    lwis.stop(10)

    assert recorder.errors == []
    assert max(len(ids) for ids, _, _ in recorder.batches) <= batch_size
    completed = [i for ids, _, _ in recorder.batches for i in ids]
    assert sorted(completed) == list(range(4 * per_thread))  # each exactly once
    for ids, labels, _ in recorder.batches:
        expected = null_labels([index_of[i] for i in ids])
        assert labels.dtype == np.int32
        assert labels.tolist() == expected.tolist()
    stats = lwis.stats()
    assert stats["samples"] == 4 * per_thread
    assert all(device["samples"] > 0 for device in stats["devices"])


def test_a_big_issue_is_dealt_round_robin_and_small_ones_alternate() -> None:
    recorder = Recorder()
    devices = [NullDevice("gpu0", 2, 10), NullDevice("gpu1", 2, 10)]
    lwis = harness(recorder, devices, batch_size=10, deque_timeout_us=1000)
    lwis.issue(list(range(60)), list(range(60)))  # six chunks of ten, three per device
    recorder.wait_for_samples(60)
    per_device = [device["samples"] for device in lwis.stats()["devices"]]
    assert per_device == [30, 30]
    for n in range(4):
        lwis.issue([100 + n], [n])
    recorder.wait_for_samples(64)
    per_device = [device["samples"] for device in lwis.stats()["devices"]]
    assert per_device == [32, 32]
    lwis.stop(5)


def test_flush_sends_waiting_samples_at_once() -> None:
    recorder = Recorder()
    devices = [NullDevice("null", 2, 64)]
    lwis = harness(recorder, devices, batch_size=64, deque_timeout_us=60_000_000)
    lwis.issue(list(range(10)), list(range(10)))
    started = time.monotonic()
    lwis.flush()
    recorder.wait_for_samples(10, timeout=10)
    assert time.monotonic() - started < 10
    lwis.stop(5)


def test_stop_sends_what_waits_and_ends_every_thread() -> None:
    recorder = Recorder()
    devices = [NullDevice("a", 2, 64), NullDevice("b", 1, 64)]
    lwis = harness(recorder, devices, batch_size=64, deque_timeout_us=60_000_000)
    lwis.issue(list(range(10)), list(range(10)))
    lwis.issue(list(range(10, 13)), list(range(10, 13)))
    assert len(lwis_threads()) == 4
    lwis.stop(10)
    assert recorder.samples == 13
    assert lwis_threads() == []
    with pytest.raises(RuntimeError, match="after stop"):
        lwis.issue([99], [99])


class BlockingSlot(NullSlot):
    def __init__(self, capacity: int, release: threading.Event) -> None:
        super().__init__(capacity)
        self._release = release

    def wait(self) -> np.ndarray:
        self._release.wait()
        return super().wait()


def test_stop_raises_when_a_thread_does_not_end() -> None:
    recorder = Recorder()
    release = threading.Event()
    device = NullDevice("stuck", 1, 4)
    device.slots = [BlockingSlot(4, release)]
    lwis = harness(recorder, [device], batch_size=4, deque_timeout_us=0)
    lwis.issue([1], [1])
    with pytest.raises(RuntimeError, match="still running"):
        lwis.stop(0.3)
    release.set()
    lwis.stop(10)
    assert recorder.samples == 1


class FailingSlot(NullSlot):
    """Fails on its first batch, in submit or in wait, once every failing slot got there."""

    def __init__(self, capacity: int, where: str, together: threading.Barrier) -> None:
        super().__init__(capacity)
        self.where, self.together = where, together

    def submit(self, indices: Sequence[int]) -> None:
        if self.where == "submit":
            self.together.wait(WAIT_S)
            raise RuntimeError("engine exploded in submit")
        super().submit(indices)

    def wait(self) -> np.ndarray:
        if self.where == "wait":
            self.together.wait(WAIT_S)
            raise RuntimeError("engine exploded in wait")
        return super().wait()


@pytest.mark.parametrize("where", ["submit", "wait"])
def test_a_slot_error_reaches_on_error_once_and_stops_the_harness(where: str) -> None:
    recorder = Recorder()
    together = threading.Barrier(2)  # both devices fail at the same moment
    devices = [NullDevice("a", 1, 4), NullDevice("b", 1, 4), NullDevice("ok", 2, 4)]
    for device in devices[:2]:
        device.slots = [FailingSlot(4, where, together)]
    lwis = harness(recorder, devices, batch_size=4, deque_timeout_us=100)
    lwis.issue(list(range(64)), list(range(64)))
    recorder.wait_for_error()
    lwis.stop(10)
    assert lwis_threads() == []
    assert len(recorder.errors) == 1
    assert str(recorder.errors[0]) == f"engine exploded in {where}"
    assert lwis.failure is recorder.errors[0]
    assert lwis.stats()["errors_after_first"] == 1
    done = recorder.samples
    assert done < 64
    lwis.issue([1000], [1000])  # ignored: the harness takes no more work
    assert recorder.samples == done


def test_an_error_in_complete_reaches_on_error() -> None:
    errors: list[BaseException] = []

    def complete(ids: list[int], labels: np.ndarray) -> None:
        raise ValueError("LoadGen said no")

    lwis = LwisHarness([NullDevice("null", 2, 4)], 4, 0, complete, errors.append)
    lwis.start()
    lwis.issue(list(range(12)), list(range(12)))
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    lwis.stop(10)
    assert [str(e) for e in errors] == ["LoadGen said no"]


def test_a_slot_returning_the_wrong_number_of_labels_is_an_error() -> None:
    class ShortSlot(NullSlot):
        def wait(self) -> np.ndarray:
            return super().wait()[:-1]

    recorder = Recorder()
    device = NullDevice("short", 1, 4)
    device.slots = [ShortSlot(4)]
    lwis = harness(recorder, [device], batch_size=4, deque_timeout_us=0)
    lwis.issue([1, 2, 3], [1, 2, 3])
    recorder.wait_for_error()
    lwis.stop(10)
    assert "3 samples" in str(recorder.errors[0])
    assert recorder.batches == []


def test_settings_are_checked() -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match="capacity 8 < batch_size 16"):
        LwisHarness([NullDevice("x", 1, 8)], 16, 0, recorder.complete, recorder.on_error)
    with pytest.raises(ValueError, match="batch_size"):
        LwisHarness([NullDevice("x", 1, 8)], 0, 0, recorder.complete, recorder.on_error)
    with pytest.raises(ValueError, match="at least one"):
        LwisHarness([], 1, 0, recorder.complete, recorder.on_error)


def test_null_slot_answers_each_index_and_checks_capacity() -> None:
    slot = NullSlot(4)
    slot.submit([0, 1, 999, 12345])
    assert slot.wait().tolist() == [3, 10, (999 * 7 + 3) % 1000, (12345 * 7 + 3) % 1000]
    assert slot.wait().dtype == np.int32
    with pytest.raises(ValueError, match="capacity"):
        slot.submit([1, 2, 3, 4, 5])


SAMPLES = np.dtype([("id", "<u8"), ("index", "<u8")])  # LoadGen's QuerySample, as the native path


def query_samples(ids: range, rng: random.Random) -> np.ndarray:
    samples = np.empty(len(ids), SAMPLES)
    samples["id"] = np.arange(ids.start, ids.stop, dtype=np.uint64)
    samples["index"] = [rng.randrange(50_000) for _ in ids]
    return samples


def test_native_arrays_big_and_small_mixed_with_lists_each_sample_once() -> None:
    # The native path hands the harness views into LoadGen's QuerySample array: a big issue is
    # cut into full batches of views (none copied per sample), its remainder and small issues
    # join the waiting lists, and Python-path lists may arrive in between.
    rng = random.Random(7)
    batch_size = 32
    devices = [NullDevice(f"gpu{n}", 2, batch_size) for n in range(3)]
    recorder = Recorder()
    lwis = harness(recorder, devices, batch_size, deque_timeout_us=500)
    index_of: dict[int, int] = {}
    next_id = 0
    for size in (1000, 5, 31, 32, 33, 7, 2048 + 17, 1):
        if rng.random() < 0.5 or size > batch_size:
            samples = query_samples(range(next_id, next_id + size), rng)
            index_of.update(zip(samples["id"].tolist(), samples["index"].tolist(), strict=True))
            lwis.issue(samples["id"], samples["index"])
        else:
            ids = list(range(next_id, next_id + size))
            indices = [rng.randrange(50_000) for _ in ids]
            index_of.update(zip(ids, indices, strict=True))
            lwis.issue(ids, indices)
        next_id += size
    recorder.wait_for_samples(next_id)
    lwis.stop(5)
    assert recorder.errors == []
    completed = sorted(int(i) for ids, _, _ in recorder.batches for i in ids)
    assert completed == list(range(next_id))
    assert max(len(ids) for ids, _, _ in recorder.batches) <= batch_size
    for ids, labels, _ in recorder.batches:
        assert labels.tolist() == null_labels([index_of[int(i)] for i in ids]).tolist()
    stats = lwis.stats()
    assert stats["samples"] == next_id
    assert all(device["samples"] > 0 for device in stats["devices"])


def test_a_big_native_issue_is_handed_out_as_views_in_full_batches() -> None:
    seen: list[np.ndarray] = []

    class Keep(NullSlot):
        def submit(self, indices: Sequence[int]) -> None:
            seen.append(indices)  # type: ignore[arg-type]
            super().submit(indices)

    device = NullDevice("gpu0", 2, 64)
    device.slots = [Keep(64), Keep(64)]
    recorder = Recorder()
    lwis = harness(recorder, [device], batch_size=64, deque_timeout_us=0)
    samples = query_samples(range(640), random.Random(3))
    lwis.issue(samples["id"], samples["index"])
    recorder.wait_for_samples(640)
    lwis.stop(5)
    assert [len(batch) for batch in seen] == [64] * 10
    assert all(np.shares_memory(batch, samples) for batch in seen)
    assert lwis.stats()["full_batches"] == 10
