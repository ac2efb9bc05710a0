"""The reference ResNet50 preprocessing (`pre_process_vgg`) and the caches built with it.

The MLCommons reference reads each JPEG with OpenCV, converts BGR to RGB, resizes so the short
side becomes int(100 * 224 / 87.5) = 256 with INTER_AREA, centre-crops 224x224, subtracts the
per-channel means (no std) and transposes HWC to CHW as float32. The Dell/NVIDIA recipe takes the
same crop and stores round(x − mean) clipped to [−128, 127] as INT8 (scale 1.0). Both formats come
from one crop, so they agree to within rounding by construction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from contract.layout import (
    CACHE_MANIFEST,
    FORMATS,
    cache_is_complete,
    read_val_map,
    recipe,
    sample_file,
)
from contract.locks import atomic_write_text
from contract.resnet50 import CHANNEL_MEANS, IMAGE_SIZE, SCALE_PERCENT

_MEANS = np.asarray(CHANNEL_MEANS, dtype=np.float32)


def resize_short_side(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize so the short side is int(100*size/87.5), keeping the aspect ratio (truncating)."""
    import cv2

    height, width = image.shape[:2]
    short = int(100.0 * size / SCALE_PERCENT)
    if height > width:
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)


def crop_center(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    height, width = image.shape[:2]
    top = int((height - size) / 2)
    left = int((width - size) / 2)
    return image[top : top + size, left : left + size]


def crop_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """Decoded BGR uint8 image → the reference's 224x224 RGB uint8 crop (HWC)."""
    import cv2

    return crop_center(resize_short_side(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)))


def to_fp32(crop: np.ndarray) -> np.ndarray:
    """RGB uint8 crop → float32 CHW, means subtracted (the reference's model input)."""
    return np.ascontiguousarray((crop.astype(np.float32) - _MEANS).transpose(2, 0, 1))


def to_int8(crop: np.ndarray) -> np.ndarray:
    """RGB uint8 crop → INT8 linear CHW: round(x − mean) clipped to [−128, 127], scale 1.0."""
    centred = np.rint(crop.astype(np.float32) - _MEANS)
    return np.ascontiguousarray(np.clip(centred, -128, 127).astype(np.int8).transpose(2, 0, 1))


def preprocess_bgr(image_bgr: np.ndarray, fmt: str = "fp32") -> np.ndarray:
    """Reference preprocessing of one decoded BGR uint8 image → CHW (3, 224, 224)."""
    crop = crop_rgb(image_bgr)
    return to_fp32(crop) if fmt == "fp32" else to_int8(crop)


class UndecodableImage(ValueError):
    """OpenCV cannot decode an image file."""


class BadImages(Exception):
    """Images that could not be decoded or preprocessed: (relative path, reason) each."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(failures)} images could not be decoded")
        self.failures = failures


def load_and_preprocess(path: Path, fmt: str = "fp32") -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        if not path.is_file():
            raise UndecodableImage("no such file")
        if path.stat().st_size == 0:
            raise UndecodableImage("empty file (0 bytes)")
        raise UndecodableImage("OpenCV cannot decode it")
    return preprocess_bgr(image, fmt)


def _prepare_one(job: tuple[str, str, str, str]) -> tuple[str, str | None]:
    """Preprocess one image into its sample file: (relpath, None), or (relpath, why not).

    Only decoding and preprocessing count as a bad image; failing to write the cache (a full
    disk) is an error of the run and propagates.
    """
    relpath, src, dst, fmt = job
    try:
        array = load_and_preprocess(Path(src), fmt)
    except UndecodableImage as exc:
        return relpath, str(exc)
    except Exception as exc:  # cv2.error, MemoryError...: the image is unusable, say why
        return relpath, f"preprocessing failed: {type(exc).__name__}: {exc}".strip()
    tmp = dst + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, dst)
    return relpath, None


def prepare_cache(
    dataset_dir: Path,
    cache_dir: Path,
    count: int,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    fmt: str = "fp32",
    val_map: Path | None = None,
) -> int:
    """Preprocess the first `count` images of val_map into `cache_dir`, in parallel.

    `val_map` replaces the dataset's own list (a filtered one, relative paths still under
    `dataset_dir`). Files already present are kept, so an interrupted preparation resumes.
    Every image is tried; if any cannot be decoded, raises BadImages naming all of them and
    leaves the cache incomplete. Returns how many images were preprocessed now (0 when the cache
    was complete).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if cache_is_complete(cache_dir, count):
        return 0
    entries = read_val_map(dataset_dir, val_map)[:count]
    if len(entries) < count:
        raise ValueError(f"the val_map lists {len(entries)} images, {count} requested")
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        (entry.relpath, str(dataset_dir / entry.relpath), str(sample_file(cache_dir, index)), fmt)
        for index, entry in enumerate(entries)
        if not sample_file(cache_dir, index).is_file()
    ]
    done = 0
    failures: list[tuple[str, str]] = []
    if jobs:
        with get_context("spawn").Pool(max(1, workers)) as pool:
            for relpath, failure in pool.imap_unordered(_prepare_one, jobs, chunksize=8):
                done += 1
                if failure is not None:
                    failures.append((relpath, failure))
                if progress:
                    progress(done, len(jobs))
    if failures:
        order = {entry.relpath: index for index, entry in enumerate(entries)}
        raise BadImages(sorted(failures, key=lambda failure: order[failure[0]]))
    manifest = {"count": count, "format": fmt, "params": recipe(fmt)}
    atomic_write_text(cache_dir / CACHE_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return done
