"""The accuracy guard: a quantized model must keep 99 % of FP32's top-1 accuracy.

Run after every quantized build, before any test: in the model step on the CPU (both Q/DQ
models: the twin's U8S8 and TensorRT's S8S8, so a bad TensorRT model is refused before any GPU),
and on the GPU for each TensorRT engine. The quantized side sees the INT8 linear preprocessing
of N labelled images, the FP32 side the float preprocessing of the same crops; the paired
outcomes are judged by the closed rule's accuracy ratio (`contract.accuracy_gate`), and top-1
agreement with FP32 is reported beside it (and enforced only when a minimum is asked for). A
miscalibrated model, a broken fusion or a wrong input encoding fails long before an accuracy
run would. The quantized side is any `labels_of(int8_batch) -> int32 labels` callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.accuracy_gate import GateResult, PairedCounts, Verdict, judge, judge_record
from contract.layout import read_val_map

DEFAULT_SAMPLES = 300
BATCH = 32

LabelsOf = Callable[[np.ndarray], np.ndarray]


class GuardFailed(RuntimeError):
    """A quantized model or engine misses the accuracy rule (or the asked agreement)."""


@dataclass(frozen=True)
class GuardResult:
    gate: GateResult
    min_agreement: float | None = None  # enforced only when asked for
    disagreements: tuple[int, ...] = field(default=())  # sample positions, in check order

    @property
    def n(self) -> int:
        return self.gate.counts.n

    @property
    def fraction(self) -> float:
        """Top-1 agreement with FP32."""
        return self.gate.counts.agreement

    @property
    def passed(self) -> bool:
        if self.n == 0 or self.gate.verdict is Verdict.FAIL:
            return False
        return self.min_agreement is None or self.fraction >= self.min_agreement

    def summary(self) -> str:
        text = self.gate.summary()
        if self.min_agreement is not None:
            text += f" (agreement asked ≥ {100 * self.min_agreement:.2f} %)"
        return f"{text}: {'passed' if self.passed else 'FAILED'}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardResult:
        minimum = data.get("min_agreement")
        return cls(
            gate=judge_record(data["gate"]),
            min_agreement=None if minimum is None else float(minimum),
            disagreements=tuple(int(i) for i in data.get("disagreements", ())),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "agree": self.gate.counts.agree,
            "fraction": self.fraction,
            "min_agreement": self.min_agreement,
            "gate": self.gate.as_dict(),
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


@dataclass(frozen=True)
class Reference:
    """What the quantized answers are judged against: FP32's labels and the true ones."""

    fp32: np.ndarray  # int32, one per guard sample
    truth: np.ndarray  # int32, the dataset's labels of the same samples

    def __post_init__(self) -> None:
        if self.fp32.shape != self.truth.shape:
            raise ValueError(f"{len(self.fp32)} FP32 labels but {len(self.truth)} true labels")

    def __len__(self) -> int:
        return len(self.fp32)


def check(
    labels_of: LabelsOf,
    int8_samples: np.ndarray,
    reference: Reference,
    min_agreement: float | None = None,
    batch: int = BATCH,
) -> GuardResult:
    """Judge `labels_of` on the INT8 samples against the reference labels."""
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
    return compare(got, reference, min_agreement)


def compare(
    got: np.ndarray, reference: Reference, min_agreement: float | None = None
) -> GuardResult:
    """The gate on labels `got` (one per sample, in order) against `reference`."""
    if got.shape != reference.fp32.shape:
        raise ValueError(f"labels_of returned {got.shape[0]} labels for {len(reference)} samples")
    counts = PairedCounts.of(reference.truth.tolist(), reference.fp32.tolist(), got.tolist())
    wrong = np.flatnonzero(got != reference.fp32)
    return GuardResult(judge(counts), min_agreement, tuple(int(i) for i in wrong))


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


def batch_size_check(
    slot: Any, indices: Sequence[int], sizes: Sequence[int], expected: Sequence[int]
) -> dict[str, Any]:
    """Run one batch of each size in `sizes` through `slot` (guard samples taken in turn, the
    set repeated when it is smaller than a batch) and count the labels that equal `expected`
    (the labels of the same samples from the full-batch pass, by position in `indices`): a
    padded CUDA graph or an odd batch that computes garbage shows up here.

    `sizes` comes from `gpu_device.check_batch_sizes`: 1, a prime, one past a graph boundary
    and the full batch."""
    if not indices:
        raise ValueError("no guard samples")
    count, position, agree, total = len(indices), 0, 0, 0
    for size in sizes:
        positions = [(position + k) % count for k in range(size)]
        position = (position + size) % count
        slot.submit([indices[p] for p in positions])
        got = np.asarray(slot.wait(), np.int32).reshape(-1)
        if len(got) != size:
            raise ValueError(f"a batch of {size} returned {len(got)} labels")
        agree += sum(int(label) == expected[p] for label, p in zip(got, positions, strict=True))
        total += size
    return {"sizes": list(sizes), "samples": total, "agree": agree}


def require(result: GuardResult, what: str) -> GuardResult:
    """Raise GuardFailed unless `result` passed (the message names `what` and the figures)."""
    if not result.passed:
        shown = ", ".join(str(i) for i in result.disagreements[:10]) or "none"
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


def save_reference(path: Path, reference: Reference) -> None:
    """Record the guard samples' labels (`recipe.FP32_LABELS_FILE`) for guarding later builds."""
    from contract.locks import atomic_write_text

    data = {
        "indices": list(range(len(reference))),
        "labels": reference.fp32.tolist(),
        "truth": reference.truth.tolist(),
    }
    atomic_write_text(path, json.dumps(data) + "\n")


def load_reference(path: Path) -> tuple[np.ndarray, Reference]:
    """(QSL indices, reference labels) a prepared artifact recorded, for guarding later builds,
    e.g. a TensorRT engine fed the same samples from the INT8 cache."""
    data = json.loads(path.read_text())
    reference = Reference(np.asarray(data["labels"], np.int32), np.asarray(data["truth"], np.int32))
    return np.asarray(data["indices"], np.int64), reference
