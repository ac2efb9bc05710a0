"""The synthetic stand-ins: ResNet50-v1.5 shape, seeded, labelled by the FP32 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from backends.common.preprocess import load_and_preprocess
from backends.common.synthetic_model import build_resnet50
from contract.layout import read_val_map
from orchestrator.assets.model import validate_model

pytestmark = pytest.mark.heavy  # generates ResNet50-shaped models


def test_graph_has_resnet50_shape() -> None:
    model = build_resnet50(seed=3)
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    assert 25_400_000 < params < 25_700_000  # ResNet50 with a 1001-class head: ~25.5 M
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 53  # 1 stem + 16 blocks × 3 + 4 projections
    assert [i.name for i in model.graph.input] == ["input_tensor:0"]
    assert [o.name for o in model.graph.output] == ["ArgMax:0", "softmax_tensor:0"]


def test_seed_determines_weights() -> None:
    a, b, c = build_resnet50(1), build_resnet50(1), build_resnet50(2)
    first = lambda m: onnx.numpy_helper.to_array(m.graph.initializer[0])  # noqa: E731
    np.testing.assert_array_equal(first(a), first(b))
    assert not np.array_equal(first(a), first(c))


def test_labels_are_the_models_own_answers(synthetic_assets: tuple[Path, Path]) -> None:
    model_path, dataset = synthetic_assets
    entries = read_val_map(dataset)
    assert len(entries) == 64
    assert len({e.label for e in entries}) > 8  # varied labels, not one constant class
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    batch = np.stack([load_and_preprocess(dataset / e.relpath) for e in entries[:16]])
    argmax = session.run(["ArgMax:0"], {"input_tensor:0": batch})[0]
    assert [int(a) - 1 for a in argmax] == [e.label for e in entries[:16]]
    info = validate_model(model_path)
    assert not info.official
    assert info.opset == 11
