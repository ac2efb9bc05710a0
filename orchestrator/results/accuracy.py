"""ImageNet top-1 accuracy from `mlperf_log_accuracy.json`, in the official accuracy.txt format.

Each logged response holds the label as float32 bytes (hex); a sample logged twice counts once,
as in the reference `accuracy-imagenet.py`. An accuracy run must log every sample of the data set:
a log that lacks some is an incomplete run, never a lower score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ResultError

MISSING_SHOWN = 8  # how many missing qsl indices an error names


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
    """Compare each logged response's first value with the expected label of its qsl_idx.

    `labels` holds the expected label of every sample the run used (qsl indices 0..n-1); each must
    appear in the log, otherwise ResultError names how many are there and which are missing.
    """
    seen: set[int] = set()
    good = 0
    for index, data in read_responses(accuracy_log):
        if index in seen:
            continue
        seen.add(index)
        if not 0 <= index < len(labels):
            raise ResultError(f"{accuracy_log}: qsl_idx {index} beyond the {len(labels)} labels")
        values = np.frombuffer(data, dtype=np.dtype(dtype))
        if values.size and int(values[0]) == labels[index]:
            good += 1
    if len(seen) < len(labels):
        missing = [index for index in range(len(labels)) if index not in seen]
        shown = ", ".join(str(index) for index in missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        raise ResultError(
            f"{accuracy_log.name} holds {len(seen)} of {len(labels)} samples; "
            f"missing qsl indices {shown}{more}",
            hint="the accuracy run did not answer every sample; the container.log next to it "
            "says why (an incomplete log is not scored)",
        )
    return Accuracy(good=good, total=len(seen))


def read_responses(accuracy_log: Path) -> list[tuple[int, bytes]]:
    """(qsl_idx, response bytes) of every logged response, in log order."""
    try:
        records = json.loads(accuracy_log.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultError(f"cannot read {accuracy_log}: {exc}") from exc
    if not isinstance(records, list):
        raise ResultError(f"{accuracy_log}: expected a JSON array of responses")
    return [_fields(accuracy_log, number, record) for number, record in enumerate(records)]


def _fields(accuracy_log: Path, number: int, record: Any) -> tuple[int, bytes]:
    """(qsl_idx, response bytes) of one logged response."""
    try:
        return int(record["qsl_idx"]), bytes.fromhex(record["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultError(
            f"{accuracy_log}: response #{number} is malformed ({type(exc).__name__}: {exc})"
        ) from exc


def logged_labels(accuracy_log: Path, dtype: str = "float32") -> dict[int, int]:
    """qsl_idx → the label the SUT answered (first logged response of each sample)."""
    answers: dict[int, int] = {}
    for index, data in read_responses(accuracy_log):
        if index not in answers:
            values = np.frombuffer(data, dtype=np.dtype(dtype))
            answers[index] = int(values[0]) if values.size else -1
    return answers


@dataclass(frozen=True)
class Agreement:
    agree: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.total if self.total else 0.0


def label_agreement(answers: dict[int, int], reference: dict[int, int]) -> Agreement:
    """How often `answers` equal `reference` (the FP32 model's, or another run's), over the
    samples both have."""
    shared = [index for index in reference if index in answers]
    agree = sum(1 for index in shared if answers[index] == reference[index])
    return Agreement(agree, len(shared))
