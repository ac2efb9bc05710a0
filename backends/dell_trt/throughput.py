"""Raw device throughput: keep every slot busy with full batches for N seconds, no LoadGen.

Works with any InferenceDevice (CPU twin or TensorRT): it only uses the Slot contract. The
figure is an upper bound for LoadGen Offline on the same device and batch size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Throughput:
    samples: int
    batches: int
    seconds: float
    batch_size: int
    slots: int

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def raw_throughput(
    device: Any, indices: Sequence[int], batch_size: int, seconds: float
) -> Throughput:
    """Samples/s of `device` cycling over the loaded QSL `indices` in batches of `batch_size`.

    Every slot gets a batch, then each finished slot is refilled at once, round robin, until
    `seconds` have passed; batches in flight at the deadline are waited for and counted.
    """
    if not indices:
        raise ValueError("no loaded samples to run")
    pool = list(indices)
    cursor = 0

    def next_batch() -> list[int]:
        nonlocal cursor
        batch = [pool[(cursor + i) % len(pool)] for i in range(batch_size)]
        cursor = (cursor + batch_size) % len(pool)
        return batch

    slots = list(device.slots)
    started = time.perf_counter()
    deadline = started + seconds
    in_flight = []
    for slot in slots:
        slot.submit(next_batch())
        in_flight.append(slot)
    samples = batches = 0
    while in_flight:
        slot = in_flight.pop(0)
        samples += len(slot.wait())
        batches += 1
        if time.perf_counter() < deadline:
            slot.submit(next_batch())
            in_flight.append(slot)
    elapsed = time.perf_counter() - started
    return Throughput(samples, batches, elapsed, batch_size, len(slots))
