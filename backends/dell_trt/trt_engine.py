"""TensorRT: build the INT8 ResNet50 engine from the S8S8 Q/DQ ONNX, and run it (`TrtRunner`).

Everything TensorRT-specific lives here. The engine is built as a strongly typed network: the
ONNX carries explicit QuantizeLinear/DequantizeLinear pairs (one calibration, done offline), so
the precision of every layer follows from the graph and no precision flag is set. That is the only
INT8 route TensorRT 11 still has (BuilderFlag.INT8/FP16, calibrators and weak typing are gone) and
it builds identically on TensorRT 10.x. The network takes the INT8 NCHW input (150 528 bytes a
sample) and returns the top-1 class (0–999) as one int32 a sample.

One optimization profile per copy stream (each execution context needs its own), each covering
batches 1..batch_size with the kernels tuned for batch_size. A build starts from the timing cache
of its GPU and TensorRT (engine_cache.TimingCache) and saves it back, grown, once the build
succeeded. The engine is built with detailed profiling verbosity, so that the engine inspector
can say which precision each layer runs in (`layer_precisions`, recorded in the device facts).

TensorRT wants one logger per process: `make_logger` returns the same one every time.

TensorRT objects carry their types as annotations (`builder: trt.Builder`, ...): the API
conformance test (tests/unit/backends/dell_trt/test_tensorrt_api.py) reads them to check every
method and property used here against the real bindings of the pinned TensorRT 10.x and of
TensorRT 11.x.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.dell_trt.engine_cache import (
    DEFAULT_BUILDER,
    BuilderOptions,
    CachedEngine,
    EngineCache,
    EngineKey,
    TimingCache,
    TimingCacheKey,
)
from contract.digest import file_sha256
from contract.resnet50 import SAMPLE_SHAPE

if TYPE_CHECKING:
    import tensorrt as trt

    from backends.dell_trt.cuda_rt import DeviceInfo
    from backends.dell_trt.gpu_device import GpuDevice, GpuDeviceConfig, SampleStore


class TrtError(RuntimeError):
    """TensorRT refused to parse, build, load or run the engine."""


def tensorrt_version() -> str:
    import tensorrt as trt

    return str(trt.__version__)


# The process's one TensorRT logger (TensorRT registers the first logger it is given and warns
# about any other), made on first use.
_shared_logger: list[trt.Logger] = []
_logger_lock = threading.Lock()


def make_logger(verbose: bool = False) -> trt.ILogger:
    """The process's TensorRT logger, at INFO (`verbose`) or WARNING from now on."""
    import tensorrt as trt

    severity = trt.Logger.INFO if verbose else trt.Logger.WARNING
    with _logger_lock:
        if not _shared_logger:
            _shared_logger.append(trt.Logger(severity))
        logger: trt.Logger = _shared_logger[0]
        logger.min_severity = severity
    return logger


def _dims(shape: object) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NetworkIO:
    input_name: str
    output_name: str


def _parser_errors(parser: trt.OnnxParser) -> list[str]:
    errors = []
    for index in range(parser.num_errors):
        error: trt.ParserError = parser.get_error(index)
        where = error.node_name() or f"node {error.node()}"
        errors.append(f"{where} ({error.node_operator()}): {error.desc()} [{error.code()}]")
    return errors


def _check_network(network: trt.INetworkDefinition) -> NetworkIO:
    """One dynamic-batch INT8 NCHW input and one int32 label a sample, or TrtError."""
    import tensorrt as trt

    if network.num_inputs != 1 or network.num_outputs != 1:
        raise TrtError(
            f"expected 1 input and 1 output, the ONNX has {network.num_inputs} and "
            f"{network.num_outputs}"
        )
    source: trt.ITensor = network.get_input(0)
    result: trt.ITensor = network.get_output(0)
    shape = _dims(source.shape)
    if source.dtype != trt.DataType.INT8 or shape[1:] != SAMPLE_SHAPE or shape[0] != -1:
        raise TrtError(
            f"input {source.name!r} is {source.dtype} {shape}; expected INT8 (-1, 3, 224, 224) "
            "(the S8S8 Q/DQ model with a dynamic batch)"
        )
    out_shape = _dims(result.shape)
    if result.dtype != trt.DataType.INT32 or any(d != 1 for d in out_shape[1:]):
        raise TrtError(
            f"output {result.name!r} is {result.dtype} {out_shape}; expected one INT32 label a "
            "sample"
        )
    return NetworkIO(source.name, result.name)


def _use_timing_cache(
    config: trt.IBuilderConfig, logger: trt.ILogger, stored: bytes | None
) -> trt.ITimingCache:
    """Give the builder the stored timings when TensorRT accepts them (same GPU and TensorRT:
    `ignore_mismatch=False`), else an empty cache that the build fills."""
    import tensorrt as trt

    if stored:
        try:
            loaded: trt.ITimingCache | None = config.create_timing_cache(stored)
            if loaded is not None and config.set_timing_cache(loaded, ignore_mismatch=False):
                return loaded
        except (RuntimeError, TypeError, ValueError):
            pass
        logger.log(
            trt.Logger.WARNING, "mlorch: the stored timing cache was refused; starting empty"
        )
    empty: trt.ITimingCache = config.create_timing_cache(b"")
    if not config.set_timing_cache(empty, ignore_mismatch=False):
        raise TrtError("TensorRT refused an empty timing cache")
    return empty


def _serialized(cache: trt.ITimingCache) -> bytes:
    memory: trt.IHostMemory = cache.serialize()
    return bytes(memoryview(memory))


def _save_timing_cache(
    config: trt.IBuilderConfig, logger: trt.ILogger, timing_cache: TimingCache
) -> None:
    """Store the grown timing cache, merged with one another build stored meanwhile."""
    import tensorrt as trt

    ours: trt.ITimingCache = config.get_timing_cache()

    def merge(stored: bytes) -> bytes:
        try:
            theirs: trt.ITimingCache | None = config.create_timing_cache(stored)
            if theirs is not None:
                ours.combine(theirs, ignore_mismatch=False)
        except (RuntimeError, TypeError, ValueError):
            pass  # keep our own timings
        return _serialized(ours)

    try:
        timing_cache.save(_serialized(ours), merge)
    except OSError as error:  # a cache: the engine is built all the same
        logger.log(trt.Logger.WARNING, f"mlorch: the timing cache was not saved: {error}")


def build_serialized_engine(
    onnx_model: bytes,
    batch_size: int,
    profiles: int,
    options: BuilderOptions = DEFAULT_BUILDER,
    verbose: bool = False,
    timing_cache: TimingCache | None = None,
) -> bytes:
    """Parse the Q/DQ ONNX into a strongly typed network and build the serialized engine,
    starting from and growing `timing_cache` (None: a timing cache of this build only)."""
    import tensorrt as trt

    logger = make_logger(verbose)
    builder: trt.Builder = trt.Builder(logger)
    # STRONGLY_TYPED is 1 in TensorRT 10 and 0 in 11 (where every network is strongly typed):
    # take the value from the enum, never a literal.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: trt.INetworkDefinition = builder.create_network(flags)
    parser: trt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_model):
        details = "\n  ".join(_parser_errors(parser)) or "no details"
        raise TrtError(f"TensorRT's ONNX parser rejected the model:\n  {details}")
    io = _check_network(network)

    config: trt.IBuilderConfig = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    config.builder_optimization_level = options.optimization_level
    config.profiling_verbosity = {
        "none": trt.ProfilingVerbosity.NONE,
        "layer_names_only": trt.ProfilingVerbosity.LAYER_NAMES_ONLY,
        "detailed": trt.ProfilingVerbosity.DETAILED,
    }[options.profiling_verbosity]
    _use_timing_cache(config, logger, timing_cache.load() if timing_cache is not None else None)
    smallest, largest = (1, *SAMPLE_SHAPE), (batch_size, *SAMPLE_SHAPE)
    for _ in range(profiles):
        profile: trt.IOptimizationProfile = builder.create_optimization_profile()
        profile.set_shape(io.input_name, smallest, largest, largest)
        if config.add_optimization_profile(profile) < 0:
            raise TrtError(f"TensorRT rejected the optimization profile 1..{batch_size}")

    plan: trt.IHostMemory | None = builder.build_serialized_network(network, config)
    if plan is None:
        raise TrtError("TensorRT could not build the engine (its log above says why)")
    if timing_cache is not None:
        _save_timing_cache(config, logger, timing_cache)
    return bytes(memoryview(plan))


def engine_key(
    onnx_path: Path,
    gpu: DeviceInfo,
    batch_size: int,
    profiles: int,
    options: BuilderOptions = DEFAULT_BUILDER,
) -> EngineKey:
    return EngineKey(
        gpu_name=gpu.name,
        compute_capability=gpu.sm,
        tensorrt_version=tensorrt_version(),
        artifact_sha256=file_sha256(onnx_path),
        batch_size=batch_size,
        profiles=profiles,
        builder=options,
    )


def cached_engine(
    cache: EngineCache,
    onnx_path: Path,
    gpu: DeviceInfo,
    batch_size: int,
    profiles: int,
    options: BuilderOptions = DEFAULT_BUILDER,
    on_wait: Callable[[], None] | None = None,
    build: bool = True,
) -> CachedEngine:
    """The engine for this GPU, TensorRT, model and options: from the cache, or built once
    (`build`; without it a missing engine is a TrtError: a test container's cache is read-only,
    the engines step before the tests builds every engine they use)."""
    key = engine_key(onnx_path, gpu, batch_size, profiles, options)
    if not build:
        found = cache.lookup(key)
        if found is None:
            raise TrtError(
                f"no cached engine {key.digest()[:16]} for {gpu.name} (batch {batch_size}, "
                f"{profiles} profiles) in {cache.root}: the engines step builds it before the "
                "tests (was the engine cache cleared during the run?)"
            )
        return found
    timing = TimingCache(cache.root, TimingCacheKey.of(key))
    return cache.get_or_build(
        key,
        lambda: build_serialized_engine(
            onnx_path.read_bytes(), batch_size, profiles, options, timing_cache=timing
        ),
        on_wait=on_wait,
    )


def open_gpu_device(
    onnx_path: Path,
    engine_root: Path,
    store: SampleStore,
    config: GpuDeviceConfig,
    options: BuilderOptions = DEFAULT_BUILDER,
    on_wait: Callable[[], None] | None = None,
    build: bool = True,
) -> GpuDevice:
    """The TensorRT `GpuDevice` for `config`: engine from the cache (built once; `build=False`:
    only from the cache), one execution context per copy stream, warmed up (and graphs
    captured) before it is returned."""
    from backends.dell_trt import cuda_rt
    from backends.dell_trt.gpu_device import GpuDevice, bind_thread

    bind_thread(cuda_rt, config.device, force=True)
    gpu = cuda_rt.device_info(config.device)
    entry = cached_engine(
        EngineCache(engine_root),
        onnx_path,
        gpu,
        config.batch_size,
        config.copy_streams,
        options,
        on_wait,
        build,
    )
    runner = TrtRunner(entry.plan_path.read_bytes(), config.copy_streams)
    device = GpuDevice(runner, store, config)
    try:
        device.facts.update(
            engine_key=entry.key,
            engine_from_cache=not entry.built,
            tensorrt=tensorrt_version(),
            builder=asdict(options),
            layer_precisions=runner.layer_precisions(),
        )
    except BaseException:
        device.close()
        raise
    return device


class TrtRunner:
    """A deserialized engine with one execution context per optimization profile.

    Implements `gpu_device.Runner`: `enqueue` only sets host-side state (input shape and tensor
    addresses, both skipped when unchanged) and enqueues `execute_async_v3` on the given stream,
    so it can be captured into a CUDA graph. Create it on the thread and with the CUDA device
    (`gpu_device.bind_thread`) the engine is meant for: TensorRT allocates on the current device.
    """

    def __init__(self, plan: bytes, contexts: int, verbose: bool = False) -> None:
        import tensorrt as trt

        from backends.dell_trt import cuda_rt

        self._logger: trt.ILogger = make_logger(verbose)
        self._runtime: trt.Runtime = trt.Runtime(self._logger)
        engine: trt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise TrtError(
                "TensorRT could not deserialize the engine (built by another TensorRT version "
                "or for another GPU?)"
            )
        self._engine: trt.ICudaEngine = engine
        self._input, self._output = self._io_names()
        if engine.num_optimization_profiles < contexts:
            raise TrtError(
                f"the engine has {engine.num_optimization_profiles} optimization profiles, "
                f"{contexts} execution contexts need one each"
            )
        self.contexts = contexts
        self.max_batch = min(
            _dims(engine.get_tensor_profile_shape(self._input, p)[2])[0] for p in range(contexts)
        )
        self.device_memory = int(engine.device_memory_size_v2)
        self._contexts: list[trt.IExecutionContext] = []
        with cuda_rt.Stream() as stream:
            for profile in range(contexts):
                context: trt.IExecutionContext | None = engine.create_execution_context()
                if context is None:
                    raise TrtError(f"TensorRT could not create execution context {profile}")
                if not context.set_optimization_profile_async(profile, stream.handle):
                    raise TrtError(f"could not select optimization profile {profile}")
                self._contexts.append(context)
            stream.synchronize()
        self._batch = [0] * contexts
        self._addresses = [(0, 0)] * contexts

    def _io_names(self) -> tuple[str, str]:
        import tensorrt as trt

        engine = self._engine
        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            mode = engine.get_tensor_mode(name)
            if mode == trt.TensorIOMode.INPUT:
                inputs.append(name)
            elif mode == trt.TensorIOMode.OUTPUT:
                outputs.append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise TrtError(f"expected one input and one output, the engine has {inputs} {outputs}")
        if engine.get_tensor_dtype(inputs[0]) != trt.DataType.INT8:
            raise TrtError(f"engine input {inputs[0]!r} is not INT8")
        if engine.get_tensor_dtype(outputs[0]) != trt.DataType.INT32:
            raise TrtError(f"engine output {outputs[0]!r} is not INT32")
        return inputs[0], outputs[0]

    @property
    def input_name(self) -> str:
        return self._input

    @property
    def output_name(self) -> str:
        return self._output

    def prepare_shape(self, context: int, batch: int, stream: int) -> None:
        self._set_batch(context, batch)

    def _set_batch(self, context: int, batch: int) -> None:
        if self._batch[context] == batch:
            return
        execution: trt.IExecutionContext = self._contexts[context]
        if not execution.set_input_shape(self._input, (batch, *SAMPLE_SHAPE)):
            raise TrtError(f"context {context} refused batch {batch} (max {self.max_batch})")
        self._batch[context] = batch

    def enqueue(self, context: int, batch: int, d_input: int, d_output: int, stream: int) -> None:
        execution: trt.IExecutionContext = self._contexts[context]
        self._set_batch(context, batch)
        if self._addresses[context] != (d_input, d_output):
            if not (
                execution.set_tensor_address(self._input, d_input)
                and execution.set_tensor_address(self._output, d_output)
            ):
                raise TrtError("TensorRT refused a tensor address")
            self._addresses[context] = (d_input, d_output)
        if not execution.execute_async_v3(stream):
            raise TrtError(f"execute_async_v3 failed on context {context} (batch {batch})")

    def layer_precisions(self) -> dict[str, Any]:
        return layer_precisions(self._engine)

    def close(self) -> None:
        """Release the contexts, then the engine (in that order, as TensorRT requires)."""
        self._contexts.clear()
        vars(self).pop("_engine", None)  # the last reference: TensorRT frees the engine now


# --- per-layer precision (the engine inspector) --------------------------------------------------

# Layers that do the network's arithmetic: convolutions and matrix products, whatever kernel
# family TensorRT names them by (CaskConvolution, CaskGemmConvolution, MatrixMultiply, ...).
COMPUTE_LAYER_KINDS = ("Convolution", "Gemm", "MatrixMultiply", "MatMul", "FullyConnected")
# The data type words in TensorRT's tensor format descriptions ("Row major linear FP32",
# "Thirty-two wide channel vectorized row major Int8 format") and weight types ("Float").
_DATATYPES = {
    "int8": "Int8",
    "uint8": "UInt8",
    "int4": "Int4",
    "int32": "Int32",
    "int64": "Int64",
    "fp32": "FP32",
    "float": "FP32",
    "fp16": "FP16",
    "half": "FP16",
    "bf16": "BF16",
    "fp8": "FP8",
    "fp4": "FP4",
    "bool": "Bool",
}
_DATATYPE_WORD = re.compile(r"\b(" + "|".join(_DATATYPES) + r")\b", re.IGNORECASE)
UNKNOWN_DATATYPE = "unknown"


def tensor_datatype(description: object) -> str:
    """The data type a TensorRT format description names ('Int8', 'FP16', ...), or 'unknown'."""
    found = _DATATYPE_WORD.search(description) if isinstance(description, str) else None
    return _DATATYPES[found.group(1).lower()] if found else UNKNOWN_DATATYPE


def _datatypes(tensors: object) -> list[str]:
    if not isinstance(tensors, list):
        return []
    return [
        tensor_datatype(t.get("Format/Datatype")) if isinstance(t, dict) else UNKNOWN_DATATYPE
        for t in tensors
    ]


def summarize_layers(info_json: str) -> dict[str, Any]:
    """Per-layer precision from the engine inspector's JSON (`LayerInformationFormat.JSON` of an
    engine built with detailed profiling verbosity): a top-level "Layers" list, each layer with
    "Name", "LayerType" (and "ParameterType"), "Inputs"/"Outputs" whose "Format/Datatype" names
    the data type, and for convolutions "Weights": {"Type": ...}.

    Returns {"layers": N, "by_precision": {data type: layers}, "compute_layers": M,
    "non_int8_compute": [names]}. A layer's precision is the data type it reads (its first input;
    its first output when it has no input). A compute layer (COMPUTE_LAYER_KINDS) counts as INT8
    compute when its data input and its weights (where listed) are Int8: its output may be wider
    (a fused dequantization, a float residual) without the arithmetic being so. Layers given by
    name only (a lower verbosity) count as "unknown".
    """
    try:
        info = json.loads(info_json)
    except json.JSONDecodeError as error:
        raise ValueError(f"the engine information is not JSON: {error}") from None
    layers = info.get("Layers") if isinstance(info, dict) else None
    if not isinstance(layers, list):
        raise ValueError('the engine information has no "Layers" list')
    by_precision: Counter[str] = Counter()
    compute = 0
    non_int8: list[str] = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):  # LAYER_NAMES_ONLY: a name, nothing more
            by_precision[UNKNOWN_DATATYPE] += 1
            continue
        inputs = _datatypes(layer.get("Inputs"))
        outputs = _datatypes(layer.get("Outputs"))
        reads = (inputs or outputs or [UNKNOWN_DATATYPE])[0]
        by_precision[reads] += 1
        kind = f"{layer.get('LayerType', '')} {layer.get('ParameterType', '')}"
        if not any(word in kind for word in COMPUTE_LAYER_KINDS):
            continue
        compute += 1
        weights = layer.get("Weights")
        weight_type = weights.get("Type") if isinstance(weights, dict) else None
        if reads != "Int8" or (weight_type is not None and tensor_datatype(weight_type) != "Int8"):
            non_int8.append(str(layer.get("Name", f"layer {index}")))
    return {
        "layers": len(layers),
        "by_precision": dict(sorted(by_precision.items())),
        "compute_layers": compute,
        "non_int8_compute": non_int8,
    }


def layer_precisions(engine: trt.ICudaEngine) -> dict[str, Any]:
    """`summarize_layers` of the engine's inspector report, or why there is none: the engine was
    built without detailed profiling verbosity, or the inspector failed. Never raises: these are
    facts for harness.json, not a condition of the run."""
    import tensorrt as trt

    if engine.profiling_verbosity != trt.ProfilingVerbosity.DETAILED:
        return {"unavailable": "the engine was built without detailed profiling verbosity"}
    try:
        inspector: trt.EngineInspector | None = engine.create_engine_inspector()
        if inspector is None:
            return {"unavailable": "TensorRT gave no engine inspector"}
        info: str = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        return summarize_layers(info)
    except (RuntimeError, TypeError, ValueError) as error:
        return {"unavailable": f"the engine inspector failed: {error}"}
