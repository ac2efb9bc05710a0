"""Static check that an explicit Q/DQ model keeps TensorRT in INT8 ("INT8 stays INT8").

TensorRT builds a strongly typed network from the S8S8 model: each layer runs in the precision
its Q/DQ nodes say. A Q/DQ placement it cannot fuse does not fail the build; the layer runs in
FP32/FP16 instead, which still passes the accuracy checks but costs a multiple in speed. This
module reads the ONNX graph alone (no onnxruntime, no GPU) and reports every such layer:

* compute (Conv, Gemm, MatMul): the data input (input 0) must be the output of a
  DequantizeLinear of int8, and the weight (input 1) the output of a DequantizeLinear of an int8
  constant, scaled per tensor or per output channel, zero point 0. Otherwise the layer is float.
* between quantized layers: from every compute output and every activation DequantizeLinear, the
  float tensors are followed to the next QuantizeLinear (or the next compute node, whose own
  inputs are checked above). On the way only what TensorRT fuses into the INT8 layers may run:
  BatchNormalization (folded), Relu/Clip (activation fusion), Add with at most one operand that
  is not dequantized (residual add), Max/Average/GlobalAverage pooling, and the shape-only
  Flatten/Reshape/Identity/Squeeze/Unsqueeze. Any other node there is a finding.
* the classifier tail: a Gemm/MatMul whose float logits (optionally through a bias Add with a
  constant operand) feed TopK ends the quantized network; TopK → Cast → Reshape producing the
  int32 label (`graph.rewrite`) is accepted and listed in the report, nothing else after it.

A float tensor that leaves the graph is not a finding: the layer that made it ran in INT8.

Importable without numpy or onnx (the host can read and render a recorded report).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backends.dell_trt.graph import onnx_attribute as _attr

COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul"})
FC_OPS = frozenset({"Gemm", "MatMul"})
# Float nodes TensorRT fuses into (or runs in INT8 between) the quantized layers.
FUSABLE_OPS = frozenset(
    {
        "BatchNormalization",
        "Relu",
        "Clip",
        "Add",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Flatten",
        "Reshape",
        "Identity",
        "Squeeze",
        "Unsqueeze",
    }
)
# What may follow the classifier's TopK: the label's index arithmetic, no float compute.
TAIL_OPS = frozenset({"TopK", "Cast", "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze"})
_SHOWN = 5  # offending nodes named in a summary or an exception

FindingKind = Literal["data_input", "weight", "float_op"]


@dataclass(frozen=True)
class Finding:
    """One node that makes TensorRT leave INT8."""

    node: str
    op_type: str
    kind: FindingKind
    detail: str

    def __str__(self) -> str:
        return f"{self.op_type} {self.node}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Int8Report:
    """The verdict of `check_int8` on one Q/DQ model."""

    compute_nodes: int  # Conv, Gemm and MatMul nodes
    quantized: int  # those whose data and weight inputs are both INT8
    findings: tuple[Finding, ...]
    tail: tuple[str, ...] = field(default=())  # nodes accepted as the classifier tail

    @property
    def ok(self) -> bool:
        return not self.findings and self.compute_nodes > 0 and self.quantized == self.compute_nodes

    def summary(self) -> str:
        head = f"INT8 {self.quantized}/{self.compute_nodes} compute nodes"
        if self.ok:
            return f"{head}, no float layer between them"
        if not self.findings:
            return f"{head}: no Conv, Gemm or MatMul node to run in INT8"
        shown = "; ".join(str(finding) for finding in self.findings[:_SHOWN])
        more = len(self.findings) - _SHOWN
        return f"{head}, {len(self.findings)} findings: {shown}" + (
            f"; … {more} more" if more > 0 else ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "compute_nodes": self.compute_nodes,
            "quantized": self.quantized,
            "findings": [finding.as_dict() for finding in self.findings],
            "tail": list(self.tail),
        }


class Int8CheckFailed(ValueError):
    """The Q/DQ model makes TensorRT run some layers in float (`report` says which)."""

    def __init__(self, message: str, report: Int8Report) -> None:
        super().__init__(message)
        self.report = report


def require_int8(report: Int8Report, what: str = "the Q/DQ model") -> None:
    """Raise `Int8CheckFailed` naming the first offending nodes unless `report.ok`."""
    if not report.ok:
        raise Int8CheckFailed(
            f"{what} would not run all in INT8 on TensorRT: {report.summary()}", report
        )


class _Graph:
    """Name, producer, consumer and constant lookups over one graph (read only)."""

    def __init__(self, graph: Any) -> None:
        self.nodes = list(graph.node)
        self.names = {
            id(node): node.name or f"{node.op_type}#{i}" for i, node in enumerate(self.nodes)
        }
        self.producer = {out: node for node in self.nodes for out in node.output if out}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.input):
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.initializer = {init.name: init for init in graph.initializer}
        self.inputs = {value.name: value for value in graph.input}

    def name(self, node: Any) -> str:
        return self.names[id(node)]

    def constant(self, tensor: str) -> Any | None:
        """The numpy value of `tensor` if it is an initializer or a Constant node's output."""
        from onnx import numpy_helper

        if tensor in self.initializer:
            return numpy_helper.to_array(self.initializer[tensor])
        node = self.producer.get(tensor)
        if node is not None and node.op_type == "Constant":
            value = _attr(node, "value", None)
            return None if value is None else numpy_helper.to_array(value)
        return None

    def is_constant(self, tensor: str) -> bool:
        if tensor in self.initializer:
            return True
        node = self.producer.get(tensor)
        return node is not None and node.op_type == "Constant"

    def dequantized(self, tensor: str) -> Any | None:
        """The DequantizeLinear producing `tensor`, if one does."""
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def quantized_type(self, dequantize: Any) -> str | None:
        """The integer type a DequantizeLinear reads ("int8", "uint8", …), None if unknown."""
        from onnx import helper

        if len(dequantize.input) > 2 and dequantize.input[2]:
            zero = self.constant(dequantize.input[2])
            if zero is not None:
                return str(zero.dtype)
        source = dequantize.input[0]
        value = self.constant(source)
        if value is not None:
            return str(value.dtype)
        if source in self.inputs:
            elem = self.inputs[source].type.tensor_type.elem_type
            return str(helper.tensor_dtype_to_np_dtype(elem)) if elem else None
        quantize = self.producer.get(source)
        if quantize is not None and quantize.op_type == "QuantizeLinear":
            if len(quantize.input) > 2 and quantize.input[2]:
                zero = self.constant(quantize.input[2])
                if zero is not None:
                    return str(zero.dtype)
            elem = int(_attr(quantize, "output_dtype", 0))
            return str(helper.tensor_dtype_to_np_dtype(elem)) if elem else "uint8"
        return None


def _output_channel_axis(node: Any, weight_rank: int) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if int(_attr(node, "transB", 0)) else 1
    return weight_rank - 1  # MatMul: (…, K, N)


def _check_data(g: _Graph, node: Any) -> str | None:
    if not node.input or not node.input[0]:
        return "has no data input"
    dequantize = g.dequantized(node.input[0])
    if dequantize is None:
        producer = g.producer.get(node.input[0])
        source = f"{producer.op_type} {g.name(producer)}" if producer is not None else "the graph"
        return (
            f"data input {node.input[0]} comes from {source}, not a DequantizeLinear: runs in float"
        )
    kind = g.quantized_type(dequantize)
    if kind is not None and kind != "int8":
        return f"data input is dequantized from {kind}, not int8 (TensorRT's INT8 is signed)"
    return None


def _check_weight(g: _Graph, node: Any) -> str | None:
    if len(node.input) < 2 or not node.input[1]:
        return "has no weight input"
    weight = node.input[1]
    dequantize = g.dequantized(weight)
    if dequantize is None:
        what = "a float constant" if g.is_constant(weight) else "not dequantized"
        return f"weight {weight} is {what}: runs in float"
    values = g.constant(dequantize.input[0])
    if values is None:
        return f"weight DequantizeLinear {g.name(dequantize)} reads no int8 constant"
    if str(values.dtype) != "int8":
        return f"weight {dequantize.input[0]} is {values.dtype}, not int8"
    scale = g.constant(dequantize.input[1])
    if scale is None:
        return f"weight scale {dequantize.input[1]} is not a constant"
    if scale.size != 1:
        axis = int(_attr(dequantize, "axis", 1))
        axis = axis + values.ndim if axis < 0 else axis
        channels = _output_channel_axis(node, values.ndim)
        if axis != channels or scale.size != values.shape[channels]:
            return (
                f"weight scale has {scale.size} values on axis {axis}; TensorRT takes one per "
                f"tensor or one per output channel (axis {channels})"
            )
    if len(dequantize.input) > 2 and dequantize.input[2]:
        zero = g.constant(dequantize.input[2])
        if zero is None or zero.any():
            return "weight zero point is not 0 (TensorRT's INT8 weights are symmetric)"
    return None


def _feeds_only_topk(g: _Graph, tensor: str) -> bool:
    consumers = g.consumers.get(tensor, [])
    return bool(consumers) and all(node.op_type == "TopK" for node in consumers)


def _walk(g: _Graph, sources: Iterable[tuple[str, Any]]) -> tuple[list[Finding], list[str]]:
    """Follow float tensors from `sources` (tensor, the node that made it) to the next
    QuantizeLinear or compute node; returns the findings and the classifier tail's nodes."""
    findings: dict[str, Finding] = {}
    tail: dict[str, None] = {}
    # (tensor, where it started, the FC it started from if the classifier tail may follow)
    queue: deque[tuple[str, Any, bool]] = deque()
    for tensor, source in sources:
        queue.append((tensor, source, source.op_type in FC_OPS))
    seen: set[tuple[str, bool]] = set()
    in_tail: set[str] = set()
    while queue:
        tensor, source, from_fc = queue.popleft()
        if (tensor, from_fc) in seen:
            continue
        seen.add((tensor, from_fc))
        for node in g.consumers.get(tensor, []):
            name = g.name(node)
            op = node.op_type
            if op in ("QuantizeLinear", "DequantizeLinear") or op in COMPUTE_OPS:
                continue  # back in INT8, or a compute node whose inputs _check_data judges
            if tensor in in_tail:
                if op not in TAIL_OPS:
                    findings.setdefault(
                        name,
                        Finding(name, op, "float_op", "runs after the classifier's TopK"),
                    )
                    continue
                tail[name] = None
                in_tail.update(out for out in node.output if out)
                queue.extend((out, source, from_fc) for out in node.output if out)
                continue
            if from_fc and op == "TopK":
                tail[name] = None
                in_tail.update(out for out in node.output if out)
                queue.extend((out, source, from_fc) for out in node.output if out)
                continue
            others = [i for i in node.input if i and i != tensor]
            if (
                from_fc
                and op == "Add"
                and len(others) == 1
                and g.is_constant(others[0])
                and _feeds_only_topk(g, node.output[0])
            ):
                tail[name] = None  # the classifier's bias
                queue.append((node.output[0], source, from_fc))
                continue
            if op not in FUSABLE_OPS:
                findings.setdefault(
                    name,
                    Finding(
                        name,
                        op,
                        "float_op",
                        f"runs in float between {source.op_type} {g.name(source)} and the next "
                        "QuantizeLinear (TensorRT does not fuse it into the INT8 layers)",
                    ),
                )
                continue
            if op == "Add":
                floats = [i for i in node.input if i and g.dequantized(i) is None]
                if len(floats) > 1:
                    findings.setdefault(
                        name,
                        Finding(
                            name,
                            op,
                            "float_op",
                            f"adds {len(floats)} operands that are not dequantized "
                            f"({', '.join(floats)}): TensorRT fuses a residual Add only with a "
                            "DequantizeLinear operand",
                        ),
                    )
                    continue
            queue.extend((out, source, from_fc) for out in node.output if out)
    return list(findings.values()), list(tail)


def check_int8(model: Any) -> Int8Report:
    """Check a Q/DQ model (an onnx.ModelProto or a path to one) for layers TensorRT would run
    in float; see the module's docstring for the rules."""
    import onnx

    if isinstance(model, str | Path):
        model = onnx.load(str(model))
    g = _Graph(model.graph)
    findings: list[Finding] = []
    compute = [node for node in g.nodes if node.op_type in COMPUTE_OPS]
    quantized = 0
    for node in compute:
        data, weight = _check_data(g, node), _check_weight(g, node)
        if data is not None:
            findings.append(Finding(g.name(node), node.op_type, "data_input", data))
        if weight is not None:
            findings.append(Finding(g.name(node), node.op_type, "weight", weight))
        quantized += data is None and weight is None
    sources = [(out, node) for node in compute for out in node.output if out]
    sources += [
        (node.output[0], node)
        for node in g.nodes
        if node.op_type == "DequantizeLinear" and not g.is_constant(node.input[0])
    ]
    walked, tail = _walk(g, sources)
    order = {g.name(node): index for index, node in enumerate(g.nodes)}
    findings.extend(walked)
    findings.sort(key=lambda finding: order.get(finding.node, len(order)))
    return Int8Report(len(compute), quantized, tuple(findings), tuple(tail))
