"""A seeded stand-in for the ResNet50 model and ImageNet (runs inside a backend image).

Writes `model/resnet50_v1.onnx` (ResNet50-v1.5 shape: a seeded random-weight body and a
classifier head built from the images' own features, see `prototype_head`) and `imagenet/` in the
ImageNet validation layout (JPEGs + `val_map.txt`), then `assets.json` last as the completion
marker (names and paths: `contract.layout`). Each image's label is the FP32 model's own
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

from backends.common.preprocess import load_and_preprocess
from backends.common.synthetic_model import FEATURES_NAME, build_resnet50
from contract.layout import (
    SYNTHETIC_DATASET,
    SYNTHETIC_MARKER,
    SYNTHETIC_MODEL,
    SYNTHETIC_VERSION,
    VAL_MAP,
    synthetic_root,
)
from contract.locks import atomic_write_text
from contract.resnet50 import INPUT_NAME, NUM_CLASSES_WITH_BACKGROUND, SOFTMAX_OUTPUT

__all__ = ["SyntheticAssets", "load_existing", "make_synthetic_assets", "synthetic_root"]
# Every image's top-1 probability must beat the runner-up by this relative margin, so
# numerically different (but correct) runtimes cannot flip a label.
MIN_RELATIVE_MARGIN = 0.02
BATCH = 16
CLASS_STRIDE = 389  # coprime with 1000: image i → class 1 + 389·i mod 1000, all distinct


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


def _class_of(position: int) -> int:
    """The class (1..1000 in the 1001-class space) the head gives the image at `position`:
    a permutation, so up to 1000 images get distinct classes spread over the whole range."""
    return 1 + (position * CLASS_STRIDE) % 1000


def prototype_head(features: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a classifier that answers image i with class `_class_of(i)`.

    Random ResNet features of different images point in similar directions; a random head then
    separates them by hair-thin margins that INT8 rounding flips. Here class `_class_of(i)`'s
    weights are image i's centred, normalised features (its "prototype"), so each image's own
    logit leads by a wide margin, and the bias centres the logits.
    """
    centre = features.mean(axis=0)
    prototypes = features - centre
    prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
    weight = rng.standard_normal((features.shape[1], NUM_CLASSES_WITH_BACKGROUND)) * 1e-3
    for position, prototype in enumerate(prototypes):
        weight[:, _class_of(position)] += prototype
    return weight.astype(np.float32), (-(centre @ weight)).astype(np.float32)


def _clear(probabilities: np.ndarray) -> tuple[int, bool]:
    """(top-1 class, whether it beats the runner-up by the required margin)."""
    order = np.argsort(probabilities)[::-1]
    top1, top2 = float(probabilities[order[0]]), float(probabilities[order[1]])
    return int(order[0]), top1 > 0 and (top1 - top2) / top1 >= MIN_RELATIVE_MARGIN


def _run_batches(session: object, output: str, samples: np.ndarray) -> np.ndarray:
    """One output of the model over all samples, BATCH at a time."""
    return np.concatenate(
        [
            session.run([output], {INPUT_NAME: samples[i : i + BATCH]})[0]  # type: ignore[attr-defined]
            for i in range(0, len(samples), BATCH)
        ]
    )


def _own_labels(probabilities: np.ndarray) -> list[int]:
    """Each image's label: the FP32 model's clear answer, which must be the class the image
    was made for (else another seed is needed)."""
    labels = []
    for position, row in enumerate(probabilities):
        top1, clear = _clear(row)
        if top1 != _class_of(position) or not clear:
            raise RuntimeError(
                f"synthetic image {position} answers class {top1} (expected "
                f"{_class_of(position)}, clear margin: {clear}): try another --seed"
            )
        labels.append(top1 - 1)  # the reference decodes ArgMax − 1
    return labels


def make_synthetic_assets(
    root: Path,
    images: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> SyntheticAssets:
    """Generate (or regenerate) the synthetic model and dataset under `root`.

    `root` may be a mount point: its contents are replaced, and `assets.json` is written last.
    The images come first; the classifier head is built from their features (a prototype per
    image), and each image's label is what the final FP32 model answers for it.
    """
    import cv2
    import onnx

    if not 0 < images <= 1000:
        raise ValueError("synthetic datasets hold 1 to 1000 images (one class each)")
    rng = np.random.default_rng(seed + 1)
    root.mkdir(parents=True, exist_ok=True)
    (root / SYNTHETIC_MARKER).unlink(missing_ok=True)
    for stale in (SYNTHETIC_DATASET, SYNTHETIC_MODEL.parent):
        shutil.rmtree(root / stale, ignore_errors=True)
    val_dir = root / SYNTHETIC_DATASET / "val"
    val_dir.mkdir(parents=True)
    (root / SYNTHETIC_MODEL.parent).mkdir()

    # The images, decoded as the SUT will decode them (JPEG round trip included).
    names = [f"ILSVRC2012_val_{number:08d}.JPEG" for number in range(1, images + 1)]
    batch: list[np.ndarray] = []
    for name in names:
        cv2.imwrite(str(val_dir / name), _random_image(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
        batch.append(load_and_preprocess(val_dir / name))
        if progress and len(batch) % BATCH == 0:
            progress(BATCH // 2)
    samples = np.stack(batch)

    probe = _session(build_resnet50(seed, with_features=True))
    features = _run_batches(probe, FEATURES_NAME, samples)
    weight, bias = prototype_head(features, np.random.default_rng(seed + 2))
    model = build_resnet50(seed, fc_bias=bias, fc_weight=weight)
    onnx.save(model, str(root / SYNTHETIC_MODEL))
    labels = _own_labels(_run_batches(_session(model), SOFTMAX_OUTPUT, samples))
    if progress:
        progress(images - images // BATCH * (BATCH // 2))

    (root / SYNTHETIC_DATASET / VAL_MAP).write_text(
        "".join(f"val/{name} {label}\n" for name, label in zip(names, labels, strict=True))
    )
    meta = {
        "kind": "synthetic",
        "note": "random-weight ResNet50 body, prototype head; labels are its own FP32 answers: "
        "accuracy is a plumbing check",
        "images": images,
        "seed": seed,
        "generator_version": SYNTHETIC_VERSION,
        "distinct_labels": len(set(labels)),
        "min_relative_margin": MIN_RELATIVE_MARGIN,
    }
    atomic_write_text(root / SYNTHETIC_MARKER, json.dumps(meta, indent=2) + "\n")
    result = load_existing(root)
    assert result is not None
    return result
