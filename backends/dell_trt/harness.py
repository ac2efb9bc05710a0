"""LWIS-style batching core of dell-trt, engine-independent (pure Python + numpy).

LoadGen's issue callback only enqueues: samples go to one lane per inference device (round
robin: a big issue in batch-sized chunks, a small one whole). Per lane a batcher thread takes a
free slot, then forms a batch of up to `batch_size` samples, waiting at most `deque_timeout_us`
after the first waiting sample (flush() and stop() send at once), and submits it; a completion
thread waits for the slots in FIFO order, hands (ids, labels) to `complete` (one call per batch)
and returns the slot to the lane's free pool. Taking the slot before forming the batch lets the
samples that arrive while every slot is busy fill the next batch.

Everything per sample is slicing or C-level list work: on a 2-core host the GIL is shared with
LoadGen's issue thread, so every microsecond spent here is latency for the next issue.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any, Protocol

import numpy as np


class Slot(Protocol):
    """One copy stream (GPU) or one worker (CPU) with buffers for up to `capacity` samples.

    The harness gives a slot one batch at a time and waits for it before reusing it.
    """

    capacity: int

    def submit(self, indices: Sequence[int]) -> None:
        """Gather the QSL samples at `indices` and start inference; must not block on it."""
        ...

    def wait(self) -> np.ndarray:
        """Block (GIL released) until the batch is done; top-1 labels, int32, one per index.

        The array may be a view into the slot's output buffer, valid until the next submit.
        Raises on engine failure.
        """
        ...


class InferenceDevice(Protocol):
    name: str
    slots: Sequence[Slot]

    def close(self) -> None: ...


# ids of a completed batch: a list (Python issue path) or a uint64 array view (native path)
CompleteFn = Callable[[Any, np.ndarray], None]
ErrorFn = Callable[[BaseException], None]

# Taken samples are dropped from the front of a lane's lists once they are at least this many
# and at least half of the list (amortised O(1) per sample, no per-batch memmove).
_COMPACT_AT = 8192


class _Lane:
    """One device: its waiting samples, free slots, batcher and completion threads."""

    def __init__(
        self,
        harness: LwisHarness,
        number: int,
        device: InferenceDevice,
        batch_size: int,
        timeout_s: float,
    ) -> None:
        self.harness = harness
        self.number = number
        self.device = device
        self.name = device.name
        self.slot_count = len(device.slots)
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.mutex = threading.Lock()
        # Binary wake-up signal: locked = no wake-up pending. Released by a producer only when
        # the batcher sleeps (`sleeping`), so a busy batcher costs the issue thread nothing.
        self.signal = threading.Lock()
        self.signal.acquire()
        self.sleeping = False
        self.drain = False  # flush(): send what waits without waiting for the timeout
        self.closing = False  # stop(): drain, then end the threads
        self.aborted = False  # failure: end the threads, send nothing more
        # Waiting samples: ids[head:] / indices[head:]. Positions in `ends` are absolute
        # (list position + base) so that compaction never rewrites them.
        self.ids: list[int] = []
        self.indices: list[int] = []
        self.head = 0
        self.base = 0
        self.ends: list[int] = []  # absolute end position of each put, ascending
        self.times: list[float] = []  # monotonic arrival time of each put
        self.put_head = 0  # first put that still has waiting samples
        # Full batches cut from a big issue of the native path: (ids, indices) array views into
        # LoadGen's QuerySample array, taken whole, before the waiting samples.
        self.ready: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.ready_samples = 0
        self.free: SimpleQueue[Slot | None] = SimpleQueue()
        for slot in device.slots:
            self.free.put(slot)
        self.inflight: SimpleQueue[tuple[Slot, Any] | None] = SimpleQueue()
        # Written by one thread each; read by stats().
        self.max_waiting = 0
        self.batches = 0
        self.samples = 0
        self.full_batches = 0
        self.threads = (
            threading.Thread(target=self._batch_loop, name=f"lwis-batch-{number}", daemon=True),
            threading.Thread(
                target=self._complete_loop, name=f"lwis-complete-{number}", daemon=True
            ),
        )

    # -- producer side (issue thread) -------------------------------------------------------

    def put(self, ids: list[int], indices: list[int], now: float) -> None:
        """Append waiting samples; the lane owns the lists from here on."""
        with self.mutex:
            # `ids` is empty exactly when nothing waits: _take drops fully taken lists.
            was_empty = not self.ids
            if was_empty:  # adopt the lists: no copy of an Offline-sized issue
                self.ids = ids
                self.indices = indices
            else:
                self.ids += ids
                self.indices += indices
            size = len(self.ids)
            self.ends.append(self.base + size)
            self.times.append(now)
            waiting = size - self.head
            if waiting > self.max_waiting:
                self.max_waiting = waiting
            if self.sleeping and (was_empty or waiting >= self.batch_size):
                self.sleeping = False
                self.signal.release()

    def put_ready(self, ids: np.ndarray, indices: np.ndarray) -> None:
        """Append one full batch (array views; the lane keeps them as they are)."""
        with self.mutex:
            self.ready.append((ids, indices))
            self.ready_samples += len(ids)
            waiting = len(self.ids) - self.head + self.ready_samples
            if waiting > self.max_waiting:
                self.max_waiting = waiting
            if self.sleeping:
                self.sleeping = False
                self.signal.release()

    def wake(self, *, closing: bool = False, aborted: bool = False) -> None:
        with self.mutex:
            self.drain = True
            self.closing = self.closing or closing
            self.aborted = self.aborted or aborted
            if self.sleeping:
                self.sleeping = False
                self.signal.release()
        if aborted:
            self.free.put(None)  # a batcher blocked on a free slot
            self.inflight.put(None)  # an idle completion thread

    # -- batcher thread -----------------------------------------------------------------------

    def _batch_loop(self) -> None:
        try:
            free, inflight = self.free, self.inflight
            while True:
                slot = free.get()
                if slot is None:
                    return
                batch = self._next_batch()
                if batch is None:
                    return
                ids, indices = batch
                slot.submit(indices)
                inflight.put((slot, ids))
        except BaseException as exc:
            self.harness._fail(exc)
        finally:
            self.inflight.put(None)

    def _next_batch(self) -> tuple[Any, Any] | None:
        """Block until a batch is due; None when the lane is closed and empty or aborted."""
        batch_size = self.batch_size
        mutex, signal = self.mutex, self.signal
        mutex.acquire()
        try:
            while True:
                if self.aborted:
                    return None
                if self.ready:
                    batch = self.ready.popleft()
                    self.ready_samples -= len(batch[0])
                    return batch
                waiting = len(self.ids) - self.head
                if waiting:
                    if waiting >= batch_size or self.drain:
                        return self._take(waiting)
                    timeout = self.times[self.put_head] + self.timeout_s - time.monotonic()
                    if timeout <= 0:
                        return self._take(waiting)
                elif self.closing:
                    return None
                else:
                    self.drain = False  # everything that waited at the flush has left
                    timeout = -1.0  # sleep until the next put
                self.sleeping = True
                mutex.release()
                try:
                    woken = signal.acquire(True, timeout)
                finally:
                    mutex.acquire()
                if self.sleeping:
                    self.sleeping = False  # timed out, nobody posted a wake-up
                elif not woken:
                    signal.acquire()  # posted after the timeout: consume it
        finally:
            mutex.release()

    def _take(self, waiting: int) -> tuple[list[int], list[int]]:
        """Cut the next batch off the waiting samples (mutex held)."""
        start = self.head
        stop = start + min(waiting, self.batch_size)
        if stop == len(self.ids):  # everything that waits leaves: hand over the lists
            if start:
                ids = self.ids[start:]
                indices = self.indices[start:]
            else:
                ids = self.ids
                indices = self.indices
            self.base += stop
            self.ids = []
            self.indices = []
            self.ends = []
            self.times = []
            self.head = self.put_head = 0
            return ids, indices
        ids = self.ids[start:stop]
        indices = self.indices[start:stop]
        self.head = stop
        self.put_head = bisect_right(self.ends, self.base + stop, self.put_head)
        if stop >= _COMPACT_AT and stop * 2 >= len(self.ids):
            del self.ids[:stop]
            del self.indices[:stop]
            del self.ends[: self.put_head]
            del self.times[: self.put_head]
            self.base += stop
            self.head = self.put_head = 0
        return ids, indices

    # -- completion thread --------------------------------------------------------------------

    def _complete_loop(self) -> None:
        harness = self.harness
        complete = harness._complete
        free, inflight = self.free, self.inflight
        batch_size = self.batch_size
        try:
            while True:
                item = inflight.get()
                if item is None or harness._failure is not None:
                    return
                slot, ids = item
                labels = slot.wait()
                count = len(ids)
                if len(labels) != count:
                    raise RuntimeError(
                        f"{self.name}: slot returned {len(labels)} labels for {count} samples"
                    )
                complete(ids, labels)
                free.put(slot)
                self.batches += 1
                self.samples += count
                if count == batch_size:
                    self.full_batches += 1
        except BaseException as exc:
            harness._fail(exc)


class LwisHarness:
    """Batches LoadGen samples over the slots of one or more inference devices.

    `complete(ids, labels)` is called once per batch from the device's completion thread; it
    must finish using `labels` before it returns (the slot is reused afterwards). Any exception
    in a harness thread, a slot or `complete` goes to `on_error` exactly once and the harness
    stops taking work.
    """

    def __init__(
        self,
        devices: Sequence[InferenceDevice],
        batch_size: int,
        deque_timeout_us: int,
        complete: CompleteFn,
        on_error: ErrorFn,
    ) -> None:
        if not devices:
            raise ValueError("the harness needs at least one inference device")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if deque_timeout_us < 0:
            raise ValueError(f"deque_timeout_us must be >= 0, got {deque_timeout_us}")
        for device in devices:
            if not device.slots:
                raise ValueError(f"device {device.name!r} has no slots")
            small = [slot.capacity for slot in device.slots if slot.capacity < batch_size]
            if small:
                raise ValueError(
                    f"device {device.name!r}: slot capacity {min(small)} < batch_size {batch_size}"
                )
        self.batch_size = batch_size
        self.deque_timeout_us = deque_timeout_us
        self._complete = complete
        self._on_error = on_error
        self._lanes = tuple(
            _Lane(self, number, device, batch_size, deque_timeout_us / 1e6)
            for number, device in enumerate(devices)
        )
        self._turn = itertools.count()
        self._fail_lock = threading.Lock()
        self._failure: BaseException | None = None
        self._suppressed_errors = 0
        self._started = False
        self._stopping = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError("harness already started")
        self._started = True
        for lane in self._lanes:
            for thread in lane.threads:
                thread.start()

    def issue(self, ids: list[int] | np.ndarray, indices: list[int] | np.ndarray) -> None:
        """LoadGen's fast issue callback: enqueue only (runs on LoadGen's thread, GIL held).

        The harness takes ownership of both lists (LoadGen passes fresh ones every call). The
        native path passes uint64 array views instead (`_issue_array`).
        """
        if self._stopping or self._failure is not None:
            if self._failure is not None:
                return  # already reported; the process is going down
            raise RuntimeError("issue() after stop()")
        count = len(ids)
        if not count:
            return
        if isinstance(ids, np.ndarray) or isinstance(indices, np.ndarray):
            self._issue_array(np.asarray(ids), np.asarray(indices), count)
            return
        if indices is ids:
            indices = list(ids)
        lanes = self._lanes
        now = time.monotonic()
        if count <= self.batch_size or len(lanes) == 1:
            lanes[next(self._turn) % len(lanes)].put(ids, indices, now)
            return
        # A big issue (Offline): batch-sized chunks dealt round robin over the devices, one put
        # per chunk so that every batcher starts with the first chunks.
        size = self.batch_size
        turn = next(self._turn)
        for start in range(0, count, size):
            lanes[turn % len(lanes)].put(
                ids[start : start + size], indices[start : start + size], now
            )
            turn += 1

    def _issue_array(self, ids: np.ndarray, indices: np.ndarray, count: int) -> None:
        """The native path: a small issue becomes lists (the Server path, a few samples); a big
        one is cut into full batches of views, dealt round robin, nothing copied per sample;
        its remainder joins the waiting lists."""
        if count <= self.batch_size:
            self.issue(ids.tolist(), indices.tolist())
            return
        lanes = self._lanes
        size = self.batch_size
        full = count - count % size
        turn = next(self._turn)
        for start in range(0, full, size):
            stop = start + size
            lanes[turn % len(lanes)].put_ready(ids[start:stop], indices[start:stop])
            turn += 1
        if full < count:
            lanes[turn % len(lanes)].put(
                ids[full:].tolist(), indices[full:].tolist(), time.monotonic()
            )

    def flush(self) -> None:
        """Send every waiting sample now instead of after its batching timeout."""
        for lane in self._lanes:
            lane.wake()

    def stop(self, timeout_s: float) -> None:
        """Send what waits, let in-flight batches complete, end every thread (or raise)."""
        self._stopping = True
        for lane in self._lanes:
            lane.wake(closing=True)
        deadline = time.monotonic() + timeout_s
        threads = [thread for lane in self._lanes for thread in lane.threads]
        for thread in threads:
            if thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise RuntimeError(
                f"harness threads still running {timeout_s:g} s after stop(): {', '.join(alive)}"
            )

    def _fail(self, exc: BaseException) -> None:
        with self._fail_lock:
            if self._failure is not None:
                self._suppressed_errors += 1
                return
            self._failure = exc
        for lane in self._lanes:
            lane.wake(closing=True, aborted=True)
        self._on_error(exc)

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def stats(self) -> dict[str, Any]:
        """Counters for harness.json (completed batches and samples, queue depth)."""
        lanes = self._lanes
        batches = sum(lane.batches for lane in lanes)
        samples = sum(lane.samples for lane in lanes)
        devices = [
            {
                "name": lane.name,
                "slots": lane.slot_count,
                "batches": lane.batches,
                "samples": lane.samples,
                "full_batches": lane.full_batches,
                "max_queue_depth": lane.max_waiting,
            }
            for lane in lanes
        ]
        return {
            "batch_size": self.batch_size,
            "deque_timeout_us": self.deque_timeout_us,
            "batches": batches,
            "samples": samples,
            "mean_batch_size": round(samples / batches, 3) if batches else 0.0,
            "full_batches": sum(lane.full_batches for lane in lanes),
            "max_queue_depth": max(lane.max_waiting for lane in lanes),
            "errors_after_first": self._suppressed_errors,
            "devices": devices,
        }
