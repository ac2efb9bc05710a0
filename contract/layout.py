"""The ImageNet layout and the preprocessed-cache contract shared by host and containers.

Standard library only: the host validates datasets and finds caches with it, the containers fill
and read the caches. The preprocessing itself (OpenCV) lives in `backends.common.preprocess`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.resnet50 import CHANNEL_MEANS, IMAGE_SIZE, NUM_CLASSES, SCALE_PERCENT

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


class ValMapLineError(ValueError):
    """One val_map line that is not `<relative path> <label 0-999>`; `kind` names the problem."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


BAD_LINE = "bad line"
BAD_LABEL = "bad label"
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_val_map_line(line: str) -> ImageEntry | None:
    """One `<relative path> <label>` line (CRLF and surrounding blanks tolerated); None if blank.

    Raises ValMapLineError for a wrong field count, a non-integer label or one outside 0-999.
    """
    parts = line.split()
    if not parts:
        return None
    if len(parts) != 2:
        raise ValMapLineError(BAD_LINE, f"expected '<path> <label>', got {len(parts)} fields")
    relpath, label = parts
    if not _INTEGER.fullmatch(label):
        raise ValMapLineError(BAD_LABEL, f"label {label!r} is not an integer")
    value = int(label)
    if not 0 <= value < NUM_CLASSES:
        raise ValMapLineError(BAD_LABEL, f"label {value} is outside 0-{NUM_CLASSES - 1}")
    return ImageEntry(relpath, value)


def val_map_path(dataset_dir: Path, val_map: Path | None = None) -> Path:
    """The list a run uses: the dataset's own val_map.txt unless a filtered one is given."""
    return val_map if val_map is not None else dataset_dir / VAL_MAP


def read_val_map(dataset_dir: Path, val_map: Path | None = None) -> list[ImageEntry]:
    """Parse a val_map (the dataset's own by default), failing at the first bad line.

    The host checks every line and image up front (contract.dataset_check), so this strict
    reader is for lists already known to be good.
    """
    entries = []
    path = val_map_path(dataset_dir, val_map)
    with path.open(encoding="utf-8-sig") as handle:  # a BOM is not part of the first path
        for lineno, line in enumerate(handle, 1):
            try:
                entry = parse_val_map_line(line)
            except ValMapLineError as exc:
                raise ValueError(f"{path.name}:{lineno}: {exc.reason}: {line!r}") from None
            if entry is not None:
                entries.append(entry)
    return entries


def labels(entries: Iterable[ImageEntry]) -> list[int]:
    return [entry.label for entry in entries]


def val_map_digest(dataset_dir: Path, val_map: Path | None = None) -> str:
    return hashlib.sha256(val_map_path(dataset_dir, val_map).read_bytes()).hexdigest()


def cache_key(dataset_dir: Path, count: int, fmt: str = "fp32", val_map: Path | None = None) -> str:
    """Key of a preprocessed cache: format and recipe, the val_map contents and the count.

    `val_map` is a filtered list (`--skip-bad`) used instead of the dataset's own.
    """
    payload = json.dumps(
        {"params": recipe(fmt), "val_map": val_map_digest(dataset_dir, val_map), "count": count},
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
SYNTHETIC_VERSION = 2  # 2: prototype classifier head (answers that survive INT8)
SYNTHETIC_MARKER = "assets.json"
SYNTHETIC_MODEL = Path("model") / "resnet50_v1.onnx"
SYNTHETIC_DATASET = Path("imagenet")


def synthetic_root(cache_root: Path, images: int, seed: int) -> Path:
    return cache_root / "assets" / f"synthetic-v{SYNTHETIC_VERSION}-s{seed}-n{images}"
