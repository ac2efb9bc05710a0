"""Real LoadGen on the host: the driver's one-test-per-process rule and the reference SUT."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backends.common.layout import labels, read_val_map
from backends.common.preprocess import prepare_cache
from orchestrator.results.accuracy import score_accuracy_log
from orchestrator.results.loadgen_log import result_from_logs

pytestmark = pytest.mark.loadgen

TINY_CONF = (
    "*.*.min_duration = 200\n*.*.min_query_count = 8\n*.*.performance_sample_count_override = 8\n"
)


def test_second_test_in_one_process_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text(TINY_CONF + "resnet50.Offline.target_qps = 100\n")
    result = subprocess.run(
        [sys.executable, "-m", "tests.loadgen.standin", "--conf", str(conf),
         "--out", str(tmp_path / "first"), "--out", str(tmp_path / "second")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "REFUSED: one LoadGen test per process" in result.stdout
    first = result_from_logs(tmp_path / "first", "Offline", "PerformanceOnly")
    assert first.errors == ()
    assert not (tmp_path / "second").exists()


@pytest.fixture(scope="module")
def preprocessed(
    synthetic_assets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    _, dataset = synthetic_assets
    cache = tmp_path_factory.mktemp("cache")
    prepare_cache(dataset, cache, 64, workers=2)
    return cache


def _run_reference(model: Path, cache: Path, out: Path, scenario: str, mode: str) -> None:
    conf = out.parent / f"{scenario}.conf"
    conf.write_text(
        TINY_CONF.replace("override = 8", "override = 64")
        + "*.Offline.target_qps = 20\n*.SingleStream.target_latency = 50\n"
        "*.MultiStream.target_latency = 400\n*.Server.target_qps = 5\n"
    )
    command = [
        sys.executable,
        "-m",
        "backends.reference",
        "run",
        "--scenario",
        scenario,
        "--mode",
        mode,
        "--model",
        str(model),
        "--cache",
        str(cache),
        "--count",
        "64",
        "--performance-count",
        "64",
        "--user-conf",
        str(conf),
        "--output",
        str(out),
        "--threads",
        "2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_reference_sut_accuracy_is_exact_on_synthetic_data(
    synthetic_assets: tuple[Path, Path], preprocessed: Path, tmp_path: Path, scenario: str
) -> None:
    model, dataset = synthetic_assets
    out = tmp_path / "acc"
    _run_reference(model, preprocessed, out, scenario, "AccuracyOnly")
    accuracy = score_accuracy_log(out / "mlperf_log_accuracy.json", labels(read_val_map(dataset)))
    assert (accuracy.good, accuracy.total) == (64, 64)
    assert result_from_logs(out, scenario, "AccuracyOnly").errors == ()


def test_reference_sut_performance_logs(
    synthetic_assets: tuple[Path, Path], preprocessed: Path, tmp_path: Path
) -> None:
    model, _ = synthetic_assets
    out = tmp_path / "perf"
    _run_reference(model, preprocessed, out, "Offline", "PerformanceOnly")
    result = result_from_logs(out, "Offline", "PerformanceOnly")
    assert result.valid is True
    assert result.value is not None
    assert result.value > 0
    assert result.errors == ()
