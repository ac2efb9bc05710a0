"""The accuracy gate follows the closed rule (99 % of FP32's top-1 accuracy), not agreement.

Labels are simulated: the truth, FP32's answers and a quantized model's answers with errors
injected at known images, so each case's true ratio is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from backends.dell_trt import guard
from contract.accuracy_gate import PairedCounts, Verdict, judge
from orchestrator.assets.prepare import _check_guard
from orchestrator.console import Terminal
from orchestrator.errors import AccuracyGuardFailed


def _synthetic(n: int, wrong: int) -> tuple[list[int], list[int], list[int]]:
    """Synthetic data: the labels are FP32's own answers; the quantized model misses `wrong`."""
    truth = [i % 1000 for i in range(n)]
    quantized = list(truth)
    for i in range(wrong):
        quantized[i * (n // wrong)] = (truth[i * (n // wrong)] + 1) % 1000
    return truth, list(truth), quantized


def _labelled(
    n: int, fp32_right: int, lost: int, gained: int, both_wrong_differently: int
) -> tuple[list[int], list[int], list[int]]:
    """Real-data shape: FP32 right on `fp32_right` images; the quantized model loses `lost` of
    them, gains `gained` of FP32's misses, and answers `both_wrong_differently` of the rest with
    another wrong label."""
    truth = [i % 1000 for i in range(n)]
    fp32 = [t if i < fp32_right else (t + 1) % 1000 for i, t in enumerate(truth)]
    quantized = list(fp32)
    for i in range(lost):
        quantized[i] = (truth[i] + 2) % 1000
    misses = list(range(fp32_right, n))
    for i in misses[:gained]:
        quantized[i] = truth[i]
    for i in misses[gained : gained + both_wrong_differently]:
        quantized[i] = (truth[i] + 3) % 1000
    return truth, fp32, quantized


def test_counts_pair_each_image() -> None:
    counts = PairedCounts.of([1, 2, 3, 4, 5], [1, 2, 0, 0, 9], [1, 0, 3, 0, 8])
    assert (counts.both, counts.fp32_only, counts.quantized_only, counts.neither) == (1, 1, 1, 2)
    assert counts.agree == 2  # images 1 and 4 (both wrong, same label)
    assert counts.n == 5
    assert PairedCounts.from_dict(json.loads(json.dumps(counts.__dict__))) == counts


def test_ratio_0_995_on_synthetic_labels_passes() -> None:
    result = judge(PairedCounts.of(*_synthetic(2000, 10)))
    assert result.ratio == pytest.approx(0.995)
    assert result.verdict is Verdict.PASS
    assert result.ratio_low is not None
    assert result.ratio_low >= 0.99


def test_ratio_0_97_on_synthetic_labels_is_refused() -> None:
    result = judge(PairedCounts.of(*_synthetic(300, 9)))
    assert result.ratio == pytest.approx(0.97)
    assert result.verdict is Verdict.FAIL
    assert result.ratio_high is not None
    assert result.ratio_high < 0.99


def test_on_synthetic_labels_the_ratio_is_the_agreement() -> None:
    counts = PairedCounts.of(*_synthetic(500, 4))
    assert judge(counts).ratio == pytest.approx(counts.agreement)


def test_few_images_cannot_tell_a_small_loss() -> None:
    result = judge(PairedCounts.of(*_synthetic(400, 2)))  # 0.995 on 400 images
    assert result.verdict is Verdict.UNCERTAIN
    assert result.ratio_low < 0.99 <= result.ratio_high  # type: ignore[operator]


def test_97_percent_agreement_can_meet_the_rule() -> None:
    """What INT8 ResNet50 does on ImageNet: ~3 % disagreement with FP32, yet 99.5 % of its
    accuracy. An agreement gate at 99 % refused this; the rule does not."""
    counts = PairedCounts.of(*_labelled(10_000, 7646, 100, 60, 140))
    assert counts.agreement == pytest.approx(0.97)
    result = judge(counts)
    assert result.ratio == pytest.approx(7606 / 7646)
    assert result.verdict is Verdict.PASS


def test_a_real_loss_with_high_agreement_is_refused() -> None:
    """99 % agreement but every disagreement loses a right answer: 98.7 % of FP32's accuracy."""
    counts = PairedCounts.of(*_labelled(10_000, 7646, 100, 0, 0))
    assert counts.agreement == pytest.approx(0.99)
    assert judge(counts).verdict is Verdict.FAIL


def test_no_fp32_answer_right_cannot_be_judged() -> None:
    truth = [1, 2, 3]
    result = judge(PairedCounts.of(truth, [0, 0, 0], [0, 0, 0]))
    assert result.ratio is None
    assert result.verdict is Verdict.UNCERTAIN
    assert "unknown" in result.summary()


def test_guard_result_round_trips_and_enforces_agreement_only_when_asked() -> None:
    truth, fp32, quantized = _labelled(10_000, 7646, 100, 60, 140)
    reference = guard.Reference(np.asarray(fp32, np.int32), np.asarray(truth, np.int32))
    result = guard.compare(np.asarray(quantized, np.int32), reference)
    assert result.passed
    assert len(result.disagreements) == 300
    assert guard.GuardResult.from_dict(json.loads(json.dumps(result.as_dict()))) == result
    strict = guard.compare(np.asarray(quantized, np.int32), reference, min_agreement=0.99)
    assert not strict.passed
    with pytest.raises(guard.GuardFailed, match="agreement asked"):
        guard.require(strict, "the s8s8 model")


def _record(truth: list[int], fp32: list[int], quantized: list[int]) -> dict[str, object]:
    reference = guard.Reference(np.asarray(fp32, np.int32), np.asarray(truth, np.int32))
    return json.loads(
        json.dumps(guard.compare(np.asarray(quantized, np.int32), reference).as_dict())
    )


def test_the_host_refuses_a_clear_miss(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AccuracyGuardFailed, match="misses the accuracy rule") as caught:
        _check_guard(_record(*_synthetic(300, 9)), None, "the s8s8 model", Terminal())
    assert "ratio 0.9700" in str(caught.value)
    assert caught.value.hint


def test_the_host_warns_when_the_images_cannot_tell(capsys: pytest.CaptureFixture[str]) -> None:
    _check_guard(_record(*_synthetic(400, 2)), None, "the u8s8 model", Terminal())
    assert "cannot tell" in capsys.readouterr().err


def test_the_host_enforces_min_agreement_when_given() -> None:
    record = _record(*_labelled(10_000, 7646, 100, 60, 140))
    _check_guard(record, None, "engine abc", Terminal())  # the rule alone: passes
    with pytest.raises(AccuracyGuardFailed, match=r"--min-agreement asks 99\.00 %"):
        _check_guard(record, 0.99, "engine abc", Terminal())


class _PaddingSlot:
    """A slot whose labels are right at its captured sizes and wrong elsewhere (a broken pad)."""

    def __init__(self, labels: dict[int, int], good_sizes: set[int]) -> None:
        self.labels, self.good_sizes, self.batch = labels, good_sizes, []

    def submit(self, indices: list[int]) -> None:
        self.batch = indices

    def wait(self) -> np.ndarray:
        ok = len(self.batch) in self.good_sizes
        return np.array([self.labels[i] + (0 if ok else 1) for i in self.batch], np.int32)


def test_the_batch_size_check_feeds_each_size_and_counts_matches() -> None:
    from backends.dell_trt.gpu_device import check_batch_sizes, default_graph_sizes

    indices = list(range(50))
    labels = {i: i % 7 for i in indices}
    sizes = check_batch_sizes(256, default_graph_sizes(256))
    assert sizes[0] == 1
    assert sizes[-1] == 256
    good = guard.batch_size_check(
        _PaddingSlot(labels, set(sizes)), indices, sizes, list(labels.values())
    )
    assert good == {"sizes": list(sizes), "samples": sum(sizes), "agree": sum(sizes)}
    bad = guard.batch_size_check(_PaddingSlot(labels, {256}), indices, sizes, list(labels.values()))
    assert bad["agree"] == 256  # only the full batch was right
    record = {**_record(*_synthetic(300, 0)), "batch_check": bad}
    with pytest.raises(AccuracyGuardFailed, match="answers differently at batch sizes"):
        _check_guard(record, None, "engine e1", Terminal())
    _check_guard({**record, "batch_check": good}, None, "engine e1", Terminal())
