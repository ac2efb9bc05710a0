"""A LoadGen sample library over a preprocessed cache of .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backends.common.layout import cache_is_complete, sample_file


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
