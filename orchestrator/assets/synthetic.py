"""`mlorch assets synthetic`: a seeded stand-in for the ResNet50 model and ImageNet.

Writes `model/resnet50_v1.onnx` (ResNet50-v1.5 shape, random weights) and `imagenet/` in the
ImageNet validation layout (JPEGs + `val_map.txt`). Each image's label is the FP32 model's own
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

from backends.common.imagenet import VAL_MAP, load_and_preprocess, preprocess_bgr
from orchestrator.assets.synthetic_model import (
    FEATURES_NAME,
    SOFTMAX_NAME,
    build_resnet50,
    fc_weights,
)

MODEL_FILE = "resnet50_v1.onnx"
MANIFEST = "assets.json"
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


def synthetic_root(cache_dir: Path, images: int, seed: int) -> Path:
    return cache_dir / "assets" / f"synthetic-s{seed}-n{images}"


def load_existing(root: Path) -> SyntheticAssets | None:
    manifest = root / MANIFEST
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_text())
    return SyntheticAssets(
        root=root,
        model=root / "model" / MODEL_FILE,
        dataset=root / "imagenet",
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
    """Generate (or regenerate) the synthetic model and dataset under `root`."""
    import cv2
    import onnx

    rng = np.random.default_rng(seed + 1)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    val_dir = staging / "imagenet" / "val"
    val_dir.mkdir(parents=True)
    (staging / "model").mkdir()

    # Random features share a large common component; cancelling its mean with the FC bias
    # lets the image, not the weights, decide the top-1 class, so labels vary.
    probe = build_resnet50(seed, with_features=True)
    calibration = np.stack([preprocess_bgr(_random_image(rng)) for _ in range(CALIBRATION_IMAGES)])
    features = _session(probe).run([FEATURES_NAME], {"input_tensor:0": calibration})[0]  # type: ignore[attr-defined]
    bias = -(features.mean(axis=0) @ fc_weights(probe))
    model = build_resnet50(seed, fc_bias=bias)
    onnx.save(model, str(staging / "model" / MODEL_FILE))
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
        probs = session.run([SOFTMAX_NAME], {"input_tensor:0": np.stack(batch)})[0]  # type: ignore[attr-defined]
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

    (staging / "imagenet" / VAL_MAP).write_text(
        "".join(f"val/{name} {label}\n" for name, label in accepted)
    )
    distinct = len({label for _, label in accepted})
    meta = {
        "kind": "synthetic",
        "note": "random weights; labels are its own FP32 answers: accuracy is a plumbing check",
        "images": images,
        "seed": seed,
        "distinct_labels": distinct,
        "min_relative_margin": MIN_RELATIVE_MARGIN,
    }
    (staging / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    result = load_existing(root)
    assert result is not None
    return result
