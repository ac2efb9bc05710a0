"""CLI edge: one styled line + hint + exit code per error; tracebacks only with --debug."""

from __future__ import annotations

import json
import os
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.cli import NO_ENGINE, assert_one_error, mlorch


def test_help_lists_commands() -> None:
    result = mlorch("--help")
    assert result.returncode == 0
    for command in ("up", "render", "build", "down", "runs", "doctor", "assets"):
        assert command in result.stdout


def test_unknown_backend(tmp_path: Path) -> None:
    result = mlorch("up", "refrence", "--device", "cpu", env=NO_ENGINE, cwd=tmp_path)
    assert_one_error(result, 2, "unknown backend 'refrence'")
    assert "hint: known backends: dell-trt, reference" in result.stderr


def test_misspelled_flag() -> None:
    result = mlorch("up", "reference", "--quik")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "--quik" in result.stderr


def test_misspelled_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("[run]\nmax_batch = 8\n")
    result = mlorch(
        "up", "reference", "--device", "cpu", "--config", str(cfg), env=NO_ENGINE, cwd=tmp_path
    )
    assert_one_error(result, 2, "unknown key 'max_batch'")


def test_no_engine() -> None:
    result = mlorch("down", env=NO_ENGINE)
    assert_one_error(result, 3, "cannot reach the Docker engine")
    assert "hint:" in result.stderr


def test_debug_shows_traceback() -> None:
    result = mlorch("--debug", "down", env=NO_ENGINE)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def _up_reference(tmp_path: Path, model: Path, dataset: Path, *extra: str) -> CompletedProcess[str]:
    """`mlorch up reference --device cpu` on these assets, with no engine to reach."""
    args = ("up", "reference", "--device", "cpu", "--model", str(model), "--dataset", str(dataset))
    return mlorch(*args, *extra, env=NO_ENGINE, cwd=tmp_path)


def test_missing_model(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = _up_reference(tmp_path, tmp_path / "nope.onnx", tmp_path / "data")
    assert_one_error(result, 5, "model not found")
    assert not (tmp_path / "runs").exists()  # a bad argument leaves no failed run behind


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("reference", "--model", "{model}"), 2, "--model and --dataset go together"),
        (("dell-trt", "--dataset", "{data}"), 2, "--model and --dataset go together"),
        (("dell-trt", "--model", "{model}", "--dataset", "{tmp}/nope"), 5, "dataset folder not"),
        (("dell-trt", "--model", "{model}", "--dataset", "{data}"), 2, "needs the official cal"),
        (
            (
                "dell-trt",
                "--model",
                "{model}",
                "--dataset",
                "{data}",
                "--calibration-list",
                "{tmp}/cal.txt",
            ),
            5,
            "calibration list not found",
        ),
        # `up A B` refuses before its first backend runs
        (("reference", "dell-trt", "--model", "{model}", "--dataset", "{data}"), 2, "needs the"),
        (("dell-trt", "--harness-profile", "nope"), 2, "unknown profile 'nope'"),
        (("dell-trt", "--harness-profile", "nvidia-h200-sxm"), 2, "is a GPU profile"),
        (("dell-trt", "--calibration-list", "{tmp}/cal.txt"), 2, "applies to a real dataset"),
        (("dell-trt", "--max-batchsize", "4"), 2, "--max-batchsize sets the reference SUT"),
        (("dell-trt", "--threads", "1"), 2, "--threads sets the reference SUT"),
        (("reference", "--min-agreement", "0.5"), 2, "--min-agreement applies to dell-trt's"),
        (("reference", "--calibration", "entropy"), 2, "--calibration applies to dell-trt's"),
        (("reference", "--set", "batch_size=4"), 2, "reference has no harness settings"),
    ],
)
def test_bad_asset_arguments_fail_before_a_run_folder(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"not checked yet")
    paths = {"model": str(tmp_path / "model.onnx"), "data": str(tmp_path / "data")}
    argv = [arg.format(tmp=tmp_path, **paths) for arg in args]
    result = mlorch("up", *argv, "--device", "cpu", env=NO_ENGINE, cwd=tmp_path)
    assert_one_error(result, code, message)
    assert "hint:" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_an_unknown_calibration_method_is_a_usage_error(tmp_path: Path) -> None:
    result = mlorch("up", "dell-trt", "--calibration", "bogus", env=NO_ENGINE, cwd=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--calibration'" in result.stderr
    assert "'auto', 'entropy', 'percentile', 'minmax'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_corrupt_model(tmp_path: Path, synthetic_assets: tuple[Path, Path]) -> None:
    model, dataset = synthetic_assets
    truncated = tmp_path / "resnet50_v1.onnx"
    truncated.write_bytes(model.read_bytes()[:1_000_000])
    result = _up_reference(tmp_path, truncated, dataset)
    assert_one_error(result, 5, "not a readable ONNX file")
    assert "corrupt or truncated" in result.stderr


def test_empty_dataset(tmp_path: Path, synthetic_assets: tuple[Path, Path]) -> None:
    model, _ = synthetic_assets
    empty = tmp_path / "imagenet"
    empty.mkdir()
    (empty / "val_map.txt").write_text("")
    result = _up_reference(tmp_path, model, empty)
    assert_one_error(result, 5, "is empty")


def test_full_disk(tmp_path: Path) -> None:
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        env={**NO_ENGINE, "MLORCH_MIN_FREE_GIB": "1e12"},
        cwd=tmp_path,
    )
    assert_one_error(result, 9, "GiB free")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_render_prints_dockerfile(device: str) -> None:
    result = mlorch(
        "render",
        "reference",
        "--device",
        device,
        "--base-image",
        "mlorch/base:bookworm",
        env=NO_ENGINE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# mlorch: MLCommons reference ResNet50 SUT")
    assert ("onnxruntime-gpu" in result.stdout) == (device == "cuda")


def test_runs_lists_verdicts(tmp_path: Path) -> None:
    import json

    for name, status in (("r1", "complete"), ("r2", "failed"), ("r3", "running")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(
            json.dumps(
                {
                    "run_id": name,
                    "status": status,
                    "spec": {"backend": "reference"},
                    "tests": [],
                    "pid": 2**22 + 7,
                    "host_id": os.uname().nodename,
                }
            )
        )
    result = mlorch("runs", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│ r")}
    assert "complete" in lines["r1"]
    assert "failed" in lines["r2"]
    assert "interrupted" in lines["r3"]  # 'running' whose process is gone


def _write_runs(runs: Path) -> list[str]:
    """Three runs with real-looking ids (as `up` names them); returns the ids."""
    import json

    ids = [
        "20261123-101010-reference-ab12",
        "20261123-111111-reference-0f0f",
        "20261124-090000-dell-trt-beef",
    ]
    for run_id, status, tests in zip(
        ids, ("complete", "failed", "running"), (8, 3, 0), strict=True
    ):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "manifest.json").write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "status": status,
                    "started": "2026-11-23T10:10:10+00:00",
                    "spec": {
                        "backend": run_id[16:].rsplit("-", 1)[0],
                        "device": "cpu",
                        "profile": "quick",
                    },
                    "tests": [{}] * tests,
                    "pid": 2**22 + 7,
                    "host_id": os.uname().nodename,
                    "submission_valid": False,
                    "invalid_because": INVALID_BECAUSE if status == "complete" else [],
                }
            )
        )
    return ids


INVALID_BECAUSE = [
    "quick: --quick profile: shortened durations and query counts",
    "model: synthetic random-weight model, not the official resnet50_v1.onnx",
    "duration: min_duration 1.5 s, the rules need 600 s (SingleStream, Offline)",
]


def test_runs_in_80_columns_keeps_whole_ids(tmp_path: Path) -> None:
    """A pipe is 80 columns: the ids `compare` and `submit` take are printed whole, and each
    run's submission verdict: its first unmet rule and how many more."""
    ids = _write_runs(tmp_path)
    result = mlorch("runs", "--runs-dir", str(tmp_path), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    for run_id in ids:
        assert any(line.split()[:1] == [run_id] for line in result.stdout.splitlines()), (
            result.stdout
        )
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "submit quick +2" in result.stdout  # quick, model, duration
    assert "submit —" in result.stdout  # the run still going is not judged
    assert "`mlorch runs --json` lists every reason" in " ".join(result.stdout.split())


def test_runs_json_for_scripts(tmp_path: Path) -> None:
    import json

    ids = _write_runs(tmp_path / "runs")
    result = mlorch("runs", "--json", "--runs-dir", "runs", cwd=tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == ids
    assert rows[0] == {
        "id": ids[0],
        "status": "complete",
        "backend": "reference",
        "device": "cpu",
        "profile": "quick",
        "started": "2026-11-23T10:10:10+00:00",
        "tests": 8,
        "path": str((tmp_path / "runs" / ids[0]).resolve()),
        "submission_valid": False,
        "invalid_because": INVALID_BECAUSE,
        "resumable": False,
    }
    assert rows[2]["status"] == "interrupted"  # 'running' whose process is gone
    assert rows[2]["resumable"] is True
    assert rows[2]["backend"] == "dell-trt"


def test_runs_json_with_no_runs_is_an_empty_array(tmp_path: Path) -> None:
    result = mlorch("runs", "--json", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_doctor_in_80_columns_keeps_whole_hints() -> None:
    from orchestrator.errors import EngineUnavailable

    result = mlorch("doctor", env={**NO_ENGINE, "COLUMNS": "80"})
    assert result.returncode == 1, result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    tokens = set(result.stdout.replace("│", " ").replace("┃", " ").split())
    hint = EngineUnavailable.default_hint or ""
    assert hint
    for word in hint.split():
        assert word in tokens, (word, result.stdout)


def test_up_prints_its_plan_before_the_long_steps(tmp_path: Path) -> None:
    """The plan comes before the engine is contacted (and so before build and preprocessing)."""
    result = mlorch(
        "up", "reference", "--device", "cpu", "--quick", "-s", "Offline", "-s", "Server",
        env=NO_ENGINE, cwd=tmp_path,
    )  # fmt: skip
    assert_one_error(result, 3, "cannot reach the Docker engine")
    lines = result.stderr.splitlines()
    plan = [n for n, line in enumerate(lines) if "plan: 4 LoadGen tests on 64 images" in line]
    error = [n for n, line in enumerate(lines) if line.startswith("error:")]
    assert plan, result.stderr
    assert plan[0] < error[0]


def test_up_count_beyond_the_synthetic_set_fails_before_the_engine(tmp_path: Path) -> None:
    result = mlorch(
        "up", "reference", "--device", "cpu", "--count", "65", env=NO_ENGINE, cwd=tmp_path
    )
    assert_one_error(result, 2, "--count 65 exceeds the 64 usable images")


def test_damaged_dataset_is_refused_before_any_container(
    tmp_path: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    """No engine at all: the whole dataset is checked and refused up front, in one summary."""
    from tests.support.damaged_dataset import EXPECTED, make_damaged_dataset

    model, _ = synthetic_assets
    folder = make_damaged_dataset(tmp_path / "imagenet")
    result = _up_reference(tmp_path, model, folder.root)
    assert_one_error(
        result,
        5,
        f"dataset {folder.root}: 13 problems in 25 listed images (1 bad line, 3 bad label, "
        "2 escaping path, 1 missing, 1 duplicate, 1 zero-byte, 4 undecodable)",
    )
    lines = result.stderr.splitlines()
    for kind, number in EXPECTED.items():
        assert f"{kind}: {number}" in lines
    assert "  line 14: ../imagenet-outside.JPEG — resolves outside the dataset folder (to " in (
        result.stderr
    )
    assert "  line 6: val/zero.JPEG — empty file (0 bytes)" in lines
    assert "hint: fix them, or pass --skip-bad to run without them (not submission-valid)" in (
        result.stderr
    )
    assert "PNG data named .JPEG; accepted" in result.stderr
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith(f"dataset {folder.root}: 13 problems")


@pytest.mark.parametrize("how", ["flag", "config"])
def test_skip_bad_passes_the_check_then_needs_the_engine(
    tmp_path: Path, synthetic_assets: tuple[Path, Path], how: str
) -> None:
    from tests.support.damaged_dataset import make_damaged_dataset

    model, _ = synthetic_assets
    folder = make_damaged_dataset(tmp_path / "imagenet")
    if how == "flag":
        extra = ("--skip-bad",)
    else:
        (tmp_path / "run.toml").write_text("[run]\nskip_bad = true\n")
        extra = ("--config", str(tmp_path / "run.toml"))
    result = _up_reference(tmp_path, model, folder.root, *extra)
    assert_one_error(result, 3, "cannot reach the Docker engine")
    assert "--skip-bad: leaving out 13 dataset entries" in result.stderr
    assert "running on 12 of 12 usable images; NOT submission-valid" in result.stderr


def test_bad_memory_flag(tmp_path: Path) -> None:
    result = mlorch(
        "up", "reference", "--device", "cpu", "--memory", "lots", env=NO_ENGINE, cwd=tmp_path
    )
    assert_one_error(result, 2, "memory")
    assert "is not a size like 8g" in result.stderr


def test_up_of_two_backends_gives_each_its_own_options(tmp_path: Path) -> None:
    """--threads is the reference's, --set dell-trt's (flags and config file alike): both
    specs are valid, so the series gets as far as the engine."""
    (tmp_path / "run.toml").write_text("[run]\nmax_batchsize = 8\n")
    result = mlorch(
        "up", "reference", "dell-trt", "--device", "cpu", "--threads", "2", "--set",
        "Offline.batch_size=4", "--config", str(tmp_path / "run.toml"), env=NO_ENGINE,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "cannot reach the Docker engine" in result.stderr
