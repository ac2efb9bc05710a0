"""The INT8 sample store, and INT8 preprocessing against FP32 on real decoded images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from backends.common.dataset import Int8Samples
from backends.common.preprocess import prepare_cache, preprocess_bgr
from contract.layout import read_val_map, sample_file
from contract.resnet50 import SAMPLE_SHAPE


@pytest.fixture(scope="module")
def caches(
    synthetic_assets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, int]:
    dataset = synthetic_assets[1]
    count = 24
    root = tmp_path_factory.mktemp("caches")
    for fmt in ("fp32", "int8"):
        prepare_cache(dataset, root / fmt, count, workers=2, fmt=fmt)
    return root / "fp32", root / "int8", count


def _assert_within_rounding(int8: np.ndarray, fp32: np.ndarray) -> None:
    assert int8.dtype == np.int8
    assert fp32.dtype == np.float32
    assert int8.shape == fp32.shape == SAMPLE_SHAPE
    inside = (fp32 >= -128) & (fp32 <= 127)
    assert np.abs(int8[inside].astype(np.float32) - fp32[inside]).max() <= 0.5
    assert (int8[fp32 > 127] == 127).all()
    assert (int8[fp32 < -128] == -128).all()


def test_int8_cache_matches_fp32_cache_within_rounding(caches: tuple[Path, Path, int]) -> None:
    fp32_dir, int8_dir, count = caches
    saturated = 0
    for index in range(count):
        fp32 = np.load(sample_file(fp32_dir, index))
        int8 = np.load(sample_file(int8_dir, index))
        _assert_within_rounding(int8, fp32)
        saturated += int((fp32 > 127).sum())
    assert saturated > 0  # bright red pixels (R − 123.68 > 127) exist in these images


def test_int8_saturates_on_a_decoded_photo(synthetic_assets: tuple[Path, Path]) -> None:
    """x − mean ≥ −123.68 for uint8 pixels, so only the top end of int8 can saturate."""
    dataset = synthetic_assets[1]
    image = cv2.imread(str(dataset / read_val_map(dataset)[0].relpath))
    image[:200, :, 2] = 255  # red beyond mean + 127
    image[200:, :, :] = 0  # every channel at −mean, the lowest values possible
    fp32, int8 = preprocess_bgr(image, "fp32"), preprocess_bgr(image, "int8")
    _assert_within_rounding(int8, fp32)
    assert int8.max() == 127
    assert (int8[0] == -124).any()  # round(−123.68)


def test_store_gathers_rows_by_qsl_index(caches: tuple[Path, Path, int]) -> None:
    _, int8_dir, count = caches
    store = Int8Samples(int8_dir, count, performance_count=10)
    assert store.performance_count == 10
    assert store.array.shape == (0, *SAMPLE_SHAPE)
    store.load([7, 3, 11, 3])
    assert store.array.shape == (3, *SAMPLE_SHAPE)
    assert store.array.flags.c_contiguous
    assert store.array.dtype == np.int8
    wanted = [11, 7, 7, 3]
    rows = store.rows(wanted)
    assert rows.dtype == np.int64
    out = np.empty((len(wanted), *SAMPLE_SHAPE), np.int8)
    np.take(store.array, rows, axis=0, out=out)
    for position, index in enumerate(wanted):
        np.testing.assert_array_equal(out[position], np.load(sample_file(int8_dir, index)))
    with pytest.raises(KeyError, match="not loaded"):
        store.rows([7, 4])


def test_store_load_and_unload_keep_the_mapping(caches: tuple[Path, Path, int]) -> None:
    _, int8_dir, count = caches
    store = Int8Samples(int8_dir, count, count)
    store.load([1, 2, 3])
    store.load([3, 4])  # a second load adds; 3 is not read twice
    assert sorted(store.loaded.tolist()) == [1, 2, 3, 4]
    store.unload([2, 9])
    assert store.array.shape[0] == 3
    assert store.array.flags.c_contiguous
    for index in (1, 3, 4):
        np.testing.assert_array_equal(
            store.array[store.rows([index])[0]], np.load(sample_file(int8_dir, index))
        )
    with pytest.raises(KeyError):
        store.rows([2])
    store.unload([1, 3, 4])
    assert store.array.shape[0] == 0


def test_store_refuses_fp32_or_incomplete_caches(
    caches: tuple[Path, Path, int], tmp_path: Path
) -> None:
    fp32_dir, _, count = caches
    with pytest.raises(ValueError, match="int8"):
        Int8Samples(fp32_dir, count, count)
    with pytest.raises(FileNotFoundError):
        Int8Samples(tmp_path, count, count)
