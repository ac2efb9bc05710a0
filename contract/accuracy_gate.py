"""The accuracy gate of a quantized model, as the closed-division rule states it (stdlib only).

The rule for ResNet50 is about accuracy, not agreement: the submission's top-1 accuracy over the
50 000 validation images must be at least 99 % of the FP32 reference's (76.46 % → 75.695 %).
INT8 ResNet50 commonly disagrees with FP32 on 1–3 % of the images while meeting that rule (its
mistakes and FP32's partly cancel), so a gate on top-1 agreement refuses models that would pass.

Here both models answer the same N labelled guard images; the paired outcome of each image
(both right, only FP32 right, only the quantized model right, neither) gives

    d = quantized_correct − ratio × fp32_correct,     the rule holds on the images iff mean(d) ≥ 0

with a one-sided normal (Wald) bound on mean(d) from the paired counts. The verdict:
- PASS when the lower bound is ≥ 0 (the rule is met with the stated confidence);
- FAIL when the upper bound is < 0 (the rule is clearly missed: refuse);
- UNCERTAIN otherwise (too few images to tell: warn, run, let the accuracy run decide).

On synthetic data the labels are the FP32 model's own answers, so FP32 scores 100 % and the ratio
is the agreement. The backend computes the counts; host and backend judge them with `judge`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from contract.resnet50 import ACCURACY_RATIO

CONFIDENCE = 0.95
# A TensorRT engine's labels at 1, a prime, one past a CUDA graph boundary and the full batch
# must match its full-batch labels at least this often (padded graphs, odd batches).
BATCH_CHECK_AGREEMENT = 0.99
_Z = {0.90: 1.2816, 0.95: 1.6449, 0.975: 1.9600, 0.99: 2.3263}  # one-sided normal quantiles


class Verdict(StrEnum):
    PASS = "pass"
    UNCERTAIN = "uncertain"
    FAIL = "fail"


@dataclass(frozen=True)
class PairedCounts:
    """How the quantized model and FP32 fared on the same labelled images."""

    both: int  # both right
    fp32_only: int  # only FP32 right
    quantized_only: int  # only the quantized model right
    neither: int
    agree: int  # same top-1 label (right or wrong)

    def __post_init__(self) -> None:
        values = (self.both, self.fp32_only, self.quantized_only, self.neither, self.agree)
        if min(values) < 0:
            raise ValueError(f"negative count in {self}")
        if self.agree > self.n or self.agree < self.both:
            raise ValueError(f"agree={self.agree} must lie in both..n ({self.both}..{self.n})")

    @property
    def n(self) -> int:
        return self.both + self.fp32_only + self.quantized_only + self.neither

    @property
    def fp32_accuracy(self) -> float:
        return (self.both + self.fp32_only) / self.n if self.n else 0.0

    @property
    def quantized_accuracy(self) -> float:
        return (self.both + self.quantized_only) / self.n if self.n else 0.0

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else 0.0

    @classmethod
    def of(
        cls, truth: Iterable[int], fp32: Iterable[int], quantized: Iterable[int]
    ) -> PairedCounts:
        counts = {"both": 0, "fp32_only": 0, "quantized_only": 0, "neither": 0, "agree": 0}
        for label, f, q in zip(truth, fp32, quantized, strict=True):
            f_right, q_right = f == label, q == label
            key = ("neither", "quantized_only", "fp32_only", "both")[2 * f_right + q_right]
            counts[key] += 1
            counts["agree"] += f == q
        return cls(**counts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedCounts:
        return cls(**{key: int(data[key]) for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class GateResult:
    counts: PairedCounts
    rule_ratio: float
    confidence: float
    ratio: float | None  # quantized / FP32 accuracy on these images (None: FP32 got none right)
    ratio_low: float | None  # the one-sided bounds at `confidence`
    ratio_high: float | None
    verdict: Verdict

    def summary(self) -> str:
        c = self.counts
        if self.ratio is None:
            return f"FP32 answered none of the {c.n} guard images right: accuracy ratio unknown"
        bounds = f"{self.ratio_low:.4f}..{self.ratio_high:.4f}"
        return (
            f"accuracy {100 * c.quantized_accuracy:.2f} % vs FP32 {100 * c.fp32_accuracy:.2f} % "
            f"on {c.n} images: ratio {self.ratio:.4f} ({100 * self.confidence:.0f} % bounds "
            f"{bounds}, rule ≥ {self.rule_ratio}) → {self.verdict}; "
            f"agreement {100 * c.agreement:.2f} %"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": str(self.verdict), "counts": asdict(self.counts)}


def _z(confidence: float) -> float:
    try:
        return _Z[confidence]
    except KeyError:
        raise ValueError(f"confidence must be one of {sorted(_Z)}, got {confidence}") from None


def judge(
    counts: PairedCounts, rule_ratio: float = ACCURACY_RATIO, confidence: float = CONFIDENCE
) -> GateResult:
    """The rule's verdict on `counts` (see the module docstring)."""
    n, fp32_acc = counts.n, counts.fp32_accuracy
    if n == 0 or fp32_acc == 0.0:
        return GateResult(counts, rule_ratio, confidence, None, None, None, Verdict.UNCERTAIN)
    # d per image: both right 1−ρ, only FP32 −ρ, only quantized 1, neither 0
    values = (
        (1.0 - rule_ratio, counts.both),
        (-rule_ratio, counts.fp32_only),
        (1.0, counts.quantized_only),
        (0.0, counts.neither),
    )
    mean = sum(v * k for v, k in values) / n
    spread = sum(k * (v - mean) ** 2 for v, k in values) / max(n - 1, 1)
    margin = _z(confidence) * math.sqrt(spread / n)
    low, high = mean - margin, mean + margin
    verdict = Verdict.PASS if low >= 0 else Verdict.FAIL if high < 0 else Verdict.UNCERTAIN
    ratio = counts.quantized_accuracy / fp32_acc
    return GateResult(
        counts,
        rule_ratio,
        confidence,
        ratio,
        rule_ratio + low / fp32_acc,
        rule_ratio + high / fp32_acc,
        verdict,
    )


def judge_record(gate: Mapping[str, Any]) -> GateResult:
    """The verdict again from a recorded `GateResult.as_dict()`: from its counts, rule ratio and
    confidence (what the backend recorded is re-judged here, never trusted as a verdict)."""
    return judge(
        PairedCounts.from_dict(gate["counts"]), float(gate["rule_ratio"]), float(gate["confidence"])
    )
