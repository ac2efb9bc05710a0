"""Preprocessing equals the reference formula (pre_process_vgg) on fixed images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from backends.common.layout import cache_is_complete, cache_key, sample_file
from backends.common.preprocess import load_and_preprocess, prepare_cache, preprocess_bgr


def _fixed_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) * 7) % 256], axis=-1).astype(np.uint8)


def _reference_formula(bgr: np.ndarray) -> np.ndarray:
    """Written out from the MLCommons description: short side → int(100*224/87.5) with
    INTER_AREA, long side int(256*long/short), centre crop int((w-224)/2), minus means, CHW."""
    rgb = bgr[:, :, ::-1]
    h, w = rgb.shape[:2]
    short = int(100.0 * 224 / 87.5)
    assert short == 256
    size = (short, int(short * h / w)) if h > w else (int(short * w / h), short)  # (w, h) for cv2
    resized = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    rh, rw = resized.shape[:2]
    top, left = int((rh - 224) / 2), int((rw - 224) / 2)
    crop = resized[top : top + 224, left : left + 224].astype(np.float32)
    crop -= np.array([123.68, 116.78, 103.94], dtype=np.float32)
    return crop.transpose(2, 0, 1)


@pytest.mark.parametrize(("height", "width"), [(375, 500), (500, 333), (256, 256), (300, 1000)])
def test_matches_reference_formula(height: int, width: int) -> None:
    image = _fixed_image(height, width)
    got = preprocess_bgr(image)
    assert got.shape == (3, 224, 224)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _reference_formula(image))


def test_channel_order_and_mean() -> None:
    image = np.zeros((256, 256, 3), np.uint8)
    image[:, :, 0] = 200  # blue in OpenCV's BGR
    got = preprocess_bgr(image)
    assert got[2].max() == pytest.approx(200 - 103.94, abs=1e-4)  # blue ends up last (RGB)
    assert got[0].max() == pytest.approx(-123.68, abs=1e-4)


def test_jpeg_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.JPEG"
    image = _fixed_image(333, 500)
    cv2.imwrite(str(path), image)
    np.testing.assert_array_equal(load_and_preprocess(path), preprocess_bgr(cv2.imread(str(path))))


def test_cache_is_keyed_and_resumable(tmp_path: Path) -> None:
    data = tmp_path / "imagenet"
    (data / "val").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(data / "val" / f"{i}.JPEG"), _fixed_image(300 + i, 400))
    (data / "val_map.txt").write_text("".join(f"val/{i}.JPEG {i}\n" for i in range(3)))
    key = cache_key(data, 3)
    assert key != cache_key(data, 2)
    cache = tmp_path / "cache" / key
    assert prepare_cache(data, cache, 3, workers=2) == 3
    assert cache_is_complete(cache, 3)
    np.testing.assert_array_equal(
        np.load(sample_file(cache, 1)), load_and_preprocess(data / "val" / "1.JPEG")
    )
    assert prepare_cache(data, cache, 3, workers=2) == 0  # a second run preprocesses nothing
    (data / "val_map.txt").write_text("val/0.JPEG 1\nval/1.JPEG 1\nval/2.JPEG 2\n")
    assert cache_key(data, 3) != key  # labels/list change → new cache
