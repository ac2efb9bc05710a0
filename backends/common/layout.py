"""The ImageNet layout and the preprocessed-cache contract shared by host and containers.

Standard library only: the host validates datasets and finds caches with it, the containers fill
and read the caches. The preprocessing itself (OpenCV) lives in `backends.common.preprocess`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.common.resnet50 import CHANNEL_MEANS, IMAGE_SIZE, SCALE_PERCENT

VAL_MAP = "val_map.txt"
CACHE_MANIFEST = "preprocessed.json"

# Cache formats: the reference feeds float32 (x − mean); the Dell/NVIDIA recipe feeds INT8 linear
# (round(x − mean) clipped to [−128, 127], scale 1.0), 150 528 bytes a sample.
FORMATS = ("fp32", "int8")
PREPROCESS_VERSION = 1
RECIPE = {
    "recipe": "pre_process_vgg",
    "version": PREPROCESS_VERSION,
    "output_size": IMAGE_SIZE,
    "scale_percent": SCALE_PERCENT,
    "means": CHANNEL_MEANS,
    "interpolation": "INTER_AREA",
    "layout": "NCHW",
}


def recipe(fmt: str) -> dict[str, Any]:
    """The parameters of one cache format (part of its key)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown preprocessed format {fmt!r} (known: {', '.join(FORMATS)})")
    extra = {"dtype": "float32"} if fmt == "fp32" else {"dtype": "int8", "scale": 1.0, "clip": 127}
    return {**RECIPE, **extra}


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


def labels(entries: Iterable[ImageEntry]) -> list[int]:
    return [entry.label for entry in entries]


def val_map_digest(dataset_dir: Path) -> str:
    return hashlib.sha256((dataset_dir / VAL_MAP).read_bytes()).hexdigest()


def cache_key(dataset_dir: Path, count: int, fmt: str = "fp32") -> str:
    """Key of a preprocessed cache: format and recipe, the val_map contents and the count."""
    payload = json.dumps(
        {"params": recipe(fmt), "val_map": val_map_digest(dataset_dir), "count": count},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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


# Synthetic assets (generated in a backend image by backends.common.synthetic): where they live
# under a cache root, and the marker written last when they are complete.
SYNTHETIC_VERSION = 1
SYNTHETIC_MARKER = "assets.json"
SYNTHETIC_MODEL = Path("model") / "resnet50_v1.onnx"
SYNTHETIC_DATASET = Path("imagenet")


def synthetic_root(cache_root: Path, images: int, seed: int) -> Path:
    return cache_root / "assets" / f"synthetic-v{SYNTHETIC_VERSION}-s{seed}-n{images}"
