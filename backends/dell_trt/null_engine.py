"""An inference device whose slots answer at once: the harness ceiling, and its tests.

Each label is a fixed function of the sample's QSL index (`null_labels`), so a test can check
that every response carries its own sample's answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUM_LABELS = 1000


def null_labels(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """The null engine's answer for each QSL index, as int32 labels 0..999."""
    values = np.asarray(indices, dtype=np.int64)
    return ((values * 7 + 3) % NUM_LABELS).astype(np.int32)


class NullSlot:
    """Computes `null_labels` into its own output buffer on submit; wait returns a view."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"slot capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._output = np.zeros(capacity, dtype=np.int32)
        self._count = 0

    def submit(self, indices: Sequence[int]) -> None:
        count = len(indices)
        if count > self.capacity:
            raise ValueError(f"batch of {count} samples > slot capacity {self.capacity}")
        self._output[:count] = null_labels(indices)
        self._count = count

    def wait(self) -> np.ndarray:
        return self._output[: self._count]


class NullDevice:
    """`slots` null slots of `capacity` samples each."""

    def __init__(self, name: str, slots: int, capacity: int) -> None:
        if slots < 1:
            raise ValueError(f"a device needs at least one slot, got {slots}")
        self.name = name
        self.slots: list[NullSlot] = [NullSlot(capacity) for _ in range(slots)]

    def close(self) -> None:
        self.slots = []
