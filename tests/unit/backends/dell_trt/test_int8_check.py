"""The static "INT8 stays INT8" check of explicit Q/DQ models (backends.dell_trt.int8_check).

The fast tests build small Q/DQ graphs here with onnx.helper; the heavy ones run the check on
what the project's emitter makes of the synthetic ResNet50.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.dell_trt.int8_check import (
    Finding,
    Int8CheckFailed,
    Int8Report,
    check_int8,
    require_int8,
)

_CHANNELS = 4
_INT8_ZERO = np.int8(0)


class QdqGraph:
    """A small S8S8 graph under construction: int8 input `x` (N, 4, 8, 8) → DequantizeLinear
    (or a float `x` as is)."""

    def __init__(self, input_type: int = TensorProto.INT8) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._rng = np.random.default_rng(0)
        self._count = 0
        self.input_type = input_type
        self.x = self.dq("x") if input_type == TensorProto.INT8 else "x"

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, array: np.ndarray | np.generic, stem: str = "c") -> str:
        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs: Any) -> str:
        name = name or self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def dq(self, tensor: str, zero: np.generic = _INT8_ZERO) -> str:
        scale = self.const(np.float32(0.05), "scale")
        return self.node("DequantizeLinear", [tensor, scale, self.const(zero, "zero")])

    def q(self, tensor: str, zero: np.generic = _INT8_ZERO) -> str:
        scale = self.const(np.float32(0.05), "scale")
        return self.node("QuantizeLinear", [tensor, scale, self.const(zero, "zero")])

    def qdq(self, tensor: str, zero: np.generic = _INT8_ZERO) -> str:
        return self.dq(self.q(tensor, zero), zero)

    def weight(self, shape: tuple[int, ...], axis: int = 0, per_channel: bool = True) -> str:
        values = self._rng.integers(-127, 128, shape).astype(np.int8)
        scale = np.full(shape[axis] if per_channel else (), 0.01, np.float32)
        zero = np.zeros(scale.shape, np.int8)
        return self.node(
            "DequantizeLinear",
            [self.const(values, "w"), self.const(scale, "w_scale"), self.const(zero, "w_zero")],
            axis=axis,
        )

    def float_weight(self, shape: tuple[int, ...]) -> str:
        return self.const(self._rng.standard_normal(shape).astype(np.float32), "w_float")

    def conv(self, data: str, weight: str | None = None, name: str | None = None) -> str:
        weight = weight or self.weight((_CHANNELS, _CHANNELS, 3, 3))
        return self.node("Conv", [data, weight], name, pads=[1, 1, 1, 1])

    def model(self, output: str, elem_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "qdq",
            [helper.make_tensor_value_info("x", self.input_type, ["N", _CHANNELS, 8, 8])],
            [helper.make_tensor_value_info(output, elem_type, None)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)  # well-formed
        return model


def _chain(relu_between_qdq: bool) -> QdqGraph:
    """conv → relu → conv, each compute node between DequantizeLinear and QuantizeLinear."""
    g = QdqGraph()
    first = g.conv(g.x, name="conv_a")
    relu = g.node("Relu", [g.qdq(first) if relu_between_qdq else first], name="relu")
    g.conv(g.qdq(relu), name="conv_b")
    return g


def _names(report: Int8Report) -> list[str]:
    return [finding.node for finding in report.findings]


@pytest.mark.parametrize("relu_between_qdq", [False, True])
def test_a_quantized_conv_relu_conv_chain_passes(relu_between_qdq: bool) -> None:
    g = _chain(relu_between_qdq)
    report = check_int8(g.model(g.qdq("conv_b_out")))
    assert report.findings == ()
    assert (report.compute_nodes, report.quantized) == (2, 2)
    assert report.ok
    assert report.summary() == "INT8 2/2 compute nodes, no float layer between them"
    require_int8(report)  # silent


def test_a_conv_with_a_float_weight_fails_naming_it() -> None:
    g = QdqGraph()
    relu = g.node("Relu", [g.conv(g.x, name="conv_a")])
    out = g.conv(g.qdq(relu), g.float_weight((_CHANNELS, _CHANNELS, 3, 3)), name="conv_float")
    report = check_int8(g.model(g.qdq(out)))
    assert not report.ok
    assert (report.compute_nodes, report.quantized) == (2, 1)
    (finding,) = report.findings
    assert (finding.node, finding.op_type, finding.kind) == ("conv_float", "Conv", "weight")
    assert "float constant" in finding.detail
    with pytest.raises(Int8CheckFailed, match="conv_float") as raised:
        require_int8(report, "s8s8.onnx")
    assert isinstance(raised.value, ValueError)
    assert raised.value.report is report
    assert str(raised.value).startswith("s8s8.onnx would not run all in INT8")


def test_a_conv_whose_data_is_not_dequantized_fails() -> None:
    g = QdqGraph()
    relu = g.node("Relu", [g.conv(g.x, name="conv_a")])
    out = g.conv(relu, name="conv_float_input")  # no Q/DQ between the layers
    report = check_int8(g.model(g.qdq(out)))
    assert (report.compute_nodes, report.quantized) == (2, 1)
    (finding,) = report.findings
    assert (finding.node, finding.kind) == ("conv_float_input", "data_input")
    assert "Relu" in finding.detail


def test_a_conv_on_the_float_graph_input_fails() -> None:
    g = QdqGraph(TensorProto.FLOAT)
    report = check_int8(g.model(g.qdq(g.conv(g.x, name="conv_raw"))))
    assert [(f.node, f.kind) for f in report.findings] == [("conv_raw", "data_input")]
    assert "the graph" in report.findings[0].detail


@pytest.mark.parametrize("op", ["Sigmoid", "Mul", "Softmax"])
def test_a_float_op_between_quantized_convs_fails(op: str) -> None:
    g = QdqGraph()
    first = g.conv(g.x, name="conv_a")
    inputs = [first, g.const(np.float32(2.0))] if op == "Mul" else [first]
    middle = g.node(op, inputs, name="unfused")
    g.conv(g.qdq(middle), name="conv_b")
    report = check_int8(g.model(g.qdq("conv_b_out")))
    assert (report.compute_nodes, report.quantized) == (2, 2)  # both convs are INT8 …
    assert not report.ok  # … but the op between them runs in float
    (finding,) = report.findings
    assert (finding.node, finding.op_type, finding.kind) == ("unfused", op, "float_op")
    assert "conv_a" in finding.detail


def test_a_float_op_between_dequantize_and_quantize_fails() -> None:
    """DQ → Sigmoid → Q: sandwiched in Q/DQ, the Sigmoid still runs in float."""
    g = QdqGraph()
    sigmoid = g.node("Sigmoid", [g.qdq(g.conv(g.x))], name="sandwiched")
    report = check_int8(g.model(g.qdq(g.conv(g.qdq(sigmoid)))))
    assert _names(report) == ["sandwiched"]


@pytest.mark.parametrize("shape", ["conv_plus_dequantized", "dequantized_plus_dequantized"])
def test_a_residual_add_passes(shape: str) -> None:
    """Block output = relu(conv(r) + r): TensorRT fuses the Add with the dequantized residual,
    whether the conv's output is quantized before the Add (the emitted model) or not."""
    g = QdqGraph()
    residual = g.qdq(g.node("Relu", [g.conv(g.x, name="conv_a")]))
    branch = g.conv(g.qdq(g.node("Relu", [g.conv(residual, name="conv_b")])), name="conv_c")
    if shape == "dequantized_plus_dequantized":
        branch = g.qdq(branch)
    added = g.node("Add", [branch, residual], name="residual_add")
    out = g.conv(g.qdq(g.node("Relu", [added])), name="conv_d")
    report = check_int8(g.model(g.qdq(out)))
    assert report.findings == ()
    assert report.ok
    assert report.compute_nodes == 4


def test_an_add_of_two_float_conv_outputs_fails() -> None:
    g = QdqGraph()
    left, right = g.conv(g.x, name="conv_l"), g.conv(g.x, name="conv_r")
    added = g.node("Add", [left, right], name="float_add")
    report = check_int8(g.model(g.qdq(added)))
    (finding,) = report.findings
    assert (finding.node, finding.kind) == ("float_add", "float_op")
    assert "conv_l_out" in finding.detail
    assert "conv_r_out" in finding.detail


@pytest.mark.parametrize("op", ["BatchNormalization", "Clip", "MaxPool", "AveragePool"])
def test_fusable_layers_after_a_conv_pass(op: str) -> None:
    g = QdqGraph()
    first = g.conv(g.x)
    if op == "BatchNormalization":
        params = [g.const(np.ones(_CHANNELS, np.float32)) for _ in range(4)]
        layer = g.node(op, [first, *params])
    elif op == "Clip":
        layer = g.node(op, [first, g.const(np.float32(0)), g.const(np.float32(6))])
    else:
        layer = g.node(op, [first], kernel_shape=[2, 2], strides=[2, 2])
    report = check_int8(g.model(g.qdq(g.conv(g.qdq(layer)))))
    assert report.ok, report.summary()


def _classifier(g: QdqGraph, fc: str) -> str:
    """conv → GlobalAveragePool → Flatten → FC (float logits) → TopK → Cast → Reshape."""
    pooled = g.qdq(g.node("GlobalAveragePool", [g.qdq(g.conv(g.x))]))
    features = g.qdq(g.node("Flatten", [pooled]))
    if fc == "Gemm":
        logits = g.node("Gemm", [features, g.weight((_CHANNELS, 10), axis=1)], "fc")
    else:
        product = g.node("MatMul", [features, g.weight((_CHANNELS, 10), axis=1)], "fc")
        logits = g.node("Add", [product, g.const(np.zeros(10, np.float32))], "fc_bias")
    return logits


@pytest.mark.parametrize("fc", ["Gemm", "MatMul"])
def test_the_classifier_tail_after_the_fc_is_allowed(fc: str) -> None:
    g = QdqGraph()
    logits = _classifier(g, fc)
    topk = helper.make_node(
        "TopK", [logits, g.const(np.array([1], np.int64))], ["top1", "index"], name="topk", axis=1
    )
    g.nodes.append(topk)
    cast = g.node("Cast", ["index"], "cast", to=TensorProto.INT32)
    label = g.node("Reshape", [cast, g.const(np.array([-1], np.int64))], "label")
    report = check_int8(g.model(label, TensorProto.INT32))
    assert report.ok, report.summary()
    assert report.compute_nodes == 2
    bias = ("fc_bias",) if fc == "MatMul" else ()
    assert report.tail == (*bias, "topk", "cast", "label")


def test_float_compute_in_the_classifier_tail_fails() -> None:
    g = QdqGraph()
    probabilities = g.node("Softmax", [_classifier(g, "Gemm")], "softmax")
    g.nodes.append(
        helper.make_node(
            "TopK", [probabilities, g.const(np.array([1], np.int64))], ["v", "i"], name="topk"
        )
    )
    report = check_int8(g.model("i", TensorProto.INT64))
    assert _names(report) == ["softmax"]
    assert report.tail == ()  # TopK after a float op is no classifier tail


def test_float_logits_may_leave_the_graph() -> None:
    """The FC ran in INT8; its float output is the model's answer, no float layer runs."""
    g = QdqGraph()
    report = check_int8(g.model(_classifier(g, "Gemm")))
    assert report.ok
    assert report.tail == ()


@pytest.mark.parametrize(
    ("weight", "detail"),
    [
        ("uint8", "uint8, not int8"),
        ("axis", "per output channel (axis 0)"),
        ("zero_point", "zero point is not 0"),
        ("not_constant", "reads no int8 constant"),
    ],
)
def test_weights_tensorrt_cannot_run_in_int8_fail(weight: str, detail: str) -> None:
    g = QdqGraph()
    shape = (_CHANNELS, _CHANNELS, 3, 3)
    values = np.ones(shape, np.uint8 if weight == "uint8" else np.int8)
    scale = np.full(_CHANNELS, 0.01, np.float32)
    zero = np.zeros(_CHANNELS, values.dtype)
    if weight == "zero_point":
        zero[1] = 3
    source = g.const(values)
    if weight == "not_constant":  # the int8 weights computed at run time
        source = g.node("Abs", [source])
    dequantized = g.node(
        "DequantizeLinear",
        [source, g.const(scale), g.const(zero)],
        axis=1 if weight == "axis" else 0,
    )
    report = check_int8(g.model(g.qdq(g.conv(g.x, dequantized, name="conv_w"))))
    (finding,) = report.findings
    assert (finding.node, finding.kind) == ("conv_w", "weight")
    assert detail in finding.detail


def test_a_per_tensor_weight_scale_passes() -> None:
    g = QdqGraph()
    weight = g.weight((_CHANNELS, _CHANNELS, 3, 3), per_channel=False)
    assert check_int8(g.model(g.qdq(g.conv(g.x, weight)))).ok


def test_uint8_activations_are_not_int8() -> None:
    """The u8s8 encoding's activations: TensorRT's INT8 is signed."""
    g = QdqGraph()
    first = g.conv(g.x, name="conv_a")
    g.conv(g.qdq(first, zero=np.uint8(128)), name="conv_u8")
    report = check_int8(g.model(g.qdq("conv_u8_out")))
    (finding,) = report.findings
    assert (finding.node, finding.kind) == ("conv_u8", "data_input")
    assert "uint8" in finding.detail


def test_a_model_without_compute_is_not_ok() -> None:
    g = QdqGraph()
    report = check_int8(g.model(g.node("Relu", [g.x])))
    assert report.findings == ()
    assert not report.ok
    assert "no Conv, Gemm or MatMul" in report.summary()
    with pytest.raises(Int8CheckFailed, match="no Conv"):
        require_int8(report)


def test_the_report_reads_a_path_and_records_as_json(tmp_path: Path) -> None:
    g = QdqGraph()
    data = g.x
    for index in range(7):  # seven convs on float weights: more findings than a summary shows
        data = g.qdq(g.conv(data, g.float_weight((_CHANNELS, _CHANNELS, 3, 3)), f"c{index}"))
    path = tmp_path / "model.onnx"
    onnx.save(g.model(data), str(path))
    report = check_int8(path)
    assert report == check_int8(str(path)) == check_int8(onnx.load(str(path)))
    assert _names(report) == [f"c{index}" for index in range(7)]  # graph order
    summary = report.summary()
    assert "\n" not in summary
    assert summary.startswith("INT8 0/7 compute nodes, 7 findings: Conv c0: ")
    assert "c4" in summary
    assert "c5" not in summary
    assert summary.endswith("; … 2 more")
    record = json.loads(json.dumps(report.as_dict()))
    assert record["ok"] is False
    assert (record["compute_nodes"], record["quantized"]) == (7, 0)
    assert record["findings"][0] == {
        "node": "c0",
        "op_type": "Conv",
        "kind": "weight",
        "detail": report.findings[0].detail,
    }
    assert Finding(**record["findings"][0]) == report.findings[0]
    with pytest.raises(Int8CheckFailed) as raised:
        require_int8(report)
    assert "c0" in str(raised.value)
    assert "c6" not in str(raised.value)


# The project's emitter on the synthetic ResNet50 (rewrite → calibrate → emit, as
# quantize.prepare_model runs them). A few calibration images: the ranges change the scales,
# not where the Q/DQ nodes go.


def _emit_s8s8(model: onnx.ModelProto, dataset: Path, work: Path) -> Path:
    from backends.dell_trt.graph import rewrite
    from backends.dell_trt.quantize import calibrate, calibration_batches, emit
    from contract.dell_trt.artifact import ENCODINGS, synthetic_calibration_set

    recipe = work / "recipe_fp32.onnx"
    onnx.save(rewrite(model), str(recipe))
    paths = synthetic_calibration_set(dataset).paths(dataset)[:4]
    ranges = calibrate(recipe, calibration_batches(paths, batch=4))
    destination = work / ENCODINGS["s8s8"].file
    emit(recipe, ranges, "s8s8", destination)
    return destination


def _resnet50_compute(model: onnx.ModelProto) -> int:
    ops = [node.op_type for node in model.graph.node]
    assert (ops.count("Conv"), ops.count("Gemm")) == (53, 1)  # ResNet50 v1.5: 53 convs + the FC
    return ops.count("Conv") + ops.count("Gemm")


@pytest.mark.heavy
def test_the_emitted_s8s8_resnet50_runs_all_in_int8(
    synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    source, dataset = synthetic_assets
    model = onnx.load(str(source))
    report = check_int8(_emit_s8s8(model, dataset, tmp_path))
    assert report.findings == (), report.summary()
    assert report.ok
    assert report.compute_nodes == report.quantized == _resnet50_compute(model) == 54
    assert report.tail == ("mlorch_nv/topk", "mlorch_nv/cast", "mlorch_nv/flatten_class")
    require_int8(report, "s8s8")


@pytest.mark.heavy
def test_the_emitted_s8s8_of_a_matmul_add_head_runs_all_in_int8(
    synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    """The official model's FC shape (MatMul + bias Add): the bias Add joins the tail."""
    from tests.unit.backends.dell_trt.test_dell_graph import matmul_add_variant

    source, dataset = synthetic_assets
    model = matmul_add_variant(onnx.load(str(source)))
    report = check_int8(_emit_s8s8(model, dataset, tmp_path))
    assert report.ok, report.summary()
    assert report.compute_nodes == 54
    assert len(report.tail) == 4
    assert report.tail[1:] == ("mlorch_nv/topk", "mlorch_nv/cast", "mlorch_nv/flatten_class")
