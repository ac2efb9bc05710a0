"""The prepared-model artifact: calibration set, cache key, file names (standard library only).

One calibration of the rewritten FP32 model yields one set of activation ranges; two Q/DQ models
are emitted from it: S8S8 (symmetric int8 activations, for TensorRT's strongly typed networks)
and U8S8 (asymmetric uint8 activations, what onnxruntime's CPU kernels run fastest). Both take the
INT8 linear input (scale 1.0) and answer the label 0–999 as int32.

The host imports this module to find a prepared artifact before starting a container, so it must
not import numpy, onnx or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.common.layout import PREPROCESS_VERSION, read_val_map
from backends.common.resnet50 import (
    CALIBRATION_LIST,
    CALIBRATION_LIST_SHA256,
    CALIBRATION_LIST_SIZE,
)
from backends.dell_trt.graph import REWRITE_VERSION

# Bump whenever the quantization recipe changes (op list, exclusions, encodings, input handling).
QUANTIZER_VERSION = 1
METHODS = ("minmax", "entropy")
DEFAULT_METHOD = "minmax"
# Synthetic datasets have no official list: calibrate on every 2nd image of val_map (0, 2, 4…),
# at most as many as the official list holds.
SYNTHETIC_CALIBRATION_STRIDE = 2

RECIPE_FP32 = "recipe_fp32.onnx"
RANGES = "ranges.json"
GUARD_REFERENCE = "guard_reference.json"
MANIFEST = "artifact.json"  # written last: its presence marks a complete artifact


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
    "s8s8": Encoding(
        name="s8s8",
        target="TensorRT (strongly typed network)",
        activation_type="int8",
        activation_symmetric=True,
        activation_zero_point="0",
        # TensorRT's parser dequantizes activation types only (no int32 DequantizeLinear); it
        # fuses float biases into the int8 convolutions itself.
        bias="float",
        input_handling="int8 graph input feeds the first DequantizeLinear (scale 1, zero point 0)",
    ),
    "u8s8": Encoding(
        name="u8s8",
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Every 2nd image of a synthetic dataset's val_map (a documented, fixed subset)."""
    entries = read_val_map(dataset_dir)
    chosen = entries[::SYNTHETIC_CALIBRATION_STRIDE][:CALIBRATION_LIST_SIZE]
    if not chosen:
        raise CalibrationSetError(f"{dataset_dir}/val_map.txt lists no images")
    relpaths = tuple(entry.relpath for entry in chosen)
    source = f"synthetic: val_map[::{SYNTHETIC_CALIBRATION_STRIDE}][:{CALIBRATION_LIST_SIZE}]"
    return CalibrationSet(relpaths, source, images_digest(dataset_dir, relpaths))


def artifact_key(
    model_sha256: str,
    calibration_sha256: str,
    method: str,
    *,
    rewrite_version: int = REWRITE_VERSION,
    quantizer_version: int = QUANTIZER_VERSION,
) -> str:
    """Cache key of a prepared artifact: everything its three models depend on."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r} (known: {', '.join(METHODS)})")
    payload = json.dumps(
        {
            "model": model_sha256,
            "calibration": calibration_sha256,
            "method": method,
            "rewrite": rewrite_version,
            "quantizer": quantizer_version,
            "preprocess": PREPROCESS_VERSION,  # calibration reads the FP32 preprocessing
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def read_manifest(artifact_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete artifact folder, or None when it is absent or unreadable."""
    try:
        manifest = json.loads((artifact_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
