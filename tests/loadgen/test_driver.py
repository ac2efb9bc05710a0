"""Real LoadGen on the host: the driver's one-test-per-process rule and the reference SUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backends.common.preprocess import prepare_cache
from contract.layout import labels, read_val_map
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


def _run_reference(
    model: Path, cache: Path, out: Path, scenario: str, mode: str, sizing: str | None = None
) -> None:
    conf = out.parent / f"{scenario}.conf"
    extra = out.with_suffix(".extra")  # lines a test adds after the shared ones
    conf.write_text(
        TINY_CONF.replace("override = 8", "override = 64")
        + "*.Offline.target_qps = 20\n*.SingleStream.target_latency = 50\n"
        "*.MultiStream.target_latency = 400\n*.Server.target_qps = 25\n"
        + (extra.read_text() if extra.is_file() else "")
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
        *(("--sizing", sizing) if sizing else ()),
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
    # The conf's expected rate is a guess; the test sizes itself from its measured pass, so
    # it lasts its minimum duration (VALID) on a host of any speed.
    _run_reference(model, preprocessed, out, "Offline", "PerformanceOnly", sizing="quick")
    result = result_from_logs(out, "Offline", "PerformanceOnly")
    assert result.valid is True, result
    assert result.value is not None
    assert result.value > 0
    assert result.errors == ()
    sizing = json.loads((out / "harness.json").read_text())["sizing"]
    measured = sizing["measurement"]["samples_per_second"]
    assert sizing["setting"] == "offline_expected_qps"
    assert sizing["value"] == pytest.approx(measured * 1.25 * 2, rel=1e-3)


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream"])
def test_reference_sut_sized_latency_runs_never_run_out_of_queries(
    synthetic_assets: tuple[Path, Path], preprocessed: Path, tmp_path: Path, scenario: str
) -> None:
    """A latency guess far above the host's (the conf says 50 / 400 ms) ran out of generated
    queries on fast hosts (ERR); the sized test expects half the measured latency instead.
    SingleStream runs the 64 queries its early stopping needs and is VALID; MultiStream's p99
    would need 662, so with 8 early stopping is the only condition left unmet."""
    model, _ = synthetic_assets
    out = tmp_path / "perf"
    if scenario == "SingleStream":
        (tmp_path / "perf.extra").write_text("*.SingleStream.min_query_count = 64\n")
    _run_reference(model, preprocessed, out, scenario, "PerformanceOnly", sizing="quick")
    result = result_from_logs(out, scenario, "PerformanceOnly")
    assert result.errors == (), result.errors
    if scenario == "SingleStream":
        assert result.valid is True, result
    else:
        assert result.unmet == ("early stopping",), result
    sizing = json.loads((out / "harness.json").read_text())["sizing"]
    assert sizing["measurement"]["latency_ms"] > 0
