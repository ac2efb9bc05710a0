"""CLI edge: one styled line + hint + exit code per error; tracebacks only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def mlorch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        check=False,
    )


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]


def test_help_lists_commands() -> None:
    result = mlorch("--help")
    assert result.returncode == 0
    for command in ("up", "render", "build", "down", "runs", "doctor", "assets"):
        assert command in result.stdout


def test_unknown_backend(tmp_path: Path) -> None:
    result = mlorch("up", "refrence", "--device", "cpu", env=NO_ENGINE, cwd=tmp_path)
    assert_one_error(result, 2, "unknown backend 'refrence'")
    assert "hint: known backends: reference" in result.stderr


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


def test_missing_model(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        "--model",
        str(tmp_path / "nope.onnx"),
        "--dataset",
        str(tmp_path / "data"),
        env=NO_ENGINE,
        cwd=tmp_path,
    )
    assert_one_error(result, 5, "model not found")


def test_corrupt_model(tmp_path: Path, synthetic_assets: tuple[Path, Path]) -> None:
    model, dataset = synthetic_assets
    truncated = tmp_path / "resnet50_v1.onnx"
    truncated.write_bytes(model.read_bytes()[:1_000_000])
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        "--model",
        str(truncated),
        "--dataset",
        str(dataset),
        env=NO_ENGINE,
        cwd=tmp_path,
    )
    assert_one_error(result, 5, "not a readable ONNX file")
    assert "corrupt or truncated" in result.stderr


def test_empty_dataset(tmp_path: Path, synthetic_assets: tuple[Path, Path]) -> None:
    model, _ = synthetic_assets
    empty = tmp_path / "imagenet"
    empty.mkdir()
    (empty / "val_map.txt").write_text("")
    result = mlorch(
        "up",
        "reference",
        "--device",
        "cpu",
        "--model",
        str(model),
        "--dataset",
        str(empty),
        env=NO_ENGINE,
        cwd=tmp_path,
    )
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


def test_bad_memory_flag(tmp_path: Path) -> None:
    result = mlorch(
        "up", "reference", "--device", "cpu", "--memory", "lots", env=NO_ENGINE, cwd=tmp_path
    )
    assert_one_error(result, 2, "memory")
    assert "is not a size like 8g" in result.stderr
