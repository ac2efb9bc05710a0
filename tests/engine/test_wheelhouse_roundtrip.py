"""The air-gapped round trip with the real engine: `mlorch wheelhouse --base-image` → `build
--wheelhouse` on that base, and a wheelhouse made for another Python refused by name, before pip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.images.build import probe_local_image
from orchestrator.images.catalog import LOCAL_BASE
from orchestrator.images.wheelhouse import COMPLETE
from tests.engine.conftest import mlorch
from tests.support.cli import assert_one_error

pytestmark = pytest.mark.engine


def test_wheelhouse_made_for_the_base_image_builds_offline(
    engine: DockerEngine, tmp_path: Path
) -> None:
    made = mlorch(
        "wheelhouse", "reference", "--device", "cpu", "--base-image", LOCAL_BASE,
        "-o", "wheels", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    platform = probe_local_image(engine, LOCAL_BASE)
    record = json.loads((tmp_path / "wheels" / COMPLETE).read_text())
    assert record["platform"] == platform.__dict__
    assert record["base_image"] == LOCAL_BASE
    assert "onnxruntime==1.31.1" in record["requirements"]
    assert any(
        f"cp{platform.python.replace('.', '')}" in wheel.name
        for wheel in (tmp_path / "wheels").glob("numpy-*.whl")
    )

    built = mlorch(
        "build", "reference", "--device", "cpu", "--base-image", LOCAL_BASE,
        "--wheelhouse", "wheels", cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.strip().startswith("mlorch/reference-cpu:")


def test_wheelhouse_made_for_python_312_is_refused_with_the_fix(
    engine: DockerEngine, tmp_path: Path
) -> None:
    # What a new user does first: the defaults (the NGC base's Python 3.12, glibc 2.39).
    made = mlorch("wheelhouse", "reference", "--device", "cpu", "-o", "wheels", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    assert "no --base-image" in made.stderr
    platform = probe_local_image(engine, LOCAL_BASE)
    for command in ("build", "up"):
        result = mlorch(
            command, "reference", "--device", "cpu", "--base-image", LOCAL_BASE,
            "--wheelhouse", "wheels", cwd=tmp_path,
        )  # fmt: skip
        assert_one_error(
            result,
            4,
            "wheelhouse wheels was made for Python 3.12 / glibc 2.39 (x86_64), "
            f"but {LOCAL_BASE} runs {platform.describe()}",
        )
        assert (
            "hint: make one for this image (on a connected host): mlorch wheelhouse reference "
            f"--device cpu --base-image {LOCAL_BASE} -o wheels"
        ) in result.stderr
        assert "no matching distribution" not in result.stderr.lower()  # pip never ran


def test_wheelhouse_for_an_absent_base_image_says_what_to_do(
    engine: DockerEngine, tmp_path: Path
) -> None:
    result = mlorch(
        "wheelhouse", "reference", "--device", "cpu", "--base-image", "mlorch/absent:none",
        "-o", "wheels", cwd=tmp_path,
    )  # fmt: skip
    assert_one_error(
        result, 4, "base image mlorch/absent:none is not present here, so its platform cannot"
    )
    assert "--python X.Y --glibc 2.N" in result.stderr
    assert not (tmp_path / "wheels").exists()
