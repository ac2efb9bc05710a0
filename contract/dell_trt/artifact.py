"""The prepared-model artifact: its encodings, calibration sets and files (standard library only).

One calibration of the rewritten FP32 model yields one set of activation ranges; two Q/DQ models
are emitted from it: S8S8 (symmetric int8 activations, for TensorRT's strongly typed networks)
and U8S8 (asymmetric uint8 activations, what onnxruntime's CPU kernels run fastest). Both take the
INT8 linear input (scale 1.0) and answer the label 0–999 as int32.

The artifact folder is the host's `models/<recipe.artifact_key>`: the host keys and locks it;
the model container fills it (`backends.dell_trt.quantize.prepare_model`). Importable without
numpy, onnx or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.dell_trt import recipe
from contract.digest import file_sha256
from contract.layout import read_val_map
from contract.resnet50 import (
    CALIBRATION_LIST,
    CALIBRATION_LIST_SHA256,
    CALIBRATION_LIST_SIZE,
)

# Bump whenever the quantization recipe changes (op list, exclusions, encodings, input handling).
QUANTIZER_VERSION = 1
# recipe.RECIPE_VERSION keys prepared models (recipe.artifact_key): it must move whenever the
# rewrite or the quantizer does. Which (rewrite, quantizer) versions each recipe version means:
RECIPE_VERSIONS = {1: (1, 1)}
METHODS = ("minmax", "entropy", "percentile")

RECIPE_FP32 = "recipe_fp32.onnx"
RANGES = "ranges.json"
MANIFEST = recipe.ARTIFACT_MANIFEST  # written last: its presence marks complete models


@dataclass(frozen=True)
class Encoding:
    """How one emitted Q/DQ model represents activations (weights: int8 symmetric per channel)."""

    name: str
    target: str
    activation_type: str
    activation_symmetric: bool
    activation_zero_point: str
    bias: str  # "int32" (DequantizeLinear of int32) or "float"
    input_handling: str

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


ENCODINGS = {
    recipe.TRT_ENCODING: Encoding(
        name=recipe.TRT_ENCODING,
        target="TensorRT (strongly typed network)",
        activation_type="int8",
        activation_symmetric=True,
        activation_zero_point="0",
        # TensorRT's parser dequantizes activation types only (no int32 DequantizeLinear); it
        # fuses float biases into the int8 convolutions itself.
        bias="float",
        input_handling="int8 graph input feeds the first DequantizeLinear (scale 1, zero point 0)",
    ),
    recipe.CPU_ENCODING: Encoding(
        name=recipe.CPU_ENCODING,
        target="onnxruntime CPU execution provider",
        activation_type="uint8",
        activation_symmetric=False,
        activation_zero_point="per tensor, from the calibrated range",
        # onnxruntime fuses DQ → Conv → Q into QLinearConv only with an int32 (or no) bias.
        bias="int32",
        input_handling=(
            "int8 graph input → DequantizeLinear(1, 0) → QuantizeLinear(uint8, 1, 128): "
            "the first convolution stays a QLinearConv"
        ),
    ),
}


class CalibrationSetError(ValueError):
    """The calibration list or images are missing or not the ones the recipe requires."""


@dataclass(frozen=True)
class CalibrationSet:
    """The images one calibration reads, relative to the dataset folder, in order."""

    relpaths: tuple[str, ...]
    source: str
    sha256: str

    def paths(self, dataset_dir: Path) -> list[Path]:
        return [dataset_dir / relpath for relpath in self.relpaths]


def images_digest(dataset_dir: Path, relpaths: tuple[str, ...]) -> str:
    """sha256 over the ordered (relative path, image sha256) pairs."""
    digest = hashlib.sha256()
    for relpath in relpaths:
        path = dataset_dir / relpath
        if not path.is_file():
            raise CalibrationSetError(f"calibration image {path} is missing")
        digest.update(f"{relpath}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def official_calibration_set(dataset_dir: Path, list_path: Path) -> CalibrationSet:
    """The MLPerf calibration images (`cal_image_list_option_1.txt`) found in val_map.

    Refuses any other list: the recipe's results are only comparable on the official one.
    """
    if not list_path.is_file():
        raise CalibrationSetError(
            f"calibration list {list_path} not found: supply MLPerf's {CALIBRATION_LIST}"
        )
    actual = file_sha256(list_path)
    if actual != CALIBRATION_LIST_SHA256:
        raise CalibrationSetError(
            f"{list_path} has sha256 {actual}, not the official {CALIBRATION_LIST} "
            f"({CALIBRATION_LIST_SHA256}); use MLCommons' calibration/ImageNet/{CALIBRATION_LIST}"
        )
    names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
    if len(names) != CALIBRATION_LIST_SIZE:
        raise CalibrationSetError(f"{list_path} lists {len(names)} images")
    by_name = {Path(entry.relpath).name: entry.relpath for entry in read_val_map(dataset_dir)}
    missing = [name for name in names if Path(name).name not in by_name]
    if missing:
        raise CalibrationSetError(
            f"{len(missing)} calibration images are not in {dataset_dir}/val_map.txt "
            f"(first: {missing[0]})"
        )
    relpaths = tuple(by_name[Path(name).name] for name in names)
    return CalibrationSet(relpaths, CALIBRATION_LIST, images_digest(dataset_dir, relpaths))


def synthetic_calibration_set(dataset_dir: Path) -> CalibrationSet:
    """Every 2nd image of a synthetic dataset's own val_map (a documented, fixed subset), at
    most as many as the official list holds."""
    stride = recipe.SYNTHETIC_CALIBRATION_STRIDE
    chosen = read_val_map(dataset_dir)[::stride][:CALIBRATION_LIST_SIZE]
    if not chosen:
        raise CalibrationSetError(f"{dataset_dir}/val_map.txt lists no images")
    relpaths = tuple(entry.relpath for entry in chosen)
    source = f"synthetic: val_map[::{stride}][:{CALIBRATION_LIST_SIZE}]"
    return CalibrationSet(relpaths, source, images_digest(dataset_dir, relpaths))


def guard_files(out_dir: Path, guard_tag: str) -> tuple[Path, Path]:
    """(guard result, FP32 labels) of one guard sample set (`recipe.guard_tag`) of an artifact."""
    return (
        out_dir / recipe.GUARD_FILE.format(tag=guard_tag),
        out_dir / recipe.FP32_LABELS_FILE.format(tag=guard_tag),
    )


def read_manifest(artifact_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete artifact folder, or None when it is absent or unreadable."""
    try:
        manifest = json.loads((artifact_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
