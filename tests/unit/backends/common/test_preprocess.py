"""Preprocessing equals the reference formula (pre_process_vgg) on fixed images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from backends.common.preprocess import load_and_preprocess, prepare_cache, preprocess_bgr
from contract.layout import (
    cache_is_complete,
    cache_key,
    sample_file,
)
from contract.protocol import BAD_IMAGE_PREFIX, BAD_IMAGES_EXIT
from tests.support.damaged_dataset import jpeg_bytes, picture, with_garbage_huffman_table


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


def _prepare(
    dataset: Path, cache: Path, count: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The container's `prepare` command, run here with the same code and OpenCV."""
    return subprocess.run(
        [sys.executable, "-m", "backends.reference", "prepare", "--dataset", str(dataset),
         "--cache", str(cache), "--count", str(count), "--workers", "2", *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.subprocess
def test_undecodable_images_are_reported_not_raised(tmp_path: Path) -> None:
    """A zero-byte JPEG and one with a garbage Huffman table (headers fine): every bad image is
    named on a line of its own, the exit status says 'damaged data', no traceback."""
    data = tmp_path / "imagenet"
    (data / "val").mkdir(parents=True)
    colour = jpeg_bytes(picture(300, 400))
    (data / "val" / "good.JPEG").write_bytes(colour)
    (data / "val" / "zero.JPEG").write_bytes(b"")
    (data / "val" / "huffman.JPEG").write_bytes(with_garbage_huffman_table(colour))
    (data / "val" / "later.JPEG").write_bytes(jpeg_bytes(picture(200, 300, seed=2)))
    (data / "val_map.txt").write_text(
        "val/good.JPEG 1\nval/zero.JPEG 2\nval/huffman.JPEG 3\nval/later.JPEG 4\n"
    )
    cache = tmp_path / "cache"
    result = _prepare(data, cache, 4)
    assert result.returncode == BAD_IMAGES_EXIT, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    bad = [line for line in result.stdout.splitlines() if line.startswith(BAD_IMAGE_PREFIX)]
    assert bad == [
        f"{BAD_IMAGE_PREFIX} val/zero.JPEG\tempty file (0 bytes)",
        f"{BAD_IMAGE_PREFIX} val/huffman.JPEG\tOpenCV cannot decode it",
    ]
    assert not cache_is_complete(cache, 4)
    # Every good image was still preprocessed (a retry without the bad ones reuses them).
    assert sample_file(cache, 0).is_file()
    assert sample_file(cache, 3).is_file()
    assert not sample_file(cache, 1).exists()

    filtered = tmp_path / "filtered.txt"
    filtered.write_text("val/good.JPEG 1\nval/later.JPEG 4\n")
    fixed = tmp_path / "cache2"
    result = _prepare(data, fixed, 2, "--val-map", str(filtered))
    assert result.returncode == 0, result.stdout + result.stderr
    assert cache_is_complete(fixed, 2)
    np.testing.assert_array_equal(
        np.load(sample_file(fixed, 1)), load_and_preprocess(data / "val" / "later.JPEG")
    )


@pytest.mark.subprocess
def test_prepare_refuses_a_bad_list_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "val_map.txt").write_text("a.JPEG 1\nb.JPEG 1000\n")
    result = _prepare(tmp_path, tmp_path / "cache", 2)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "prepare failed: val_map.txt:2: label 1000 is outside 0-999" in result.stdout


def test_filtered_val_map_changes_the_cache_key(tmp_path: Path) -> None:
    data = tmp_path / "imagenet"
    data.mkdir()
    (data / "val_map.txt").write_text("a.JPEG 1\nb.JPEG 2\n")
    filtered = tmp_path / "filtered.txt"
    filtered.write_text("b.JPEG 2\n")
    assert cache_key(data, 1) != cache_key(data, 1, val_map=filtered)
    assert cache_key(data, 1, val_map=data / "val_map.txt") == cache_key(data, 1)
