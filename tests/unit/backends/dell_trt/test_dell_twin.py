"""Model preparation end to end (rewrite → one calibration → s8s8 + u8s8 → FP32 guard →
artifact) and the CPU twin engine running its u8s8 model.

The synthetic model's random classifier decides by margins far below INT8 noise (its INT8
answers agree with FP32 on only about half of the images whatever the calibration:
benchmarks/twin_engine.py prints the figure), so these tests give its ResNet50 body a confident
classifier, as training would: class i's weights are image i's centred FP32 features
("prototype head"), so image i's FP32 label is i and INT8 must keep it. The body, the quantizer,
the guard and the engine are the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.common.preprocess import load_and_preprocess
from backends.dell_trt import guard
from backends.dell_trt.quantize import load_ranges, prepare_model
from contract.dell_trt import recipe
from contract.dell_trt.artifact import (
    ENCODINGS,
    MANIFEST,
    RANGES,
    RECIPE_FP32,
    file_sha256,
    guard_files,
    synthetic_calibration_set,
)
from contract.layout import ImageEntry, read_val_map, val_map_digest
from contract.resnet50 import INPUT_NAME, NUM_CLASSES_WITH_BACKGROUND

pytestmark = pytest.mark.heavy

_SCALE = "{}_scale"


def prototype_head_model(model_path: Path, dataset: Path, destination: Path) -> int:
    """Write the synthetic model with a prototype head; returns how many images it labels."""
    model = onnx.load(str(model_path))
    features = next(n for n in model.graph.node if n.op_type == "Flatten").output[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(features, TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = np.stack([load_and_preprocess(dataset / e.relpath) for e in read_val_map(dataset)])
    feats = np.concatenate(
        [session.run([features], {INPUT_NAME: batch[i : i + 16]})[0] for i in range(0, 64, 16)]
    )
    centre = feats.mean(axis=0)
    prototypes = feats - centre
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((feats.shape[1], NUM_CLASSES_WITH_BACKGROUND)) * 1e-3
    weights[:, 1 : 1 + len(feats)] = prototypes.T  # class i + 1 (label i) ← image i
    bias = -(centre @ weights)
    for init in model.graph.initializer:
        if init.name in ("fc/W", "fc/B"):
            value = weights if init.name == "fc/W" else bias
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    onnx.save(model, str(destination))
    return len(feats)


@pytest.fixture(scope="module")
def prepared(
    synthetic_assets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[object, Path, Path]:
    _, dataset = synthetic_assets
    root = tmp_path_factory.mktemp("dell-prepare")
    model = root / "resnet50_prototype.onnx"
    prototype_head_model(synthetic_assets[0], dataset, model)
    artifact = prepare_model(model, dataset, root / "models" / "key", **_prepare_args(dataset))
    return artifact, model, dataset


def _prepare_args(dataset: Path) -> dict[str, object]:
    return {
        "calibration": synthetic_calibration_set(dataset),
        # The prototype head answers label i for image i: those are the guard's true labels.
        "guard_images": [
            ImageEntry(entry.relpath, index) for index, entry in enumerate(read_val_map(dataset))
        ],
        "guard_tag": recipe.guard_tag(val_map_digest(dataset), 64),
    }


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _qparams(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Activation tensor → (scale, zero point) of its QuantizeLinear."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: (inits[n.input[1]], inits[n.input[2]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear"
    }


def test_artifact_folder_and_manifest(prepared: tuple) -> None:
    artifact, model, dataset = prepared
    manifest = json.loads((artifact.directory / MANIFEST).read_text())
    calibration = synthetic_calibration_set(dataset)
    assert manifest == artifact.manifest
    assert manifest["model_sha256"] == file_sha256(model)
    assert manifest["calibration"] == {
        "source": calibration.source,
        "images": 32,
        "sha256": calibration.sha256,
    }
    assert manifest["method"] == "minmax"
    assert manifest["encodings"]["s8s8"]["activation_type"] == "int8"
    assert manifest["encodings"]["s8s8"]["activation_symmetric"] is True
    assert manifest["encodings"]["u8s8"]["activation_type"] == "uint8"
    assert manifest["encodings"]["u8s8"]["activation_symmetric"] is False
    assert set(manifest["files"]) == {RECIPE_FP32, RANGES, "s8s8.onnx", "u8s8.onnx"}
    for name, digest in manifest["files"].items():
        assert file_sha256(artifact.directory / name) == digest
    # What the host reads: the guards of both models and the reference labels of their samples.
    result_file, labels_file = guard_files(artifact.directory, _prepare_args(dataset)["guard_tag"])
    recorded = json.loads(result_file.read_text())["encodings"]
    assert set(recorded) == {recipe.CPU_ENCODING, recipe.TRT_ENCODING}
    for name, record in recorded.items():
        assert record["n"] == 64
        assert record["fraction"] == artifact.guards[name].fraction >= 0.99
        assert record["gate"]["verdict"] == "pass"
    indices, reference = guard.load_reference(labels_file)
    assert indices.tolist() == list(range(64))
    assert reference.fp32.tolist() == list(range(64))  # image i → label i (the prototype head)
    assert reference.truth.tolist() == list(range(64))
    leftovers = [p.name for p in artifact.directory.iterdir() if p.name.startswith(".build")]
    assert not leftovers


def test_a_prepared_artifact_is_reused(prepared: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact, model, dataset = prepared
    from backends.dell_trt import quantize

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete artifact was rebuilt or re-guarded")

    monkeypatch.setattr(quantize, "calibrate", must_not_run)
    monkeypatch.setattr(guard, "fp32_labels", must_not_run)
    again = prepare_model(model, dataset, artifact.directory, **_prepare_args(dataset))
    assert again.manifest == artifact.manifest
    assert again.guard == artifact.guard


def test_models_made_from_other_inputs_are_rebuilt(
    prepared: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact, model, dataset = prepared
    from backends.dell_trt import quantize

    copy = tmp_path / "key"
    shutil.copytree(artifact.directory, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["model_sha256"] = "0" * 64  # made from another model
    (copy / MANIFEST).write_text(json.dumps(manifest))

    class Rebuilt(Exception):
        pass

    def build(*args: object, **kwargs: object) -> None:
        raise Rebuilt

    monkeypatch.setattr(quantize, "_build_models", build)
    with pytest.raises(Rebuilt):
        prepare_model(model, dataset, copy, **_prepare_args(dataset))
    assert not (copy / MANIFEST).exists()  # the stale models went first
    assert not (copy / "u8s8.onnx").exists()
    assert not [p for p in copy.iterdir() if p.name.startswith(".build")]


def test_both_encodings_take_int8_and_answer_int32(prepared: tuple) -> None:
    artifact = prepared[0]
    for name in ENCODINGS:
        model = onnx.load(str(artifact.model(name)))
        assert model.opset_import[0].version >= 13  # per-channel DequantizeLinear
        (graph_input,) = model.graph.input
        assert graph_input.type.tensor_type.elem_type == TensorProto.INT8
        assert graph_input.type.tensor_type.shape.dim[0].dim_param  # dynamic batch
        (output,) = model.graph.output
        assert output.type.tensor_type.elem_type == TensorProto.INT32
        consumers = [n for n in model.graph.node if graph_input.name in n.input]
        assert [n.op_type for n in consumers] == ["DequantizeLinear"]
        inits = _initializers(artifact.model(name))
        assert float(inits[consumers[0].input[1]]) == 1.0  # scale 1: the cache's own encoding
        assert inits[consumers[0].input[2]].dtype == np.int8
        assert int(inits[consumers[0].input[2]]) == 0


def test_activation_types_and_zero_points(prepared: tuple) -> None:
    artifact = prepared[0]
    s8 = _qparams(artifact.model("s8s8"))
    u8 = _qparams(artifact.model("u8s8"))
    assert len(s8) > 50
    assert len(u8) > 50
    assert all(zp.dtype == np.int8 and int(zp) == 0 for _, zp in s8.values())
    assert all(zp.dtype == np.uint8 for _, zp in u8.values())
    # Asymmetric: some activations have a range that does not start at zero.
    assert any(int(zp) not in (0, 128) for _, zp in u8.values())
    # The u8s8 input is pinned to uint8 zero point 128, scale 1 (uint8 x + 128 ≡ int8 x).
    ((scale, zp),) = [q for t, q in u8.items() if "input" in t]
    assert (float(scale), int(zp)) == (1.0, 128)


def test_weights_are_int8_symmetric_per_channel(prepared: tuple) -> None:
    artifact = prepared[0]
    for name in ENCODINGS:
        model = onnx.load(str(artifact.model(name)))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        weight_dqs = [
            n
            for n in model.graph.node
            if n.op_type == "DequantizeLinear"
            and inits.get(n.input[0]) is not None
            and inits[n.input[0]].ndim >= 2
        ]
        assert len(weight_dqs) == 54  # 53 convolutions + the FC
        for node in weight_dqs:
            weights, scale, zero = (inits[i] for i in node.input)
            assert weights.dtype == np.int8
            assert scale.ndim == 1
            assert scale.size > 1  # per output channel
            assert not zero.any()  # symmetric
        biases = [
            n
            for n in model.graph.node
            if n.op_type == "DequantizeLinear"
            and inits.get(n.input[0]) is not None
            and inits[n.input[0]].dtype == np.int32
        ]
        # TensorRT takes float biases; onnxruntime fuses int32 ones into QLinearConv.
        assert (len(biases) > 0) == (ENCODINGS[name].bias == "int32")


def test_logits_stay_float(prepared: tuple) -> None:
    artifact = prepared[0]
    for name in ENCODINGS:
        model = onnx.load(str(artifact.model(name)))
        producer = {out: n for n in model.graph.node for out in n.output}
        topk = next(n for n in model.graph.node if n.op_type == "TopK")
        assert producer[topk.input[0]].op_type == "Gemm"  # not a DequantizeLinear


def test_one_calibration_feeds_both_encodings(prepared: tuple) -> None:
    """Every activation scale of both models follows from the one saved ranges file."""
    artifact = prepared[0]
    ranges = load_ranges(artifact.directory / RANGES)
    s8 = _qparams(artifact.model("s8s8"))
    u8 = _qparams(artifact.model("u8s8"))
    checked = 0
    for tensor in sorted(set(s8) & set(u8)):
        if tensor not in ranges.data:
            continue
        low, high = (float(np.ravel(v)[0]) for v in ranges[tensor].range_value)
        s8_scale, u8_scale = float(s8[tensor][0]), float(u8[tensor][0])
        u8_low = float(-int(u8[tensor][1]) * u8_scale)
        if abs(u8_low - min(low, 0.0)) > u8_scale:
            continue  # the quantizer took this tensor's range from a neighbour (e.g. a Relu)
        # s8s8: max(|low|, |high|) over int8's symmetric 127 steps; u8s8: the range over 255.
        assert s8_scale == pytest.approx(max(abs(low), abs(high)) / 127, rel=1e-5)
        assert u8_scale == pytest.approx((max(high, 0.0) - min(low, 0.0)) / 255, rel=1e-5)
        checked += 1
    assert checked >= 10


def test_guard_passes_both_encodings_on_cpu(prepared: tuple) -> None:
    artifact, _, dataset = prepared
    # Both models, as prepare_model guarded them: the twin's u8s8 and TensorRT's s8s8.
    assert all(result.passed for result in artifact.guards.values())
    assert set(artifact.guards) == set(ENCODINGS)
    _, labels_file = guard_files(artifact.directory, _prepare_args(dataset)["guard_tag"])
    _, reference = guard.load_reference(labels_file)
    samples = guard.GuardSamples.from_dataset(dataset)
    for name in ENCODINGS:
        result = guard.check(
            guard.ort_labels_of(artifact.model(name), name), samples.int8, reference
        )
        assert result.passed, f"{name}: {result.summary()}"
        assert result.fraction >= 0.99
        assert result.n == 64


def test_a_broken_quantized_model_fails_the_guard(prepared: tuple, tmp_path: Path) -> None:
    artifact, _, dataset = prepared
    model = onnx.load(str(artifact.model("u8s8")))
    inits = {i.name: i for i in model.graph.initializer}
    weight_dqs = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0].endswith("/W_quantized")
    ]
    scale = inits[weight_dqs[len(weight_dqs) // 2].input[1]]  # one mid-network convolution
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 30, scale.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    _, labels_file = guard_files(artifact.directory, _prepare_args(dataset)["guard_tag"])
    indices, reference = guard.load_reference(labels_file)
    relpaths = [read_val_map(dataset)[i].relpath for i in indices]
    samples = guard.GuardSamples.from_relpaths(dataset, relpaths)
    result = guard.check(guard.ort_labels_of(broken, "u8s8"), samples.int8, reference)
    assert not result.passed
    assert result.fraction < 0.9
    assert result.gate.verdict == "fail"  # clearly below 99 % of FP32's accuracy
    assert len(result.disagreements) == result.n - result.gate.counts.agree
    with pytest.raises(guard.GuardFailed, match="broken u8s8"):
        guard.require(result, "broken u8s8")


@pytest.fixture(scope="module")
def int8_cache(
    synthetic_assets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from backends.common.preprocess import prepare_cache

    cache = tmp_path_factory.mktemp("int8-cache")
    prepare_cache(synthetic_assets[1], cache, 64, workers=2, fmt="int8")
    return cache


@pytest.mark.parametrize(
    ("slots", "threads", "exact"), [(1, 2, False), (2, 1, False), (1, 1, True)]
)
def test_twin_device_answers_each_samples_own_label(
    prepared: tuple, int8_cache: Path, slots: int, threads: int, exact: bool
) -> None:
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.ort_engine import OrtCpuDevice

    artifact = prepared[0]
    store = Int8Samples(int8_cache, 64, 64)
    store.load(list(range(9, 57)))  # rows ≠ QSL indices: the slot must map them
    device = OrtCpuDevice(artifact.model("u8s8"), store, slots, threads, 8, exact_int8=exact)
    try:
        assert len(device.slots) == slots
        assert device.facts["exact_int8"] is exact
        device.warm_up()
        batches = [[40, 9, 56, 12], [20, 21, 22, 23, 24, 25, 26, 27], [33], [50, 10, 30]]
        for start in range(0, len(batches), slots):
            pending = list(zip(device.slots, batches[start : start + slots], strict=False))
            for slot, indices in pending:
                slot.submit(indices)  # all slots in flight at once
            for slot, indices in pending:
                labels = slot.wait()
                assert labels.dtype == np.int32
                assert labels.tolist() == indices  # prototype head: sample i answers i
    finally:
        device.close()


def test_slot_labels_runs_every_slot_and_keeps_the_order(prepared: tuple, int8_cache: Path) -> None:
    """The engine guard's path: the harness' slots, all in flight, batches of their capacity."""
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.ort_engine import OrtCpuDevice

    store = Int8Samples(int8_cache, 64, 64)
    indices = [int(i) for i in np.random.default_rng(3).permutation(64)[:23]]
    store.load(indices)
    device = OrtCpuDevice(prepared[0].model("u8s8"), store, 2, 1, 5)
    submitted: list[tuple[int, int]] = []
    for number, slot in enumerate(device.slots):
        original = slot.submit

        def spy(batch: list[int], number: int = number, original: object = original) -> None:
            submitted.append((number, len(batch)))
            original(batch)  # type: ignore[operator]

        slot.submit = spy  # type: ignore[method-assign]
    try:
        labels = guard.slot_labels(device.slots, indices)
    finally:
        device.close()
    assert labels.dtype == np.int32
    assert labels.tolist() == indices  # prototype head: sample i answers i
    assert submitted == [(0, 5), (1, 5), (0, 5), (1, 5), (0, 3)]


def test_twin_slot_contract_errors(prepared: tuple, int8_cache: Path) -> None:
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.ort_engine import EngineFailed, OrtCpuDevice

    store = Int8Samples(int8_cache, 64, 64)
    store.load([0, 1, 2])
    device = OrtCpuDevice(prepared[0].model("u8s8"), store, 1, 1, capacity=2)
    try:
        (slot,) = device.slots
        with pytest.raises(ValueError, match="capacity"):
            slot.submit([0, 1, 2])
        with pytest.raises(KeyError, match="not loaded"):
            slot.submit([5])
        slot.submit([2, 0])
        assert slot.wait().tolist() == [2, 0]
        # A failing inference surfaces in wait(), in the harness's thread.
        slot._input_name = "no-such-input"
        slot.submit([1])
        with pytest.raises(EngineFailed):
            slot.wait()
    finally:
        device.close()


def test_twin_refuses_a_float_input_model(prepared: tuple, int8_cache: Path) -> None:
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.ort_engine import OrtCpuDevice
    from contract.dell_trt.artifact import RECIPE_FP32

    store = Int8Samples(int8_cache, 64, 64)
    with pytest.raises(ValueError, match="int8 input"):
        OrtCpuDevice(prepared[0].directory / RECIPE_FP32, store)


def test_raw_throughput_counts_every_sample(prepared: tuple, int8_cache: Path) -> None:
    from backends.common.dataset import Int8Samples
    from backends.dell_trt.ort_engine import OrtCpuDevice
    from backends.dell_trt.throughput import raw_throughput

    store = Int8Samples(int8_cache, 64, 64)
    store.load(list(range(64)))
    device = OrtCpuDevice(prepared[0].model("u8s8"), store, 2, 1, capacity=4)
    try:
        result = raw_throughput(device, store.loaded.tolist(), 4, 0.5)
    finally:
        device.close()
    assert result.samples == 4 * result.batches
    assert result.batches >= 2  # both slots ran at least once
    assert result.samples_per_s > 0


def test_matmul_add_head_quantizes_with_float_logits(
    synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    """The official model's MatMul + Add tail: the bias Add stays float, both encodings run."""
    from backends.dell_trt.graph import rewrite
    from backends.dell_trt.quantize import calibrate, calibration_batches, emit
    from tests.unit.backends.dell_trt.test_dell_graph import matmul_add_variant

    model, dataset = synthetic_assets
    recipe = tmp_path / "recipe.onnx"
    onnx.save(rewrite(matmul_add_variant(onnx.load(str(model)))), str(recipe))
    paths = synthetic_calibration_set(dataset).paths(dataset)[:4]
    ranges = calibrate(recipe, calibration_batches(paths, batch=4))
    batch = guard.GuardSamples.from_relpaths(
        dataset, [e.relpath for e in read_val_map(dataset)[:2]]
    )
    for name in ENCODINGS:
        emit(recipe, ranges, name, tmp_path / f"{name}.onnx")
        quantized = onnx.load(str(tmp_path / f"{name}.onnx"))
        producer = {out: n for n in quantized.graph.node for out in n.output}
        topk = next(n for n in quantized.graph.node if n.op_type == "TopK")
        bias_add = producer[topk.input[0]]
        assert bias_add.op_type == "Add"
        assert {producer[i].op_type for i in bias_add.input if i in producer} == {"MatMul"}
        labels = guard.ort_labels_of(tmp_path / f"{name}.onnx", name)(batch.int8)
        assert labels.dtype == np.int32
        assert labels.shape == (2,)


def test_entropy_calibration_feeds_the_same_emitter(
    synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    """NVIDIA calibrates with entropy; the histogram ranges go through the same emit path."""
    from backends.dell_trt.graph import rewrite_file
    from backends.dell_trt.quantize import calibrate, calibration_batches, emit, save_ranges

    model, dataset = synthetic_assets
    recipe = tmp_path / "recipe.onnx"
    rewrite_file(model, recipe)
    paths = synthetic_calibration_set(dataset).paths(dataset)[:4]
    ranges = calibrate(recipe, calibration_batches(paths, batch=2), "entropy")
    minmax = calibrate(recipe, calibration_batches(paths, batch=2), "minmax")
    tensor = next(name for name in ranges.data if name.startswith("relu"))
    # Entropy clips outliers: its range lies inside the min/max of the same images.
    assert float(np.ravel(ranges[tensor].range_value[1])[0]) <= float(
        np.ravel(minmax[tensor].range_value[1])[0]
    )
    save_ranges(ranges, tmp_path / "ranges.json")
    emit(recipe, load_ranges(tmp_path / "ranges.json"), "u8s8", tmp_path / "u8s8.onnx")
    batch = guard.GuardSamples.from_relpaths(dataset, [read_val_map(dataset)[0].relpath])
    assert guard.ort_labels_of(tmp_path / "u8s8.onnx", "u8s8")(batch.int8).shape == (1,)


def test_int8_input_is_exactly_the_float_models_input_quantization(
    prepared: tuple, tmp_path: Path
) -> None:
    """u8s8 with the int8 input computes bit for bit what u8s8 computes from the FP32
    preprocessing: the pinned input quantization (uint8, scale 1, zero point 128) is exactly the
    INT8 cache's rounding and clipping."""
    from backends.dell_trt.graph import classifier_tail
    from backends.dell_trt.quantize import emit

    artifact, _, dataset = prepared
    float_input = tmp_path / "u8s8_float_input.onnx"
    emit(artifact.recipe_fp32, load_ranges(artifact.directory / RANGES), "u8s8", float_input, False)
    logits = classifier_tail(onnx.load(str(artifact.recipe_fp32))).logits

    def logits_of(path: Path, batch: np.ndarray) -> np.ndarray:
        model = onnx.load(str(path))
        model.graph.output.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT, None))
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run([logits], {INPUT_NAME: batch})[0]

    samples = guard.GuardSamples.from_dataset(dataset, 16)
    from_float = logits_of(float_input, samples.fp32)
    from_int8 = logits_of(artifact.model("u8s8"), samples.int8)
    assert from_float.shape == (16, 1000)
    np.testing.assert_array_equal(from_int8, from_float)
