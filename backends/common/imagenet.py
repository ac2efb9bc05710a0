"""ImageNet layout and the reference ResNet50 preprocessing (`pre_process_vgg`).

The MLCommons reference reads each JPEG with OpenCV, converts BGR to RGB, resizes so the short
side becomes int(100 * 224 / 87.5) = 256 with INTER_AREA, centre-crops 224x224, subtracts the
per-channel means (no std) and transposes HWC to CHW as float32. This module reproduces that
recipe; the parameters are part of every preprocessing cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

OUTPUT_SIZE = 224
SCALE_PERCENT = 87.5
CHANNEL_MEANS = (123.68, 116.78, 103.94)
PREPROCESS_VERSION = 1
PREPROCESS_PARAMS = {
    "recipe": "pre_process_vgg",
    "version": PREPROCESS_VERSION,
    "output_size": OUTPUT_SIZE,
    "scale_percent": SCALE_PERCENT,
    "means": CHANNEL_MEANS,
    "interpolation": "INTER_AREA",
    "layout": "NCHW",
    "dtype": "float32",
}
VAL_MAP = "val_map.txt"
CACHE_MANIFEST = "preprocessed.json"


@dataclass(frozen=True)
class ImageEntry:
    relpath: str
    label: int


def read_val_map(dataset_dir: Path) -> list[ImageEntry]:
    """Parse `val_map.txt`: one `<relative path> <label>` per line."""
    entries = []
    with (dataset_dir / VAL_MAP).open() as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{VAL_MAP}:{lineno}: expected '<path> <label>', got {line!r}")
            entries.append(ImageEntry(parts[0], int(parts[1])))
    return entries


def val_map_digest(dataset_dir: Path) -> str:
    return hashlib.sha256((dataset_dir / VAL_MAP).read_bytes()).hexdigest()


def cache_key(dataset_dir: Path, count: int) -> str:
    """Key of a preprocessed cache: recipe parameters, the val_map contents and the count."""
    payload = json.dumps(
        {"params": PREPROCESS_PARAMS, "val_map": val_map_digest(dataset_dir), "count": count},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def resize_short_side(image: np.ndarray, size: int = OUTPUT_SIZE) -> np.ndarray:
    """Resize so the short side is int(100*size/87.5), keeping the aspect ratio (truncating)."""
    import cv2

    height, width = image.shape[:2]
    short = int(100.0 * size / SCALE_PERCENT)
    if height > width:
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)


def crop_center(image: np.ndarray, size: int = OUTPUT_SIZE) -> np.ndarray:
    height, width = image.shape[:2]
    top = int((height - size) / 2)
    left = int((width - size) / 2)
    return image[top : top + size, left : left + size]


def preprocess_bgr(image_bgr: np.ndarray) -> np.ndarray:
    """Reference preprocessing of one decoded BGR uint8 image → float32 CHW (3, 224, 224)."""
    import cv2

    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    cropped = crop_center(resize_short_side(rgb))
    chw = (cropped.astype(np.float32) - np.asarray(CHANNEL_MEANS, dtype=np.float32)).transpose(
        2, 0, 1
    )
    return np.ascontiguousarray(chw)


def load_and_preprocess(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return preprocess_bgr(image)


def _prepare_one(job: tuple[str, str]) -> str:
    src, dst = job
    array = load_and_preprocess(Path(src))
    tmp = dst + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, dst)
    return dst


def sample_file(cache_dir: Path, index: int) -> Path:
    return cache_dir / f"{index:06d}.npy"


def cache_is_complete(cache_dir: Path, count: int) -> bool:
    manifest = cache_dir / CACHE_MANIFEST
    if not manifest.is_file():
        return False
    try:
        return int(json.loads(manifest.read_text())["count"]) == count
    except (ValueError, KeyError):
        return False


def prepare_cache(
    dataset_dir: Path,
    cache_dir: Path,
    count: int,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Preprocess the first `count` images of val_map into `cache_dir`, in parallel.

    Files already present are kept, so an interrupted preparation resumes. Returns how many
    images were preprocessed now (0 when the cache was complete).
    """
    if cache_is_complete(cache_dir, count):
        return 0
    entries = read_val_map(dataset_dir)[:count]
    if len(entries) < count:
        raise ValueError(f"{VAL_MAP} lists {len(entries)} images, {count} requested")
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(dataset_dir / entry.relpath), str(sample_file(cache_dir, index)))
        for index, entry in enumerate(entries)
        if not sample_file(cache_dir, index).is_file()
    ]
    done = 0
    if jobs:
        with get_context("spawn").Pool(max(1, workers)) as pool:
            for _ in pool.imap_unordered(_prepare_one, jobs, chunksize=8):
                done += 1
                if progress:
                    progress(done, len(jobs))
    (cache_dir / CACHE_MANIFEST).write_text(
        json.dumps({"count": count, "params": PREPROCESS_PARAMS}, indent=2) + "\n"
    )
    return done


def labels(entries: Iterable[ImageEntry]) -> list[int]:
    return [entry.label for entry in entries]
