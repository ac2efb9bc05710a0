"""The FP32 agreement guard: a quantized model must give the FP32 model's top-1 answers.

Run after every quantized build (the onnxruntime CPU twin here, each TensorRT engine on the GPU
side): the quantized side sees the INT8 linear preprocessing of N images, the FP32 side the float
preprocessing of the same crops, and at least `threshold` of the top-1 labels must agree. A
miscalibrated model, a broken fusion plugin or a wrong input encoding fails it long before an
accuracy run would. The quantized side is any `labels_of(int8_batch) -> int32 labels` callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.layout import read_val_map

DEFAULT_SAMPLES = 300
DEFAULT_THRESHOLD = 0.99
BATCH = 32

LabelsOf = Callable[[np.ndarray], np.ndarray]


class GuardFailed(RuntimeError):
    """A quantized model or engine disagrees with the FP32 model too often."""


@dataclass(frozen=True)
class GuardResult:
    n: int
    agree: int
    threshold: float
    disagreements: tuple[int, ...] = field(default=())  # sample positions, in check order

    @property
    def fraction(self) -> float:
        return self.agree / self.n if self.n else 0.0

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.fraction >= self.threshold

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"top-1 agreement with FP32 {self.agree}/{self.n} = {self.fraction:.4f} "
            f"(threshold {self.threshold}) {verdict}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardResult:
        return cls(
            n=int(data["n"]),
            agree=int(data["agree"]),
            threshold=float(data["threshold"]),
            disagreements=tuple(int(i) for i in data.get("disagreements", ())),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "agree": self.agree,
            "fraction": self.fraction,
            "threshold": self.threshold,
            "passed": self.passed,
            "disagreements": list(self.disagreements),
        }


@dataclass(frozen=True)
class GuardSamples:
    """The same images in both preprocessings (one crop each, so they differ by rounding only)."""

    relpaths: tuple[str, ...]
    int8: np.ndarray  # (n, 3, 224, 224) int8
    fp32: np.ndarray  # (n, 3, 224, 224) float32

    @classmethod
    def from_relpaths(cls, dataset_dir: Path, relpaths: Sequence[str]) -> GuardSamples:
        import cv2

        from backends.common.preprocess import crop_rgb, to_fp32, to_int8

        int8, fp32 = [], []
        for relpath in relpaths:
            image = cv2.imread(str(dataset_dir / relpath))
            if image is None:
                raise ValueError(f"cannot decode image {dataset_dir / relpath}")
            crop = crop_rgb(image)
            int8.append(to_int8(crop))
            fp32.append(to_fp32(crop))
        if not relpaths:
            raise ValueError("no guard images")
        return cls(tuple(relpaths), np.stack(int8), np.stack(fp32))

    @classmethod
    def from_dataset(cls, dataset_dir: Path, count: int = DEFAULT_SAMPLES) -> GuardSamples:
        """The first `count` images of val_map (all of them when it lists fewer)."""
        entries = read_val_map(dataset_dir)[:count]
        return cls.from_relpaths(dataset_dir, [entry.relpath for entry in entries])


def check(
    labels_of: LabelsOf,
    int8_samples: np.ndarray,
    reference: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    batch: int = BATCH,
) -> GuardResult:
    """Compare `labels_of` on the INT8 samples with the FP32 reference labels."""
    if len(int8_samples) != len(reference):
        raise ValueError(f"{len(int8_samples)} samples but {len(reference)} reference labels")
    if int8_samples.dtype != np.int8:
        raise TypeError(f"the quantized side takes int8 samples, got {int8_samples.dtype}")
    got = np.concatenate(
        [
            np.asarray(labels_of(int8_samples[start : start + batch])).reshape(-1)
            for start in range(0, len(int8_samples), batch)
        ]
    )
    return compare(got, reference, threshold)


def compare(
    got: np.ndarray, reference: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> GuardResult:
    """The agreement of labels `got` (one per sample, in order) with the FP32 `reference`."""
    if got.shape != reference.shape:
        raise ValueError(f"labels_of returned {got.shape[0]} labels for {len(reference)} samples")
    wrong = np.flatnonzero(got != reference)
    return GuardResult(
        n=len(reference),
        agree=len(reference) - len(wrong),
        threshold=threshold,
        disagreements=tuple(int(i) for i in wrong),
    )


def slot_labels(slots: Sequence[Any], indices: Sequence[int]) -> np.ndarray:
    """Top-1 labels of the QSL samples at `indices`, in order, run the way the harness runs
    them: batches of each slot's capacity, every slot busy at once, round after round.

    For guarding an engine on the very path a test uses (every execution context, the CUDA
    graphs at padded sizes, the staged gather), not on a side path of its own.
    """
    if not slots:
        raise ValueError("a device without slots")
    labels: list[np.ndarray] = []
    position = 0
    while position < len(indices):
        busy = []
        for slot in slots:
            if position >= len(indices):
                break
            batch = list(indices[position : position + slot.capacity])
            position += len(batch)
            slot.submit(batch)
            busy.append(slot)
        labels.extend(np.array(slot.wait(), np.int32).reshape(-1) for slot in busy)
    return np.concatenate(labels) if labels else np.zeros(0, np.int32)


def require(result: GuardResult, what: str) -> GuardResult:
    """Raise GuardFailed unless `result` passed (the message names `what` and the figures)."""
    if not result.passed:
        shown = ", ".join(str(i) for i in result.disagreements[:10])
        raise GuardFailed(f"{what}: {result.summary()}; first disagreements at samples {shown}")
    return result


def cpu_session(model_path: Path, threads: int = 0, config: dict[str, str] | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def fp32_labels(
    recipe_fp32: Path, fp32_samples: np.ndarray, batch: int = BATCH, threads: int = 0
) -> np.ndarray:
    """Labels 0–999 of the rewritten FP32 model (float input) on onnxruntime CPU."""
    session = cpu_session(recipe_fp32, threads)
    name = session.get_inputs()[0].name
    return np.concatenate(
        [
            np.asarray(session.run(None, {name: fp32_samples[start : start + batch]})[0])
            for start in range(0, len(fp32_samples), batch)
        ]
    ).astype(np.int32)


def ort_labels_of(model_path: Path, encoding: str, threads: int = 0) -> LabelsOf:
    """The quantized model on onnxruntime CPU as a guard callable.

    u8s8 runs with the kernels the CPU twin uses (on x86 without VNNI their 16-bit pairwise
    sums can saturate: the guard then judges what the twin will answer). s8s8 is TensorRT's
    model; onnxruntime's CPU emulates its int8 activations through uint8, so its check asks for
    the exact (slower) path: the guard judges the model, not that emulation.
    """
    config = {"session.x64quantprecision": "1"} if encoding == "s8s8" else {}
    session = cpu_session(model_path, threads, config)
    name = session.get_inputs()[0].name

    def labels_of(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch})[0])

    return labels_of


def load_fp32_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(QSL indices, FP32 labels) a prepared artifact recorded (`recipe.FP32_LABELS_FILE`), for
    guarding later builds, e.g. a TensorRT engine fed the same samples from the INT8 cache."""
    data = json.loads(path.read_text())
    return np.asarray(data["indices"], np.int64), np.asarray(data["labels"], np.int32)
