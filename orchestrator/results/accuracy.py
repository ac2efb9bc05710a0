"""ImageNet top-1 accuracy from `mlperf_log_accuracy.json`, in the official accuracy.txt format.

Each logged response holds the label as float32 bytes (hex); a sample logged twice counts once,
as in the reference `accuracy-imagenet.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import ResultError


@dataclass(frozen=True)
class Accuracy:
    good: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.good / self.total if self.total else 0.0

    def line(self) -> str:
        return f"accuracy={self.percent:.3f}%, good={self.good}, total={self.total}"


def score_accuracy_log(accuracy_log: Path, labels: list[int], dtype: str = "float32") -> Accuracy:
    """Compare each logged response's first value with the expected label of its qsl_idx."""
    try:
        records = json.loads(accuracy_log.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {accuracy_log}: {exc}") from exc
    seen: set[int] = set()
    good = 0
    for record in records:
        index = int(record["qsl_idx"])
        if index in seen:
            continue
        seen.add(index)
        if index >= len(labels):
            raise ResultError(f"{accuracy_log}: qsl_idx {index} beyond the {len(labels)} labels")
        values = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.dtype(dtype))
        if values.size and int(values[0]) == labels[index]:
            good += 1
    return Accuracy(good=good, total=len(seen))


def logged_labels(accuracy_log: Path, dtype: str = "float32") -> dict[int, int]:
    """qsl_idx → the label the SUT answered (first logged response of each sample)."""
    try:
        records = json.loads(accuracy_log.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {accuracy_log}: {exc}") from exc
    answers: dict[int, int] = {}
    for record in records:
        index = int(record["qsl_idx"])
        if index not in answers:
            values = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.dtype(dtype))
            answers[index] = int(values[0]) if values.size else -1
    return answers


@dataclass(frozen=True)
class Agreement:
    agree: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.total if self.total else 0.0


def fp32_agreement(answers: dict[int, int], fp32_labels: dict[int, int]) -> Agreement:
    """How often the SUT's answers equal the FP32 model's, over the samples both have."""
    shared = [index for index in fp32_labels if index in answers]
    agree = sum(1 for index in shared if answers[index] == fp32_labels[index])
    return Agreement(agree, len(shared))
