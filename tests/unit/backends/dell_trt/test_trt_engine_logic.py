"""trt_engine.py without TensorRT: the per-layer precision summary of the engine inspector's JSON
(on a golden report in TensorRT's format), the one logger per process, and the timing cache a
build starts from and saves, all against a small stand-in `tensorrt` module. (That every TensorRT
name used exists in the real bindings: tests/unit/backends/dell_trt/test_tensorrt_api.py.)"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from backends.dell_trt import trt_engine
from backends.dell_trt.engine_cache import DEFAULT_BUILDER, TimingCache, TimingCacheKey
from backends.dell_trt.trt_engine import (
    TrtError,
    build_serialized_engine,
    layer_precisions,
    make_logger,
    summarize_layers,
    tensor_datatype,
)

# --- per-layer precision --------------------------------------------------------------------------


def test_the_golden_engine_report_summarized(golden: Path) -> None:
    """A ResNet50-shaped excerpt of a detailed engine report: INT8 convolutions (one with a
    fused residual), pooling, an INT8 fully connected layer with a float output, top-k, and one
    convolution TensorRT ran in FP16."""
    summary = summarize_layers((golden / "trt" / "engine_layers.json").read_text())
    assert summary == {
        "layers": 9,
        "by_precision": {"FP16": 1, "FP32": 1, "Int8": 7},
        "compute_layers": 5,
        "non_int8_compute": ["res5c_branch2b + res5c_branch2b_relu"],
    }
    json.dumps(summary)  # facts for harness.json


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Row major linear FP32", "FP32"),
        ("Row major linear Int8 format", "Int8"),
        ("Thirty-two wide channel vectorized row major Int8 format", "Int8"),
        ("Channel major FP16 format where channel % 8 == 0", "FP16"),
        ("Row major linear Int32", "Int32"),
        ("Row major linear BF16 format", "BF16"),
        ("Float", "FP32"),  # a weights' "Type"
        ("Half", "FP16"),
        ("Row major linear UInt8 format", "UInt8"),
        ("Some future layout", "unknown"),
        (None, "unknown"),
    ],
)
def test_tensor_datatypes(description: object, expected: str) -> None:
    assert tensor_datatype(description) == expected


def _layer(name: str, kind: str, reads: str, weights: str | None = None) -> dict[str, Any]:
    layer: dict[str, Any] = {
        "Name": name,
        "LayerType": kind,
        "Inputs": [{"Name": "x", "Format/Datatype": f"Row major linear {reads}"}],
        "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}],
    }
    if weights is not None:
        layer["Weights"] = {"Type": weights, "Count": 16}
    return layer


def test_what_counts_as_int8_compute() -> None:
    layers = [
        _layer("int8 conv, float output", "CaskConvolution", "Int8", "Int8"),
        _layer("fp16 weights", "CaskConvolution", "Int8", "Half"),
        _layer("float gemm", "CaskGemmMatrixMultiply", "FP32"),
        _layer("int8 matmul, no weights listed", "MatrixMultiply", "Int8"),
        _layer("a float activation", "PointWiseV2", "FP32"),
        {"Name": "no tensors", "LayerType": "Convolution"},
    ]
    summary = summarize_layers(json.dumps({"Layers": layers}))
    assert summary["compute_layers"] == 5
    assert summary["non_int8_compute"] == ["fp16 weights", "float gemm", "no tensors"]
    assert summary["by_precision"] == {"FP32": 2, "Int8": 3, "unknown": 1}


def test_names_only_and_malformed_reports() -> None:
    names_only = summarize_layers(json.dumps({"Layers": ["conv1", "pool1"], "Bindings": []}))
    assert names_only == {
        "layers": 2,
        "by_precision": {"unknown": 2},
        "compute_layers": 0,
        "non_int8_compute": [],
    }
    with pytest.raises(ValueError, match="not JSON"):
        summarize_layers("{")
    with pytest.raises(ValueError, match="Layers"):
        summarize_layers(json.dumps({"Bindings": ["input"]}))
    with pytest.raises(ValueError, match="Layers"):
        summarize_layers(json.dumps([1, 2]))


# --- a stand-in tensorrt module -------------------------------------------------------------------


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data

    def combine(self, other: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.data += b"&" + other.data
        return True


class FakeConfig:
    def __init__(self, refuse: bytes) -> None:
        self.refuse = refuse  # stored bytes TensorRT does not accept
        self.timing: FakeTimingCache | None = None
        self.profiling_verbosity: object = None
        self.builder_optimization_level = 0

    def set_memory_pool_limit(self, pool: object, size: int) -> None:
        pass

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        return None if data == self.refuse else FakeTimingCache(data)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False
        self.timing = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.timing

    def add_optimization_profile(self, profile: object) -> int:
        return 0


class FakeTensor:
    def __init__(self, name: str, dtype: str, shape: tuple[int, ...]) -> None:
        self.name, self.dtype, self.shape = name, dtype, shape


class FakeNetwork:
    num_inputs = num_outputs = 1

    def get_input(self, index: int) -> FakeTensor:
        return FakeTensor("input", "INT8", (-1, 3, 224, 224))

    def get_output(self, index: int) -> FakeTensor:
        return FakeTensor("labels", "INT32", (-1, 1))


class FakeProfile:
    def set_shape(self, *args: object) -> None:
        pass


def fake_tensorrt(events: list[str], refuse: bytes = b"refused") -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.16.0.72"  # type: ignore[attr-defined]

    class Logger:
        INFO, WARNING = "INFO", "WARNING"
        made = 0

        def __init__(self, severity: str) -> None:
            Logger.made += 1
            self.min_severity = severity

        def log(self, severity: str, message: str) -> None:
            events.append(f"log {severity}: {message}")

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> FakeNetwork:
            return FakeNetwork()

        def create_builder_config(self) -> FakeConfig:
            return FakeConfig(refuse)

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes:
            assert config.timing is not None, "the builder always has a timing cache to grow"
            events.append(f"build from {config.timing.data!r}")
            config.timing.data += b"+measured"
            return b"plan"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: FakeNetwork, logger: Logger) -> None:
            pass

        def parse(self, model: bytes) -> bool:
            return True

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)  # type: ignore[attr-defined]
    trt.DataType = types.SimpleNamespace(INT8="INT8", INT32="INT32")  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")  # type: ignore[attr-defined]
    trt.ProfilingVerbosity = types.SimpleNamespace(  # type: ignore[attr-defined]
        NONE="NONE", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY", DETAILED="DETAILED"
    )
    trt.LayerInformationFormat = types.SimpleNamespace(ONELINE="ONELINE", JSON="JSON")  # type: ignore[attr-defined]
    return trt


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A stand-in `tensorrt` for this test, and a process without a TensorRT logger yet."""
    recorded: list[str] = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(recorded))
    monkeypatch.setattr(trt_engine, "_shared_logger", [])
    return recorded


# --- one logger per process -----------------------------------------------------------------------


def test_one_logger_per_process(events: list[str]) -> None:
    trt: Any = sys.modules["tensorrt"]
    first = make_logger()
    assert first.min_severity == "WARNING"  # type: ignore[attr-defined]
    again = make_logger(verbose=True)
    assert again is first
    assert first.min_severity == "INFO"  # type: ignore[attr-defined]
    assert make_logger() is first
    assert first.min_severity == "WARNING"  # type: ignore[attr-defined]
    assert trt.Logger.made == 1


def test_one_logger_across_threads(events: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        loggers = list(pool.map(lambda _: make_logger(), range(32)))
    assert len({id(logger) for logger in loggers}) == 1
    assert sys.modules["tensorrt"].Logger.made == 1  # type: ignore[attr-defined]


# --- the timing cache of a build ------------------------------------------------------------------

KEY = TimingCacheKey("NVIDIA H100 80GB HBM3", "9.0", "10.16.0.72")


def test_a_build_starts_from_the_stored_timings_and_saves_them_grown(
    events: list[str], tmp_path: Path
) -> None:
    timing = TimingCache(tmp_path, KEY)
    assert build_serialized_engine(b"onnx", 8, 2, DEFAULT_BUILDER, timing_cache=timing) == b"plan"
    assert timing.load() == b"+measured"
    build_serialized_engine(b"onnx", 16, 1, DEFAULT_BUILDER, timing_cache=timing)
    assert events == ["build from b''", "build from b'+measured'"]
    # TensorRT's combine merged in what was stored (here: the cache this build started from)
    assert timing.load() == b"+measured+measured&+measured"


def test_a_refused_timing_cache_starts_empty_and_is_replaced(
    events: list[str], tmp_path: Path
) -> None:
    timing = TimingCache(tmp_path, KEY)
    timing.save(b"refused")  # e.g. written by a TensorRT that no longer reads it
    build_serialized_engine(b"onnx", 8, 1, timing_cache=timing)
    assert events[0].startswith("log WARNING: mlorch: the stored timing cache was refused")
    assert events[1] == "build from b''"
    assert timing.load() == b"+measured"  # TensorRT cannot read them to merge: replaced


def test_a_build_without_a_timing_cache_stores_none(events: list[str], tmp_path: Path) -> None:
    assert build_serialized_engine(b"onnx", 8, 1) == b"plan"
    assert events == ["build from b''"]
    assert list(tmp_path.iterdir()) == []


def test_an_unsaved_timing_cache_does_not_fail_the_build(
    events: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timing = TimingCache(tmp_path, KEY)

    def disk_full(*_args: object, **_kwargs: object) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(timing, "save", disk_full)
    assert build_serialized_engine(b"onnx", 8, 1, timing_cache=timing) == b"plan"
    assert events[-1].startswith("log WARNING: mlorch: the timing cache was not saved")


# --- layer_precisions on an engine ----------------------------------------------------------------


class FakeInspector:
    def __init__(self, report: str) -> None:
        self.report = report

    def get_engine_information(self, format: str) -> str:
        assert format == "JSON"
        if not self.report:
            raise RuntimeError("inspector failed")
        return self.report


class FakeEngine:
    def __init__(self, verbosity: str, report: str = "") -> None:
        self.profiling_verbosity = verbosity
        self.report = report

    def create_engine_inspector(self) -> FakeInspector:
        return FakeInspector(self.report)


def test_layer_precisions_of_an_engine(events: list[str], golden: Path) -> None:
    report = (golden / "trt" / "engine_layers.json").read_text()
    detailed: Any = FakeEngine("DETAILED", report)
    assert layer_precisions(detailed) == summarize_layers(report)
    names_only: Any = FakeEngine("LAYER_NAMES_ONLY", report)
    assert "detailed profiling verbosity" in layer_precisions(names_only)["unavailable"]
    failing: Any = FakeEngine("DETAILED")
    assert "inspector failed" in layer_precisions(failing)["unavailable"]
    garbled: Any = FakeEngine("DETAILED", "{")
    assert "not JSON" in layer_precisions(garbled)["unavailable"]


def test_trt_error_is_a_runtime_error() -> None:
    assert issubclass(TrtError, RuntimeError)
