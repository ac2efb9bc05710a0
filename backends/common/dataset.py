"""LoadGen sample libraries over a preprocessed cache of .npy files (one per sample)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contract.layout import CACHE_MANIFEST, cache_is_complete, sample_file
from contract.resnet50 import SAMPLE_SHAPE


class PreprocessedImagenet:
    """Loads preprocessed samples into memory when LoadGen asks for them."""

    def __init__(self, cache_dir: Path, count: int, performance_count: int) -> None:
        if not cache_is_complete(cache_dir, count):
            raise FileNotFoundError(f"preprocessed cache {cache_dir} is missing or incomplete")
        self.cache_dir = cache_dir
        self.total_count = count
        self.performance_count = min(performance_count, count)
        self._loaded: dict[int, np.ndarray] = {}

    def load(self, indices: list[int]) -> None:
        for index in indices:
            if index not in self._loaded:
                self._loaded[index] = np.load(sample_file(self.cache_dir, index))

    def unload(self, indices: list[int]) -> None:
        for index in indices:
            self._loaded.pop(index, None)

    def batch(self, indices: list[int]) -> np.ndarray:
        """Stack the samples at `indices` into one NCHW batch."""
        return np.stack([self._loaded[index] for index in indices])


class Int8Samples:
    """The INT8 sample store: LoadGen's loaded samples in one contiguous int8 array.

    After `load(indices)`, `array` has shape (n_loaded, 3, 224, 224) and `rows(indices)` maps QSL
    indices to its rows, so a batch is one gather:
    `np.take(store.array, store.rows(indices), axis=0, out=buffer)`. Loading replaces `array`
    (the old one stays valid for whoever still holds it); LoadGen loads and unloads only
    between queries.
    """

    def __init__(self, cache_dir: Path, count: int, performance_count: int) -> None:
        if not cache_is_complete(cache_dir, count):
            raise FileNotFoundError(f"preprocessed cache {cache_dir} is missing or incomplete")
        fmt = json.loads((cache_dir / CACHE_MANIFEST).read_text()).get("format")
        if fmt != "int8":
            raise ValueError(f"{cache_dir} holds {fmt!r} samples, the INT8 store needs 'int8'")
        self.cache_dir = cache_dir
        self.total_count = count
        self.performance_count = min(performance_count, count)
        self.array = np.empty((0, *SAMPLE_SHAPE), np.int8)
        self.loaded = np.empty(0, np.int64)  # QSL index of each row
        self._row = np.full(count, -1, np.int64)

    def _read(self, index: int) -> np.ndarray:
        sample: np.ndarray = np.load(sample_file(self.cache_dir, index))
        if sample.dtype != np.int8 or sample.shape != SAMPLE_SHAPE:
            raise ValueError(
                f"sample {index} is {sample.dtype}{sample.shape}, not int8{SAMPLE_SHAPE}"
            )
        return sample

    def _publish(self, array: np.ndarray, loaded: np.ndarray) -> None:
        self._row[:] = -1
        self._row[loaded] = np.arange(len(loaded))
        self.loaded = loaded
        self.array = array

    def load(self, indices: Sequence[int]) -> None:
        wanted = np.unique(np.asarray(indices, np.int64))
        new = wanted[self._row[wanted] < 0]
        if not len(new):
            return
        old = len(self.loaded)
        array = np.empty((old + len(new), *SAMPLE_SHAPE), np.int8)
        array[:old] = self.array
        for row, index in enumerate(new.tolist(), old):
            array[row] = self._read(index)
        self._publish(array, np.concatenate([self.loaded, new]))

    def unload(self, indices: Sequence[int]) -> None:
        keep = ~np.isin(self.loaded, np.asarray(indices, np.int64))
        if keep.all():
            return
        self._publish(np.ascontiguousarray(self.array[keep]), self.loaded[keep])

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows of `array` holding the samples at QSL `indices` (int64); KeyError if unloaded."""
        rows = self._row[np.asarray(indices, np.int64)]
        if len(rows) and rows.min() < 0:
            missing = np.asarray(indices)[rows < 0]
            raise KeyError(f"samples {missing[:8].tolist()} are not loaded")
        return rows
