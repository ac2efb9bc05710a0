"""NVIDIA's graph changes to the FP32 reference model, before quantization.

The reference `resnet50_v1.onnx` ends in a fully connected layer over 1001 classes (index 0 is
the background class) feeding `softmax_tensor:0` and `ArgMax:0`; the harness subtracts 1. The
Dell/NVIDIA engine instead slices the background class off the FC weights, drops the softmax and
the argmax, and ends in TopK(k=1), so it answers the label 0–999 itself, as int32. The FC bias is
kept (the synthetic model's bias carries its labels; NVIDIA drops it because the real one's is
~0). The FC stays an FC (NVIDIA also turns it into a 1x1 convolution, a TensorRT-era fusion
detail with no effect on the answers). The result is converted to opset 17 (per-channel Q/DQ needs
13 or later) with the batch dimension left dynamic.

Importable without numpy/onnx (the host reads `REWRITE_VERSION` for cache keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.resnet50 import (
    ARGMAX_OUTPUT,
    INPUT_NAME,
    NUM_CLASSES,
    NUM_CLASSES_WITH_BACKGROUND,
    SOFTMAX_OUTPUT,
)

# Bump whenever `rewrite` produces a different graph: it is part of the prepared-model cache key.
REWRITE_VERSION = 1
TARGET_OPSET = 17
CLASS_OUTPUT = "topk_class"  # int32 (N,), label 0–999
_PREFIX = "mlorch_nv/"  # names of the nodes and tensors the rewrite adds


class GraphRewriteError(ValueError):
    """The model does not end in the classifier tail the rewrite knows how to change."""


@dataclass(frozen=True)
class ClassifierTail:
    """Where the rewritten model's classifier lives (node names), for the quantizer."""

    fc_node: str  # the Gemm or MatMul
    fc_op: str
    bias_node: str | None  # the separate bias Add after a MatMul (None for Gemm)
    logits: str  # the 1000-class float logits TopK reads
    output_nodes: tuple[str, ...]  # TopK → Cast → Reshape


def _default_opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise GraphRewriteError("model imports no default ONNX opset")


def _name_nodes(graph: Any) -> None:
    """Give every unnamed node a stable unique name: the quantizer selects nodes by name."""
    taken = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def onnx_attribute(node: Any, name: str, default: Any) -> Any:
    """The value of a node's attribute `name`, or `default`."""
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


class _Graph:
    """Producer/initializer lookups over a graph being edited."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.initializer = {init.name: init for init in graph.initializer}

    def constant(self, tensor: str) -> Any | None:
        """The numpy value of `tensor` if it is an initializer, a Constant or an Identity of one."""
        from onnx import numpy_helper

        while True:
            if tensor in self.initializer:
                return numpy_helper.to_array(self.initializer[tensor])
            node = self.producer.get(tensor)
            if node is None:
                return None
            if node.op_type == "Identity":
                tensor = node.input[0]
                continue
            if node.op_type == "Constant" and onnx_attribute(node, "value", None) is not None:
                return numpy_helper.to_array(onnx_attribute(node, "value", None))
            return None

    def replace_input(self, node: Any, position: int, array: Any, name: str) -> None:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(array, name))
        self.initializer[name] = self.graph.initializer[-1]
        node.input[position] = name


def _drop_background(values: Any, axis: int, what: str) -> Any:
    import numpy as np

    if values.shape[axis] != NUM_CLASSES_WITH_BACKGROUND:
        raise GraphRewriteError(
            f"{what} has {values.shape[axis]} classes on axis {axis}, "
            f"expected {NUM_CLASSES_WITH_BACKGROUND} (background + {NUM_CLASSES})"
        )
    return np.ascontiguousarray(np.take(values, np.arange(1, values.shape[axis]), axis=axis))


def _slice_bias(g: _Graph, node: Any, position: int, what: str) -> None:
    bias = g.constant(node.input[position])
    if bias is None:
        raise GraphRewriteError(f"{what} of {node.name} is not a constant")
    if bias.size == 1:  # a broadcast scalar applies to every class alike
        return
    sliced = _drop_background(bias, bias.ndim - 1, what)
    g.replace_input(node, position, sliced, f"{_PREFIX}{node.input[position]}")


def _find_tail(g: _Graph) -> tuple[Any, Any, Any | None]:
    """(ArgMax node, FC node, bias Add node or None) of the reference model's classifier."""
    argmax = g.producer.get(ARGMAX_OUTPUT)
    if argmax is None or argmax.op_type != "ArgMax":
        raise GraphRewriteError(f"no ArgMax node produces {ARGMAX_OUTPUT}")
    if int(onnx_attribute(argmax, "axis", 0)) != 1:
        raise GraphRewriteError(f"{ARGMAX_OUTPUT} is not an ArgMax over axis 1")
    node = g.producer.get(argmax.input[0])
    bias_add = None
    if node is not None and node.op_type == "Add":
        constants = [i for i, name in enumerate(node.input) if g.constant(name) is not None]
        if len(constants) != 1:
            raise GraphRewriteError(f"bias Add {node.name} must have exactly one constant input")
        bias_add = node
        node = g.producer.get(node.input[1 - constants[0]])
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        found = node.op_type if node is not None else "a graph input"
        raise GraphRewriteError(f"the logits come from {found}, expected Gemm or MatMul (+ Add)")
    return argmax, node, bias_add


def _prune(graph: Any) -> None:
    """Drop nodes no graph output depends on, then initializers and value infos no node reads."""
    needed = {output.name for output in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(node.input)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    live = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(live)
    # Shapes of edited tensors changed; shape inference recomputes them all.
    del graph.value_info[:]


def _trim_background(g: _Graph) -> str:
    """Drop the background class (1001 → 1000) from the classifier's weights and biases; the
    name of the logits the new tail reads."""
    argmax, fc, bias_add = _find_tail(g)
    weights = g.constant(fc.input[1])
    if weights is None or weights.ndim != 2:
        raise GraphRewriteError(f"the weights of {fc.name} are not a constant matrix")
    if fc.op_type == "Gemm":
        if int(onnx_attribute(fc, "transA", 0)) != 0:
            raise GraphRewriteError(f"Gemm {fc.name} with transA=1 is not supported")
        class_axis = 0 if int(onnx_attribute(fc, "transB", 0)) else 1
    else:
        class_axis = 1
    g.replace_input(
        fc, 1, _drop_background(weights, class_axis, "FC weights"), f"{_PREFIX}{fc.input[1]}"
    )
    if fc.op_type == "Gemm" and len(fc.input) > 2 and fc.input[2]:
        _slice_bias(g, fc, 2, "Gemm bias")
    if bias_add is not None:
        position = next(i for i, name in enumerate(bias_add.input) if g.constant(name) is not None)
        _slice_bias(g, bias_add, position, "FC bias")
    return str(argmax.input[0])


def _top1_tail(graph: Any, logits: str) -> None:
    """Softmax and ArgMax go; TopK(k=1) → int32 → (N,) takes their place."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    k = f"{_PREFIX}k"
    flat = f"{_PREFIX}flat_shape"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1], np.int64), k),
            numpy_helper.from_array(np.array([-1], np.int64), flat),
        ]
    )
    names = (f"{_PREFIX}topk", f"{_PREFIX}cast", f"{_PREFIX}flatten_class")
    graph.node.extend(
        [
            helper.make_node(
                "TopK",
                [logits, k],
                [f"{_PREFIX}top1_logit", f"{_PREFIX}top1_index"],
                name=names[0],
                axis=1,
                largest=1,
                sorted=1,
            ),
            helper.make_node(
                "Cast",
                [f"{_PREFIX}top1_index"],
                [f"{_PREFIX}top1_int32"],
                name=names[1],
                to=TensorProto.INT32,
            ),
            helper.make_node(
                "Reshape", [f"{_PREFIX}top1_int32", flat], [CLASS_OUTPUT], name=names[2]
            ),
        ]
    )


def rewrite(source: Any) -> Any:
    """Return NVIDIA's version of the reference model `source` (an onnx.ModelProto)."""
    import onnx
    from onnx import TensorProto, helper, version_converter

    model = onnx.ModelProto()
    model.CopyFrom(source)
    if _default_opset(model) < 11:  # TopK with K as an input
        model = version_converter.convert_version(model, 11)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializer_names]
    if [value.name for value in inputs] != [INPUT_NAME]:
        raise GraphRewriteError(f"expected one graph input {INPUT_NAME}, got {inputs}")
    del graph.input[:]
    graph.input.extend(inputs)
    _name_nodes(graph)
    g = _Graph(graph)

    logits = _trim_background(g)
    _top1_tail(graph, logits)
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    batch: str | int = batch_dim.dim_param or (batch_dim.dim_value if batch_dim.dim_value else "N")
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(CLASS_OUTPUT, TensorProto.INT32, [batch]))
    _prune(graph)
    if SOFTMAX_OUTPUT in {out for node in graph.node for out in node.output}:
        raise GraphRewriteError(f"{SOFTMAX_OUTPUT} is still computed after the rewrite")

    if _default_opset(model) != TARGET_OPSET:
        model = version_converter.convert_version(model, TARGET_OPSET)
    model.ir_version = max(model.ir_version, 8)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def classifier_tail(model: Any) -> ClassifierTail:
    """Locate the classifier of a rewritten model (its FC, bias and TopK nodes, by name)."""
    g = _Graph(model.graph)
    reshape = g.producer.get(CLASS_OUTPUT)
    cast = g.producer.get(reshape.input[0]) if reshape is not None else None
    topk = g.producer.get(cast.input[0]) if cast is not None else None
    if reshape is None or cast is None or topk is None or topk.op_type != "TopK":
        raise GraphRewriteError(f"{CLASS_OUTPUT} is not produced by TopK → Cast → Reshape")
    logits = topk.input[0]
    node = g.producer.get(logits)
    bias_add = None
    if node is not None and node.op_type == "Add":
        bias_add = node
        node = next(
            (g.producer[name] for name in node.input if name in g.producer),
            None,
        )
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise GraphRewriteError("the rewritten logits do not come from Gemm or MatMul")
    return ClassifierTail(
        fc_node=node.name,
        fc_op=node.op_type,
        bias_node=bias_add.name if bias_add is not None else None,
        logits=logits,
        output_nodes=(topk.name, cast.name, reshape.name),
    )


def rewrite_file(source: Path, destination: Path) -> None:
    """Rewrite the model file `source` into `destination`."""
    import onnx

    from contract.locks import atomic_write_bytes

    atomic_write_bytes(destination, rewrite(onnx.load(str(source))).SerializeToString())
