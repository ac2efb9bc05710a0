"""NVIDIA's graph changes: TopK over 1000 classes answers exactly ArgMax − 1 of the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from backends.common.preprocess import load_and_preprocess
from backends.dell_trt.graph import (
    CLASS_OUTPUT,
    TARGET_OPSET,
    GraphRewriteError,
    classifier_tail,
    rewrite,
)
from contract.layout import read_val_map
from contract.resnet50 import ARGMAX_OUTPUT, INPUT_NAME, SOFTMAX_OUTPUT

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def images(synthetic_assets: tuple[Path, Path]) -> np.ndarray:
    _, dataset = synthetic_assets
    return np.stack([load_and_preprocess(dataset / e.relpath) for e in read_val_map(dataset)])


def _run(model: onnx.ModelProto, output: str, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            session.run([output], {INPUT_NAME: batch[i : i + 16]})[0]
            for i in range(0, len(batch), 16)
        ]
    )


def matmul_add_variant(model: onnx.ModelProto) -> onnx.ModelProto:
    """The official resnet50_v1.onnx's tail shape: MatMul + a separate bias Add."""
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    graph = variant.graph
    position, gemm = next((i, n) for i, n in enumerate(graph.node) if n.op_type == "Gemm")
    features, weights, bias = gemm.input
    logits = gemm.output[0]
    graph.node.remove(gemm)
    graph.node.insert(position, helper.make_node("MatMul", [features, weights], ["fc_matmul"]))
    graph.node.insert(position + 1, helper.make_node("Add", ["fc_matmul", bias], [logits]))
    onnx.checker.check_model(variant)
    return variant


def _check_equivalent(original: onnx.ModelProto, images: np.ndarray) -> onnx.ModelProto:
    rewritten = rewrite(original)
    expected = _run(original, ARGMAX_OUTPUT, images).astype(np.int64) - 1
    got = _run(rewritten, CLASS_OUTPUT, images)
    assert got.dtype == np.int32
    assert got.shape == (len(images),)
    np.testing.assert_array_equal(got, expected)
    assert len(set(got.tolist())) > 8  # the comparison spans many classes, not one
    return rewritten


def test_gemm_model_answers_argmax_minus_one(
    synthetic_assets: tuple[Path, Path], images: np.ndarray
) -> None:
    original = onnx.load(str(synthetic_assets[0]))
    rewritten = _check_equivalent(original, images)
    assert rewritten.opset_import[0].version == TARGET_OPSET
    assert [o.name for o in rewritten.graph.output] == [CLASS_OUTPUT]
    outputs = {out for node in rewritten.graph.node for out in node.output}
    assert ARGMAX_OUTPUT not in outputs
    assert SOFTMAX_OUTPUT not in outputs
    assert not any(n.op_type in ("Softmax", "ArgMax") for n in rewritten.graph.node)
    # Dynamic batch on both ends.
    assert rewritten.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert rewritten.graph.output[0].type.tensor_type.shape.dim[0].dim_param
    tail = classifier_tail(rewritten)
    assert tail.fc_op == "Gemm"
    weights = {i.name: i for i in rewritten.graph.initializer}
    gemm = next(n for n in rewritten.graph.node if n.name == tail.fc_node)
    assert list(weights[gemm.input[1]].dims) == [2048, 1000]
    assert list(weights[gemm.input[2]].dims) == [1000]  # the FC bias is kept, sliced


def test_matmul_add_model_answers_argmax_minus_one(
    synthetic_assets: tuple[Path, Path], images: np.ndarray
) -> None:
    variant = matmul_add_variant(onnx.load(str(synthetic_assets[0])))
    rewritten = _check_equivalent(variant, images)
    tail = classifier_tail(rewritten)
    assert tail.fc_op == "MatMul"
    assert tail.bias_node is not None


def test_single_image_batches_work(synthetic_assets: tuple[Path, Path], images: np.ndarray) -> None:
    rewritten = rewrite(onnx.load(str(synthetic_assets[0])))
    original = onnx.load(str(synthetic_assets[0]))
    assert _run(rewritten, CLASS_OUTPUT, images[:1]).tolist() == [
        int(_run(original, ARGMAX_OUTPUT, images[:1])[0]) - 1
    ]


def test_refuses_a_model_without_the_reference_tail(synthetic_assets: tuple[Path, Path]) -> None:
    model = onnx.load(str(synthetic_assets[0]))
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    argmax.output[0] = "renamed"
    with pytest.raises(GraphRewriteError, match="no ArgMax"):
        rewrite(model)


def test_refuses_a_head_without_a_background_class(synthetic_assets: tuple[Path, Path]) -> None:
    model = onnx.load(str(synthetic_assets[0]))
    for init in model.graph.initializer:
        if init.name == "fc/W":
            array = onnx.numpy_helper.to_array(init)[:, :1000]
            init.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(array), "fc/W"))
    with pytest.raises(GraphRewriteError, match="1001"):
        rewrite(model)
