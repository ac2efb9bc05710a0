"""accuracy.txt from a real accuracy log, in the official format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backends.common.layout import labels, read_val_map
from orchestrator.results.accuracy import Accuracy, score_accuracy_log
from orchestrator.results.loadgen_log import parse_accuracy_line


def test_golden_accuracy_log_scores_all(golden: Path) -> None:
    folder = golden / "loadgen" / "Offline-accuracy"
    expected = labels(read_val_map(folder))
    accuracy = score_accuracy_log(folder / "mlperf_log_accuracy.json", expected)
    assert accuracy == Accuracy(good=64, total=64)
    assert accuracy.line() == "accuracy=100.000%, good=64, total=64"
    assert parse_accuracy_line(accuracy.line()) == (100.0, 64, 64)


def _record(seq: int, idx: int, label: float) -> dict[str, object]:
    return {
        "seq_id": seq,
        "qsl_idx": idx,
        "data": np.array([label], np.float32).tobytes().hex().upper(),
    }


def test_duplicates_count_once_and_wrong_labels_fail(tmp_path: Path) -> None:
    log = tmp_path / "acc.json"
    log.write_text(
        json.dumps([_record(0, 0, 5), _record(1, 1, 7), _record(2, 0, 5), _record(3, 2, 1)])
    )
    accuracy = score_accuracy_log(log, [5, 8, 1])
    assert (accuracy.good, accuracy.total) == (2, 3)
    assert accuracy.line() == "accuracy=66.667%, good=2, total=3"
