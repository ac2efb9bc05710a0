"""The prepared-model cache key and calibration sets (standard library only, host-callable)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.dell_trt import artifact
from backends.dell_trt.artifact import (
    CalibrationSetError,
    artifact_key,
    official_calibration_set,
    synthetic_calibration_set,
)

_BASE = {"model_sha256": "a" * 64, "calibration_sha256": "b" * 64, "method": "minmax"}


def _dataset(root: Path, count: int) -> Path:
    (root / "val").mkdir(parents=True)
    for i in range(count):
        (root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(f"image {i}".encode())
    (root / "val_map.txt").write_text(
        "".join(f"val/ILSVRC2012_val_{i + 1:08d}.JPEG {i % 7}\n" for i in range(count))
    )
    return root


def test_key_is_stable_for_the_same_inputs() -> None:
    assert artifact_key(**_BASE) == artifact_key(**_BASE)
    assert len(artifact_key(**_BASE)) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "c" * 64},
        {"calibration_sha256": "d" * 64},
        {"method": "entropy"},
        {"rewrite_version": artifact.REWRITE_VERSION + 1},
        {"quantizer_version": artifact.QUANTIZER_VERSION + 1},
    ],
)
def test_key_changes_with_each_input(change: dict[str, object]) -> None:
    assert artifact_key(**{**_BASE, **change}) != artifact_key(**_BASE)  # type: ignore[arg-type]


def test_key_refuses_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="calibration method"):
        artifact_key(**{**_BASE, "method": "percentile"})


def test_host_can_import_it_without_numerical_libraries() -> None:
    code = (
        "import sys, backends.dell_trt.artifact\n"
        "heavy = {'numpy', 'onnx', 'onnxruntime', 'cv2'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
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
