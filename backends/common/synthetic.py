"""A seeded stand-in for the ResNet50 model and ImageNet (runs inside a backend image).

Writes `model/resnet50_v1.onnx` (ResNet50-v1.5 shape, random weights) and `imagenet/` in the
ImageNet validation layout (JPEGs + `val_map.txt`), then `assets.json` last as the completion
marker (names and paths: `backends.common.layout`). Each image's label is the FP32 model's own
top-1 answer (ArgMax − 1, as the reference decodes it), so an FP32 run scores 100 % by
construction: the accuracy path is exercised end to end, the number means nothing about quality.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.common.layout import (
    SYNTHETIC_DATASET,
    SYNTHETIC_MARKER,
    SYNTHETIC_MODEL,
    SYNTHETIC_VERSION,
    VAL_MAP,
    synthetic_root,
)
from backends.common.locks import atomic_write_text
from backends.common.preprocess import load_and_preprocess, preprocess_bgr
from backends.common.resnet50 import INPUT_NAME, SOFTMAX_OUTPUT
from backends.common.synthetic_model import FEATURES_NAME, build_resnet50, fc_weights

__all__ = ["SyntheticAssets", "load_existing", "make_synthetic_assets", "synthetic_root"]
# Accept an image only when the top-1 probability beats the runner-up by this relative margin,
# so numerically different (but correct) runtimes cannot flip a label.
MIN_RELATIVE_MARGIN = 0.02
BATCH = 16
CALIBRATION_IMAGES = 32


@dataclass(frozen=True)
class SyntheticAssets:
    root: Path
    model: Path
    dataset: Path
    images: int
    seed: int
    distinct_labels: int


def load_existing(root: Path) -> SyntheticAssets | None:
    manifest = root / SYNTHETIC_MARKER
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_text())
    return SyntheticAssets(
        root=root,
        model=root / SYNTHETIC_MODEL,
        dataset=root / SYNTHETIC_DATASET,
        images=int(meta["images"]),
        seed=int(meta["seed"]),
        distinct_labels=int(meta["distinct_labels"]),
    )


def _random_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth random BGR picture of ImageNet-like size (low-frequency noise, upscaled)."""
    import cv2

    height = int(rng.integers(240, 481))
    width = int(rng.integers(240, 641))
    grid = int(rng.integers(3, 12))
    coarse = rng.uniform(0, 255, size=(grid, grid, 3)).astype(np.float32)
    image = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))
    image += rng.normal(0, 8, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _session(model: object) -> object:
    import onnxruntime as ort

    return ort.InferenceSession(
        model.SerializeToString(),  # type: ignore[attr-defined]
        providers=["CPUExecutionProvider"],
    )


def make_synthetic_assets(
    root: Path,
    images: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> SyntheticAssets:
    """Generate (or regenerate) the synthetic model and dataset under `root`.

    `root` may be a mount point: its contents are replaced, and `assets.json` is written last.
    """
    import cv2
    import onnx

    rng = np.random.default_rng(seed + 1)
    root.mkdir(parents=True, exist_ok=True)
    (root / SYNTHETIC_MARKER).unlink(missing_ok=True)
    for stale in (SYNTHETIC_DATASET, SYNTHETIC_MODEL.parent):
        shutil.rmtree(root / stale, ignore_errors=True)
    val_dir = root / SYNTHETIC_DATASET / "val"
    val_dir.mkdir(parents=True)
    (root / SYNTHETIC_MODEL.parent).mkdir()

    # Random features share a large common component; cancelling its mean with the FC bias
    # lets the image, not the weights, decide the top-1 class, so labels vary.
    probe = build_resnet50(seed, with_features=True)
    calibration = np.stack([preprocess_bgr(_random_image(rng)) for _ in range(CALIBRATION_IMAGES)])
    features = _session(probe).run([FEATURES_NAME], {INPUT_NAME: calibration})[0]  # type: ignore[attr-defined]
    bias = -(features.mean(axis=0) @ fc_weights(probe))
    model = build_resnet50(seed, fc_bias=bias)
    onnx.save(model, str(root / SYNTHETIC_MODEL))
    session = _session(model)

    accepted: list[tuple[str, int]] = []
    attempts = 0
    while len(accepted) < images:
        attempts += BATCH
        if attempts > images * 20 + 200:
            raise RuntimeError("synthetic dataset: too few images with a clear top-1 answer")
        names: list[str] = []
        batch: list[np.ndarray] = []
        for _ in range(BATCH):
            name = f"ILSVRC2012_val_{len(accepted) + len(names) + 1:08d}.JPEG"
            path = val_dir / name
            cv2.imwrite(str(path), _random_image(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
            names.append(name)
            batch.append(load_and_preprocess(path))  # label what the SUT will decode
        probs = session.run([SOFTMAX_OUTPUT], {INPUT_NAME: np.stack(batch)})[0]  # type: ignore[attr-defined]
        kept = 0
        for name, p in zip(names, probs, strict=True):
            order = np.argsort(p)[::-1]
            top1, top2 = float(p[order[0]]), float(p[order[1]])
            clear = (top1 - top2) / top1 >= MIN_RELATIVE_MARGIN
            if order[0] == 0 or not clear or len(accepted) >= images:
                (val_dir / name).unlink()
                continue
            final = f"ILSVRC2012_val_{len(accepted) + 1:08d}.JPEG"
            (val_dir / name).rename(val_dir / f"{final}.keep")
            accepted.append((final, int(order[0]) - 1))
            kept += 1
        for kept_file in val_dir.glob("*.keep"):
            kept_file.rename(kept_file.with_suffix(""))
        if progress and kept:
            progress(kept)

    (root / SYNTHETIC_DATASET / VAL_MAP).write_text(
        "".join(f"val/{name} {label}\n" for name, label in accepted)
    )
    distinct = len({label for _, label in accepted})
    meta = {
        "kind": "synthetic",
        "note": "random weights; labels are its own FP32 answers: accuracy is a plumbing check",
        "images": images,
        "seed": seed,
        "generator_version": SYNTHETIC_VERSION,
        "distinct_labels": distinct,
        "min_relative_margin": MIN_RELATIVE_MARGIN,
    }
    atomic_write_text(root / SYNTHETIC_MARKER, json.dumps(meta, indent=2) + "\n")
    result = load_existing(root)
    assert result is not None
    return result
