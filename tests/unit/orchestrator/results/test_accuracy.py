"""accuracy.txt from a real accuracy log, in the official format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.layout import labels, read_val_map
from orchestrator.errors import ResultError
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


def _golden_records(golden: Path) -> tuple[list[dict[str, object]], list[int]]:
    folder = golden / "loadgen" / "Offline-accuracy"
    records = json.loads((folder / "mlperf_log_accuracy.json").read_text())
    return records, labels(read_val_map(folder))


def test_short_log_is_an_error_not_a_low_score(golden: Path, tmp_path: Path) -> None:
    records, expected = _golden_records(golden)
    short = [r for r in records if r["qsl_idx"] not in (3, 17, 42)]
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(short))
    with pytest.raises(ResultError) as caught:
        score_accuracy_log(log, expected)
    assert caught.value.message == (
        "mlperf_log_accuracy.json holds 61 of 64 samples; missing qsl indices 3, 17, 42"
    )
    assert caught.value.exit_code == 8


def test_many_missing_indices_are_listed_first_few(golden: Path, tmp_path: Path) -> None:
    records, expected = _golden_records(golden)
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(json.dumps([r for r in records if int(str(r["qsl_idx"])) >= 40]))
    with pytest.raises(ResultError, match=r"holds 24 of 64 samples; missing qsl indices "
                       r"0, 1, 2, 3, 4, 5, 6, 7 and 32 more$"):  # fmt: skip
        score_accuracy_log(log, expected)


def test_empty_log_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text("[]\n")
    with pytest.raises(ResultError, match="holds 0 of 3 samples"):
        score_accuracy_log(log, [1, 2, 3])


def test_cut_off_accuracy_log_is_an_error(golden: Path, tmp_path: Path) -> None:
    text = (golden / "loadgen" / "Offline-accuracy" / "mlperf_log_accuracy.json").read_text()
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(text[: len(text) // 2])
    with pytest.raises(ResultError, match="cannot read"):
        score_accuracy_log(log, [0] * 64)


def test_malformed_record_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "acc.json"
    log.write_text(json.dumps([_record(0, 0, 5), {"seq_id": 1, "data": "00"}]))
    with pytest.raises(ResultError, match=r"response #1 is malformed \(KeyError"):
        score_accuracy_log(log, [5, 8])
