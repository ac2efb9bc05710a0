"""The prepared-model key (host side, recipe.py) and calibration sets (standard library only)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.dell_trt.graph import REWRITE_VERSION
from contract.dell_trt import artifact, recipe
from contract.dell_trt.artifact import (
    CalibrationSetError,
    official_calibration_set,
    synthetic_calibration_set,
)
from tests.support.paths import REPO

_BASE = {"model_sha256": "a" * 64, "calibration_id": "synthetic:abc:every-2", "method": "minmax"}


def _dataset(root: Path, count: int) -> Path:
    (root / "val").mkdir(parents=True)
    for i in range(count):
        (root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(f"image {i}".encode())
    (root / "val_map.txt").write_text(
        "".join(f"val/ILSVRC2012_val_{i + 1:08d}.JPEG {i % 7}\n" for i in range(count))
    )
    return root


def test_key_is_stable_for_the_same_inputs() -> None:
    assert recipe.artifact_key(**_BASE) == recipe.artifact_key(**_BASE)


@pytest.mark.parametrize(
    "change",
    [{"model_sha256": "c" * 64}, {"calibration_id": "imagenet:" + "d" * 64}, {"method": "entropy"}],
)
def test_key_changes_with_each_input(change: dict[str, str]) -> None:
    assert recipe.artifact_key(**{**_BASE, **change}) != recipe.artifact_key(**_BASE)


def test_key_changes_with_the_recipe_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe.artifact_key(**_BASE)
    monkeypatch.setattr(recipe, "RECIPE_VERSION", recipe.RECIPE_VERSION + 1)
    assert recipe.artifact_key(**_BASE) != before


def test_recipe_version_moves_with_the_rewrite_and_the_quantizer() -> None:
    """Bumping REWRITE_VERSION or QUANTIZER_VERSION without a new RECIPE_VERSION (the key) would
    let hosts reuse models the new code would not make."""
    assert artifact.RECIPE_VERSIONS[recipe.RECIPE_VERSION] == (
        REWRITE_VERSION,
        artifact.QUANTIZER_VERSION,
    )
    assert tuple(artifact.ENCODINGS) == recipe.ENCODINGS
    assert artifact.ENCODINGS[recipe.TRT_ENCODING].activation_type == "int8"
    assert artifact.ENCODINGS[recipe.CPU_ENCODING].activation_type == "uint8"


@pytest.mark.subprocess
def test_host_can_import_it_without_numerical_libraries() -> None:
    code = (
        "import sys, contract.dell_trt.artifact, backends.dell_trt.graph\n"
        "heavy = {'numpy', 'onnx', 'onnxruntime', 'cv2'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_synthetic_set_is_every_second_image(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "imagenet", 9)
    chosen = synthetic_calibration_set(dataset)
    assert chosen.relpaths == tuple(f"val/ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 3, 5, 7, 9))
    assert chosen.sha256 == synthetic_calibration_set(dataset).sha256
    (dataset / chosen.relpaths[2]).write_bytes(b"other pixels")  # same names, new content
    assert synthetic_calibration_set(dataset).sha256 != chosen.sha256
    (dataset / "val" / "ILSVRC2012_val_00000002.JPEG").write_bytes(b"not calibrated")
    assert synthetic_calibration_set(dataset).sha256 == synthetic_calibration_set(dataset).sha256


def test_a_wrong_calibration_list_is_refused(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "imagenet", 4)
    listing = tmp_path / artifact.CALIBRATION_LIST
    listing.write_text("ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(CalibrationSetError, match="sha256"):
        official_calibration_set(dataset, listing)
    with pytest.raises(CalibrationSetError, match="not found"):
        official_calibration_set(dataset, tmp_path / "missing.txt")


def test_the_official_list_resolves_through_val_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = _dataset(tmp_path / "imagenet", 6)
    listing = tmp_path / artifact.CALIBRATION_LIST
    listing.write_text("ILSVRC2012_val_00000005.JPEG\nILSVRC2012_val_00000002.JPEG\n")
    # Stand in for the official file's digest and size (the file itself is the user's).
    monkeypatch.setattr(
        artifact, "CALIBRATION_LIST_SHA256", hashlib.sha256(listing.read_bytes()).hexdigest()
    )
    monkeypatch.setattr(artifact, "CALIBRATION_LIST_SIZE", 2)
    chosen = official_calibration_set(dataset, listing)
    assert chosen.relpaths == (
        "val/ILSVRC2012_val_00000005.JPEG",
        "val/ILSVRC2012_val_00000002.JPEG",
    )
    assert chosen.paths(dataset)[0] == dataset / "val" / "ILSVRC2012_val_00000005.JPEG"
    (dataset / "val_map.txt").write_text("val/ILSVRC2012_val_00000005.JPEG 1\n")
    with pytest.raises(CalibrationSetError, match="not in"):
        official_calibration_set(dataset, listing)
