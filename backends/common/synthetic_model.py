"""A ResNet50-v1.5-shaped ONNX graph with seeded random weights.

Same layers, shapes, FLOPs and tensor names as the MLPerf `resnet50_v1.onnx` (input
`input_tensor:0` NCHW float32, outputs `ArgMax:0` and `softmax_tensor:0` over 1001 classes), with
batch-norm folded into conv biases. Random weights cannot classify anything; the synthetic dataset
labels its images with this model's own answers, so the accuracy path is a plumbing check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.resnet50 import (
    ARGMAX_OUTPUT,
    INPUT_NAME,
    NUM_CLASSES_WITH_BACKGROUND,
    SOFTMAX_OUTPUT,
)

FEATURES_NAME = "mlorch_features"
OPSET = 11
# (bottleneck width, blocks, stride of the stage's first block) — ResNet50 v1.5 puts the stride
# on the 3x3 convolution.
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
# Scale of the last conv in each residual branch: keeps activations bounded without batch-norm.
RESIDUAL_SCALE = 0.2


@dataclass
class _GraphBuilder:
    rng: np.random.Generator
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    counter: int = 0

    def _name(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}_{self.counter}"

    def _const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int, scale: float = 1.0) -> str:
        from onnx import helper

        name = self._name("conv")
        std = scale * np.sqrt(2.0 / (c_in * k * k))
        w = self._const(f"{name}/W", self.rng.standard_normal((c_out, c_in, k, k)) * std)
        b = self._const(f"{name}/B", self.rng.standard_normal(c_out) * 0.01)
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [name],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        name = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [name], **attrs))
        return name

    def bottleneck(self, x: str, c_in: int, width: int, stride: int) -> str:
        out = width * 4
        y = self.op("Relu", [self.conv(x, c_in, width, 1, 1)])
        y = self.op("Relu", [self.conv(y, width, width, 3, stride)])
        y = self.conv(y, width, out, 1, 1, scale=RESIDUAL_SCALE)
        shortcut = x if (stride == 1 and c_in == out) else self.conv(x, c_in, out, 1, stride)
        return self.op("Relu", [self.op("Add", [y, shortcut])])


def build_resnet50(
    seed: int,
    fc_bias: np.ndarray | None = None,
    with_features: bool = False,
    fc_weight: np.ndarray | None = None,
) -> Any:
    """Build the ONNX ModelProto (weights drawn from `seed`; the classifier's may be given)."""
    import onnx
    from onnx import TensorProto, helper

    g = _GraphBuilder(np.random.default_rng(seed))
    x = g.op("Relu", [g.conv(INPUT_NAME, 3, 64, 7, 2)])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for width, blocks, stride in STAGES:
        for block in range(blocks):
            x = g.bottleneck(x, c_in, width, stride if block == 0 else 1)
            c_in = width * 4
    pooled = g.op("GlobalAveragePool", [x])
    features = g.op("Flatten", [pooled], axis=1)
    fc_w = g.rng.standard_normal((c_in, NUM_CLASSES_WITH_BACKGROUND)) * np.sqrt(1.0 / c_in)
    w = g._const("fc/W", fc_w if fc_weight is None else fc_weight)
    b = g._const("fc/B", fc_bias if fc_bias is not None else np.zeros(NUM_CLASSES_WITH_BACKGROUND))
    logits = g.op("Gemm", [features, w, b])
    g.nodes.append(helper.make_node("Softmax", [logits], [SOFTMAX_OUTPUT], axis=1))
    g.nodes.append(helper.make_node("ArgMax", [logits], [ARGMAX_OUTPUT], axis=1, keepdims=0))
    if with_features:
        g.nodes.append(helper.make_node("Identity", [features], [FEATURES_NAME]))

    outputs = [
        helper.make_tensor_value_info(ARGMAX_OUTPUT, TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info(
            SOFTMAX_OUTPUT, TensorProto.FLOAT, ["N", NUM_CLASSES_WITH_BACKGROUND]
        ),
    ]
    if with_features:
        outputs.append(helper.make_tensor_value_info(FEATURES_NAME, TensorProto.FLOAT, ["N", c_in]))
    graph = helper.make_graph(
        g.nodes,
        "resnet50_v1.5_synthetic",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, 224, 224])],
        outputs,
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    model.producer_name = "mlorch-synthetic"
    model.doc_string = f"ResNet50 v1.5 shape, seeded random weights (seed={seed}); not a classifier"
    onnx.checker.check_model(model)
    return model
