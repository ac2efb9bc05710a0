"""`mlorch up dell-trt --device cpu --quick`: the Dell/NVIDIA recipe's CPU twin end to end in real
containers: INT8 preprocessing, the model step (graph rewrite, one calibration, two Q/DQ
encodings, FP32 guard), all four scenarios through the LWIS harness and real LoadGen, both modes,
and the accuracy runs reporting their agreement with FP32."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from tests.engine.conftest import assert_sized_and_valid, mlorch

pytestmark = pytest.mark.engine

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")


@pytest.fixture(scope="module")
def twin_run(
    tmp_path_factory: pytest.TempPathFactory, engine: DockerEngine
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("dell-trt")
    result = mlorch("up", "dell-trt", "--device", "cpu", "--quick", cwd=work, timeout=1500)
    manifests = sorted((work / "runs").glob("*/manifest.json"))
    assert len(manifests) == 1, result.stderr[-4000:]
    return result, manifests[0].parent, json.loads(manifests[0].read_text())


def test_all_scenarios_and_modes_complete(
    twin_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    result, run_dir, manifest = twin_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert manifest["status"] == "complete"
    assert len(manifest["tests"]) == 8
    for scenario in SCENARIOS:
        for mode in ("performance", "accuracy"):
            folder = run_dir / "dell-trt" / scenario / mode
            for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "harness.json"):
                assert (folder / name).stat().st_size > 0, folder / name
            harness = json.loads((folder / "harness.json").read_text())
            assert harness["engine"] == "onnxruntime-cpu (twin)"
            # The local base has g++: the image compiled the native LoadGen issue path.
            assert harness["issue_path"] == "native"
            assert harness["native_loadgen"]["loadgen_version"] == "6.0.17"
            assert harness["harness_stats"]["samples"] > 0
        accuracy = (run_dir / "dell-trt" / scenario / "accuracy" / "accuracy.txt").read_text()
        assert accuracy.strip() == "accuracy=100.000%, good=64, total=64"
    assert "Traceback" not in result.stderr


def test_quick_twin_sizes_itself_and_is_valid(
    twin_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    _, run_dir, manifest = twin_run
    assert_sized_and_valid(run_dir, manifest, "dell-trt")


def test_recipe_is_recorded_and_guarded(
    twin_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    _, run_dir, manifest = twin_run
    harness = manifest["spec"]["harness"]
    assert harness["profile"] == "cpu-twin"
    assert harness["scenarios"]["Offline"]["batch_size"] >= 1
    recipe = manifest["recipe"]
    # Both Q/DQ models guarded on the CPU; the twin's u8s8 enforced, TensorRT's s8s8 recorded.
    cpu_guard, trt_guard = recipe["guards"]
    assert (cpu_guard["encoding"], cpu_guard["enforced"]) == ("u8s8", True)
    assert (trt_guard["encoding"], trt_guard["enforced"]) == ("s8s8", False)
    for guard in (cpu_guard, trt_guard):
        assert guard["gate"]["verdict"] == "pass"  # 99 % of FP32's accuracy, with confidence
        assert guard["fraction"] >= 0.99
    artifacts = Path(recipe["artifacts"])
    prepared = json.loads((artifacts / "artifact.json").read_text())
    assert set(prepared["encodings"]) == {"s8s8", "u8s8"}  # one calibration, two encodings
    assert prepared["int8_check"]["s8s8"]["ok"] is True  # every Conv/Gemm runs in INT8
    assert prepared["int8_check"]["s8s8"]["compute_nodes"] == 54
    # the manifest keeps how the model that ran was made, whatever happens to the cache
    model = recipe["model"]
    assert model["calibration"] == prepared["calibration"]
    assert model["calibration"]["source"].startswith("synthetic")
    # auto: a model per calibration method, the best on the guard images kept and recorded
    choice = model["calibration_choice"]
    assert choice["asked"] == "auto"
    assert set(choice["candidates"]) == {"entropy", "percentile", "minmax"}
    assert model["method"] == choice["chosen"] == prepared["method"]
    assert model["encoding"] == prepared["encodings"]["u8s8"]
    assert model["encoding"]["activation_symmetric"] is False  # asymmetric U8S8 on CPU
    assert model["sha256"] == prepared["files"]["u8s8.onnx"]
    assert "int8 linear NCHW" in model["encoding"]["input"]
    settings = json.loads((run_dir / "dell-trt" / "settings.json").read_text())
    assert settings["profile"] == "cpu-twin"
    # The preprocessed cache is INT8 linear: 150 528 bytes a sample (plus the .npy header).
    offline = next(t for t in manifest["tests"] if t["scenario"] == "Offline")
    assert offline["harness"]["settings"]["profile"] == "cpu-twin"


def test_accuracy_runs_report_fp32_agreement(
    twin_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
) -> None:
    _, run_dir, _ = twin_run
    for scenario in SCENARIOS:
        result = json.loads(
            (run_dir / "dell-trt" / scenario / "accuracy" / "result.json").read_text()
        )
        assert result["fp32_agreement"] == {"agree": 64, "total": 64, "percent": 100.0}


def test_second_run_reuses_the_prepared_model(
    twin_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]],
    tmp_path: Path,
    engine: DockerEngine,
) -> None:
    result = mlorch(
        "up", "dell-trt", "--device", "cpu", "--quick", "-s", "Offline", "-m", "PerformanceOnly",
        "--set", "Offline.batch_size=16", "--compliance", cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "prepared model" in result.stderr
    assert "is complete" in result.stderr  # no second calibration
    assert "calibrating" not in result.stderr
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    assert manifest["spec"]["harness"]["scenarios"]["Offline"]["batch_size"] == 16
    assert manifest["spec"]["harness"]["overrides"] == ["Offline.batch_size=16"]
    # compliance through the same test path: TEST04 runs in its own dell-trt container; TEST01
    # has no accuracy run to compare with, so it is recorded as skipped with the reason
    records = {record["test"]: record for record in manifest["compliance"]}
    assert records["TEST01"]["status"] == "skipped"
    assert "needs the accuracy run" in records["TEST01"]["reasons"][0]
    test04 = records["TEST04"]
    assert test04["status"] == "verified"
    assert test04["checks"]["audit_config_applied"] is True
    assert test04["harness"]["engine"] == "onnxruntime-cpu (twin)"
    folder = tmp_path / "runs" / manifest["run_id"] / test04["dir"]
    assert (folder / "verify_performance.txt").is_file()
    assert json.loads((folder / "verification.json").read_text())["passed"] is test04["passed"]


# A one-sample latency under this leaves most of the 15 ms bound to queueing: a Server target
# at a fair share of the rate is VALID, and a short tune must find one.
ROOMY_SAMPLE_MS = 5.0


def test_tune_server_then_a_quick_up_at_its_target_is_valid_where_the_host_allows(
    engine: DockerEngine, tmp_path: Path
) -> None:
    """`tune -s Server` searches with real probes from a measured rate. Where it finds and
    confirms a VALID target, a quick `up` at that target runs tune's early-stopping query count
    and is VALID. Where the host leaves no room (the 2-core twin: one sample takes ~11 ms of the
    15 ms bound), it says so with the measured latency, writes no value and exits 1. Which case
    applies is decided by what the measuring run measured, never by the host's name."""
    tuned = mlorch(
        "tune", "dell-trt", "--device", "cpu", "-s", "Server", "--quick", "--budget", "100s",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    run_dir = next((tmp_path / "runs").glob("*-tune-*"))
    record = json.loads((run_dir / "tune.json").read_text())["best"][0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    measured = manifest["sizing"]["Server"]["measurement"]
    assert measured is not None, tuned.stderr[-4000:]
    assert measured["estimated"] is False  # the search starts from a measured burst
    probes = record["probes"]
    assert all(p["valid"] or p["p99_ms"] or p["early_stopping_ms"] for p in probes)
    config = run_dir / "tuned.toml"
    if record["value"] is None:
        assert tuned.returncode == 1, tuned.stderr[-4000:]
        assert f"# server_target_qps: not found ({record['stopped_by']})" in config.read_text()
        if record["stopped_by"] == "infeasible":
            assert measured["latency_ms"] >= 15.0
            assert "cannot be VALID on this host" in tuned.stderr
            return
        if not any(p["valid"] for p in probes):
            # Nothing VALID at any probed target: only a host whose one sample takes most of
            # the bound may say that, and it says it with the latency it measured.
            assert measured["latency_ms"] > ROOMY_SAMPLE_MS, record
            assert f"one sample alone takes {measured['latency_ms']:.1f} ms" in record["note"]
            assert all(p["p99_ms"] > 15.0 for p in probes if p["p99_ms"] is not None)
        return
    assert tuned.returncode == 0, tuned.stderr[-4000:]
    assert f"server_target_qps = {record['value']:g}" in config.read_text()
    run = mlorch(
        "up", "dell-trt", "--device", "cpu", "--quick", "-s", "Server", "-m", "PerformanceOnly",
        "--config", str(config), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    up_dir = next(
        p.parent for p in (tmp_path / "runs").glob("*/manifest.json") if "-tune-" not in str(p)
    )
    conf = (up_dir / "dell-trt" / "Server" / "user.conf").read_text()
    assert "Server.min_query_count = 1024" in conf
    test = json.loads((up_dir / "manifest.json").read_text())["tests"][0]
    assert test["result"]["valid"] is True, test["result"]


def test_tune_sizes_offline_and_up_uses_it(engine: DockerEngine, tmp_path: Path) -> None:
    """`tune` finds a VALID Offline sizing with real runs, writes a config `up` takes, and a plain
    `up` on the same host, image and settings announces and uses the tuned value."""
    tuned = mlorch(
        "tune", "dell-trt", "--device", "cpu", "-s", "Offline", "--quick", "--budget", "10m",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-4000:]
    assert "tune Offline probe 1:" in tuned.stderr  # one line per probe
    run_dir = next((tmp_path / "runs").glob("*-tune-*"))
    record = json.loads((run_dir / "tune.json").read_text())["best"][0]
    assert record["value"] is not None
    assert record["probes"][-1]["valid"] is True
    assert (run_dir / "probes" / "Offline-01" / "mlperf_log_detail.txt").is_file()
    config = run_dir / "tuned.toml"
    assert f"offline_expected_qps = {record['value']:g}" in config.read_text()

    run = mlorch(
        "up", "dell-trt", "--device", "cpu", "--quick", "-s", "Offline", "-m", "PerformanceOnly",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert "(tuned " in run.stderr
    runs = [
        p for p in sorted((tmp_path / "runs").glob("*/manifest.json")) if "-tune-" not in str(p)
    ]
    manifest = json.loads(runs[0].read_text())
    offline = manifest["sizing"]["Offline"]
    assert (offline["source"], offline["value"]) == ("tuned", record["value"])
    assert manifest["tests"][0]["result"]["valid"] is True
    ignored = mlorch(
        "up", "dell-trt", "--device", "cpu", "--quick", "-s", "Offline", "-m", "PerformanceOnly",
        "--no-tuned", "--config", str(config), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr[-4000:]
    assert "offline_expected_qps" in ignored.stderr
    assert "(user)" in ignored.stderr  # the config file's value, as given
