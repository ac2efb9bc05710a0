"""Explicit INT8 quantization of the rewritten model: one calibration, two Q/DQ encodings.

`calibrate` runs onnxruntime's calibrator once over the FP32 preprocessing of the calibration
images and returns the raw (asymmetric) activation ranges. `emit` turns those ranges into a Q/DQ
model for one encoding (`contract.dell_trt.artifact.ENCODINGS`): weights int8, symmetric, per
output channel; activations int8 symmetric (s8s8, TensorRT) or uint8 asymmetric (u8s8,
onnxruntime CPU). Both models take the INT8 linear input (round(x − mean) clipped, scale 1.0):
the input's quantization is pinned to scale 1 so the int8 cache feeds the first DequantizeLinear
exactly. The classifier's output is left unquantized, so the logits TopK compares are float
(quantized logits tie and flip the top-1).

`prepare_model` chains rewrite → calibrate → emit both → guard both models, into the host's
keyed artifact folder.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.dell_trt import guard
from backends.dell_trt.graph import REWRITE_VERSION, classifier_tail, rewrite
from backends.dell_trt.int8_check import check_int8
from contract.dell_trt import recipe
from contract.dell_trt.artifact import (
    ENCODINGS,
    MANIFEST,
    METHODS,
    QUANTIZER_VERSION,
    RANGES,
    RECIPE_FP32,
    CalibrationSet,
    guard_files,
    read_manifest,
)
from contract.digest import file_sha256
from contract.layout import ImageEntry
from contract.locks import atomic_write_text, exclusive
from contract.resnet50 import INPUT_NAME

CALIBRATION_BATCH = 16
_INPUT_DQ = "mlorch_nv/input_dequantize"
_INPUT_FLOAT = "mlorch_nv/input_float"


def calibration_batches(paths: Sequence[Path], batch: int = CALIBRATION_BATCH) -> Iterator[Any]:
    """FP32 preprocessing of the calibration images, `batch` at a time (float32 NCHW)."""
    from backends.common.preprocess import load_and_preprocess

    for start in range(0, len(paths), batch):
        yield np.stack([load_and_preprocess(path, "fp32") for path in paths[start : start + batch]])


def _op_types() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    if name not in METHODS:
        raise ValueError(f"unknown calibration method {name!r} (known: {', '.join(METHODS)})")
    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def calibrate(
    recipe_fp32: Path,
    batches: Iterator[Any],
    method: str = recipe.CALIBRATION_METHOD,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Collect activation ranges (onnxruntime `TensorsData`) of `recipe_fp32` over `batches`.

    Ranges are kept asymmetric here; each encoding symmetrizes (or not) when it is emitted.
    """
    from onnxruntime.quantization.calibrate import CalibrationDataReader, create_calibrator

    class _OneBatch(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, batch: Any) -> None:
            self.pending = [{INPUT_NAME: batch}]

        def get_next(self) -> dict[str, Any] | None:
            return self.pending.pop() if self.pending else None

    with tempfile.TemporaryDirectory(prefix="mlorch-calibrate-") as work:
        calibrator = create_calibrator(
            recipe_fp32,
            _op_types(),
            augmented_model_path=str(Path(work) / "augmented.onnx"),
            calibrate_method=_method(method),
            extra_options={"symmetric": False},
        )
        # One batch per collect_data call: the calibrators merge ranges/histograms across calls,
        # and the entropy one would otherwise hold every activation of every image at once.
        seen = 0
        for batch in batches:
            calibrator.collect_data(_OneBatch(batch))
            seen += len(batch)
            if progress is not None:
                progress(seen)
        if seen == 0:
            raise ValueError("no calibration images")
        return calibrator.compute_data()


def save_ranges(ranges: Any, path: Path) -> None:
    from onnxruntime.quantization.calibrate import save_tensors_data

    save_tensors_data(ranges, path)


def load_ranges(path: Path) -> Any:
    from onnxruntime.quantization.calibrate import load_tensors_data

    return load_tensors_data(path)


def _input_override(encoding: str) -> dict[str, Any]:
    """Pin the input's quantization to the INT8 cache's own: scale 1 (zero point 0 for int8,
    128 for uint8, where uint8 x + 128 ≡ int8 x)."""
    from onnxruntime.quantization import QuantType

    if encoding == "s8s8":
        pinned = {
            "quant_type": QuantType.QInt8,
            "scale": np.array(1.0, np.float32),
            "zero_point": np.array(0, np.int8),
        }
    else:
        pinned = {
            "quant_type": QuantType.QUInt8,
            "scale": np.array(1.0, np.float32),
            "zero_point": np.array(128, np.uint8),
        }
    return {INPUT_NAME: [pinned]}


def _int8_input_by_dropping_q(model: Any) -> None:
    """s8s8: input → Q(int8, 1, 0) → DQ becomes int8 input → DQ (TensorRT is strongly typed)."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    consumers = [node for node in graph.node if INPUT_NAME in node.input]
    if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
        raise RuntimeError(f"{INPUT_NAME} should feed exactly one QuantizeLinear")
    quantize = consumers[0]
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    scale, zero = inits.get(quantize.input[1]), inits.get(quantize.input[2])
    if scale is None or zero is None or float(scale) != 1.0 or zero.dtype != np.int8 or zero != 0:
        raise RuntimeError("the input QuantizeLinear is not (int8, scale 1, zero point 0)")
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == quantize.output[0]:
                node.input[position] = INPUT_NAME
    graph.node.remove(quantize)
    graph.input[0].type.tensor_type.elem_type = TensorProto.INT8


def _int8_input_by_dequantizing(model: Any) -> None:
    """u8s8: int8 input → DQ(1, 0) → the float tensor the pinned Q(uint8, 1, 128) reads.

    onnxruntime folds DQ → Q → DQ → Conv around the first convolution so it stays a QLinearConv
    whose results equal the float-input model's bit for bit.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == INPUT_NAME:
                node.input[position] = _INPUT_FLOAT
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1.0, np.float32), "mlorch_nv/input_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "mlorch_nv/input_zero_point"),
        ]
    )
    graph.node.insert(
        0,
        helper.make_node(
            "DequantizeLinear",
            [INPUT_NAME, "mlorch_nv/input_scale", "mlorch_nv/input_zero_point"],
            [_INPUT_FLOAT],
            name=_INPUT_DQ,
        ),
    )
    graph.input[0].type.tensor_type.elem_type = TensorProto.INT8


def _sort_topologically(graph: Any) -> None:
    """Order nodes producers-first (the quantizer appends its Q/DQ nodes at the end), keeping
    the original order wherever the dependencies allow it."""
    import heapq

    nodes = list(graph.node)
    producer = {out: index for index, node in enumerate(nodes) for out in node.output}
    pending = [{producer[name] for name in node.input if name in producer} for node in nodes]
    consumers: dict[int, list[int]] = {}
    for index, parents in enumerate(pending):
        for parent in parents:
            consumers.setdefault(parent, []).append(index)
    ready = [index for index, parents in enumerate(pending) if not parents]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for child in consumers.get(index, []):
            pending[child].discard(index)
            if not pending[child]:
                heapq.heappush(ready, child)
    if len(order) != len(nodes):
        raise RuntimeError("the quantized graph has a cycle")
    del graph.node[:]
    graph.node.extend(nodes[index] for index in order)


def emit(
    recipe_fp32: Path, ranges: Any, encoding: str, destination: Path, int8_input: bool = True
) -> None:
    """Write the Q/DQ model of one encoding ("s8s8" or "u8s8") from calibrated `ranges`.

    `int8_input=False` keeps the float input (same pinned input quantization): only for
    measuring what the INT8 input itself buys.
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    from contract.locks import atomic_write_bytes

    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    spec = ENCODINGS[encoding]
    model = load_model_with_shape_infer(recipe_fp32)
    tail = classifier_tail(model)
    # The FC's input and weights are quantized, its output (the logits) is not; the bias Add
    # and TopK → Cast → Reshape stay float/integer.
    excluded = [*tail.output_nodes, *([tail.bias_node] if tail.bias_node else [])]
    extra = {
        "ActivationSymmetric": spec.activation_symmetric,
        "WeightSymmetric": True,
        "OpTypesToExcludeOutputQuantization": [tail.fc_op],
        "TensorQuantOverrides": _input_override(encoding),
        "QuantizeBias": spec.bias == "int32",
    }
    quantizer = QDQQuantizer(
        model,
        True,  # per-channel weights
        False,  # no reduce_range: VNNI and TensorRT use the full int8 range
        QuantType.QInt8,
        QuantType.QInt8 if spec.activation_type == "int8" else QuantType.QUInt8,
        copy.deepcopy(ranges),  # the quantizer adjusts ranges in place
        [],
        excluded,
        _op_types(),
        extra,
    )
    quantizer.quantize_model()
    quantized = quantizer.model.model
    if int8_input and encoding == "s8s8":
        _int8_input_by_dropping_q(quantized)
    elif int8_input:
        _int8_input_by_dequantizing(quantized)
    _sort_topologically(quantized.graph)
    quantized.producer_name = "mlorch"
    quantized.doc_string = f"{spec.name}: {spec.target}; {spec.input_handling}"
    onnx.checker.check_model(quantized)
    atomic_write_bytes(destination, quantized.SerializeToString())


@dataclass(frozen=True)
class Artifact:
    """A prepared-model folder and the guards of its two Q/DQ models on one sample set."""

    directory: Path
    manifest: dict[str, Any]
    guards: dict[str, guard.GuardResult]  # by encoding: the twin's u8s8, TensorRT's s8s8

    @property
    def guard(self) -> guard.GuardResult:
        """The CPU twin's guard."""
        return self.guards[recipe.CPU_ENCODING]

    @property
    def recipe_fp32(self) -> Path:
        return self.directory / RECIPE_FP32

    def model(self, encoding: str) -> Path:
        return self.directory / ENCODINGS[encoding].file


def _inputs(model_path: Path, calibration: CalibrationSet, method: str) -> dict[str, Any]:
    """What the models in a folder were made from (a folder holding others is rebuilt)."""
    return {
        "model_sha256": file_sha256(model_path),
        "calibration": {
            "source": calibration.source,
            "images": len(calibration.relpaths),
            "sha256": calibration.sha256,
        },
        "method": method,
        "rewrite_version": REWRITE_VERSION,
        "quantizer_version": QUANTIZER_VERSION,
    }


def _build_models(
    work: Path,
    model_path: Path,
    dataset_dir: Path,
    calibration: CalibrationSet,
    method: str,
    log: Callable[[str], None],
) -> None:
    import onnx

    fp32 = work / RECIPE_FP32
    onnx.save(rewrite(onnx.load(str(model_path))), str(fp32))
    total = len(calibration.relpaths)
    log(f"rewrote the graph (v{REWRITE_VERSION}); calibrating ({method}) on {total} images")

    def progress(done: int) -> None:
        if done % 128 < CALIBRATION_BATCH or done == total:
            log(f"calibrated {done}/{total}")

    ranges = calibrate(fp32, calibration_batches(calibration.paths(dataset_dir)), method, progress)
    save_ranges(ranges, work / RANGES)
    for name, spec in ENCODINGS.items():
        emit(fp32, ranges, name, work / spec.file)
        log(f"emitted {name} ({spec.target})")


def _int8_record(directory: Path) -> dict[str, Any]:
    """TensorRT's model: every Conv/Gemm fed INT8 data and weights, nothing float between them
    but what TensorRT fuses (the host refuses a cuda run on a model that fails it)."""
    report = check_int8(directory / ENCODINGS[recipe.TRT_ENCODING].file)
    return {"int8_check": {recipe.TRT_ENCODING: report.as_dict()}}


def _manifest(inputs: dict[str, Any], directory: Path) -> dict[str, Any]:
    files = [RECIPE_FP32, RANGES, *(spec.file for spec in ENCODINGS.values())]
    return {
        **inputs,
        **_int8_record(directory),
        "encodings": {
            name: {
                "file": spec.file,
                "target": spec.target,
                "activation_type": spec.activation_type,
                "activation_symmetric": spec.activation_symmetric,
                "activation_zero_point": spec.activation_zero_point,
                "bias": spec.bias,
                "weights": "int8 symmetric, per output channel",
                "input": "int8 linear NCHW, scale 1.0",
                "input_handling": spec.input_handling,
            }
            for name, spec in ENCODINGS.items()
        },
        "files": {name: file_sha256(directory / name) for name in files},
    }


def _ensure_models(
    out_dir: Path,
    model_path: Path,
    dataset_dir: Path,
    calibration: CalibrationSet,
    method: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    inputs = _inputs(model_path, calibration, method)
    manifest = read_manifest(out_dir)
    if manifest is not None and {k: manifest.get(k) for k in inputs} == inputs:
        if "int8_check" not in manifest:  # prepared before the static check: add it, keep the rest
            manifest = {**manifest, **_int8_record(out_dir)}
            atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        log("the prepared models are complete")
        return manifest
    for stale in out_dir.iterdir():  # other inputs or an interrupted build: start over
        if stale.is_file() and not stale.name.startswith("."):
            stale.unlink()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    try:
        _build_models(work, model_path, dataset_dir, calibration, method, log)
        manifest = _manifest(inputs, work)
        int8 = manifest["int8_check"][recipe.TRT_ENCODING]
        log(f"static INT8 check of {recipe.TRT_ENCODING}: {int8['summary']}")
        for path in work.iterdir():
            os.chmod(path, 0o644)  # readable by whichever uid runs the engines
            os.replace(path, out_dir / path.name)
        atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _ensure_guards(
    out_dir: Path,
    dataset_dir: Path,
    guard_images: Sequence[ImageEntry],
    guard_tag: str,
    min_agreement: float | None,
    log: Callable[[str], None],
) -> dict[str, guard.GuardResult]:
    """Both Q/DQ models on onnxruntime's CPU against FP32 and the true labels: the twin's u8s8
    and TensorRT's s8s8, so a TensorRT model that misses the rule is refused on any host,
    before a GPU builds an engine from it."""
    result_file, labels_file = guard_files(out_dir, guard_tag)
    if result_file.is_file():
        recorded = json.loads(result_file.read_text())["encodings"]
        return {name: guard.GuardResult.from_dict(data) for name, data in recorded.items()}
    samples = guard.GuardSamples.from_relpaths(dataset_dir, [e.relpath for e in guard_images])
    reference = guard.Reference(
        guard.fp32_labels(out_dir / RECIPE_FP32, samples.fp32),
        np.asarray([entry.label for entry in guard_images], np.int32),
    )
    guard.save_reference(labels_file, reference)
    results = {}
    for name in (recipe.CPU_ENCODING, recipe.TRT_ENCODING):
        results[name] = guard.check(
            guard.ort_labels_of(out_dir / ENCODINGS[name].file, name),
            samples.int8,
            reference,
            min_agreement,
        )
        log(f"guard {name} ({ENCODINGS[name].target}): {results[name].summary()}")
    record = {"tag": guard_tag, "encodings": {k: v.as_dict() for k, v in results.items()}}
    atomic_write_text(result_file, json.dumps(record, indent=1) + "\n")
    return results


def prepare_model(
    model_path: Path,
    dataset_dir: Path,
    out_dir: Path,
    calibration: CalibrationSet,
    guard_images: Sequence[ImageEntry],
    guard_tag: str,
    method: str = recipe.CALIBRATION_METHOD,
    min_agreement: float | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Artifact:
    """Fill `out_dir` (the host's `models/<key>` folder): rewrite, calibrate once, emit s8s8 and
    u8s8, then guard both against FP32 and the true labels on `guard_images`.

    `guard_images[i]` is the image (and its label) at QSL index i (the first images of the
    run's val_map) and `guard_tag` names that set (`recipe.guard_tag`). Models already made from
    the same inputs are kept; guards already run on the same set are read back. Files appear
    atomically, the manifest after the models and the guard result after the reference labels,
    so the host's completeness check never sees half an artifact. The guards' verdicts are
    returned and recorded, not raised: the host turns a failure into its accuracy-guard error
    (`guard.require` raises).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir / ".prepare.lock", on_wait=lambda: log("waiting for the lock")):
        manifest = _ensure_models(out_dir, model_path, dataset_dir, calibration, method, log)
        results = _ensure_guards(out_dir, dataset_dir, guard_images, guard_tag, min_agreement, log)
    return Artifact(out_dir, manifest, results)
