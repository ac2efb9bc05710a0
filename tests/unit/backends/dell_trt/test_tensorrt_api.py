"""trt_engine.py against the REAL TensorRT Python bindings: the pinned 10.x and the newest 11.x.

The `tensorrt-cu13-bindings` wheel of each version is downloaded (cached), made importable with
stand-in sonames for libnvinfer & co. (tests/support/real_wheels.py) and described
(tests/support/api_dump.py); every TensorRT name trt_engine.py uses is then found in its source
(tests/support/api_surface.py) and must exist, with a fitting signature, in both versions. No fake
of TensorRT is involved: a name that a version lacks fails here, as the negative cases below prove
on small snippets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backends.dell_trt.engine_cache import TENSORRT_VERSION
from orchestrator.images.catalog import CUDA_BASES, NGC_CUDA12_BASE
from tests.support.api_surface import Api, Report, check_source
from tests.support.paths import REPO
from tests.support.real_wheels import WheelUnavailable, prepare, tensorrt_bindings

# The newest TensorRT 11 with cu13 bindings on PyPI when this test was written. The engine code
# must build on 11.x as well as on the pinned 10.x of the base image.
NEWEST_TENSORRT_11 = "11.4.0.106"
TRT_ENGINE = REPO / "backends" / "dell_trt" / "trt_engine.py"
MODULES = {"tensorrt"}


def pinned_tensorrt_version() -> str:
    """The TensorRT of the pinned GPU base image: the catalog's fact where it records one,
    else the constant engine_cache.py keeps for it."""
    from orchestrator.images import catalog

    bases = getattr(catalog, "CUDA_BASES", {})
    base = bases.get(getattr(catalog, "NGC_BASE", None))
    if base is not None and getattr(base, "tensorrt", None):
        return str(base.tensorrt)
    return TENSORRT_VERSION


VERSIONS = {"pinned": pinned_tensorrt_version(), "trt11": NEWEST_TENSORRT_11}
# The TensorRT of the CUDA 12 stack's base (older drivers): its cu12 bindings.
VERSIONS["cuda12"] = CUDA_BASES[NGC_CUDA12_BASE].tensorrt
CUDA_MAJOR = {"cuda12": 12}


@pytest.fixture(scope="module")
def apis(test_cache: Path) -> dict[str, Api]:
    loaded = {}
    for label, version in VERSIONS.items():
        try:
            binding = tensorrt_bindings(version, CUDA_MAJOR.get(label, 13))
            loaded[label] = Api(prepare(binding, test_cache).api())
        except WheelUnavailable as error:
            pytest.skip(f"TensorRT {version} bindings unavailable: {error}")
    return loaded


def _check(source: str, api: Api) -> Report:
    return check_source(source, api, MODULES)


def test_the_described_modules_are_the_requested_versions(apis: dict[str, Api]) -> None:
    for label, version in VERSIONS.items():
        assert apis[label].version == version
    assert VERSIONS["pinned"].startswith("10.")


def test_engine_cache_names_the_pinned_tensorrt() -> None:
    assert pinned_tensorrt_version() == TENSORRT_VERSION


@pytest.mark.parametrize("label", list(VERSIONS))
def test_trt_engine_uses_only_api_that_exists(apis: dict[str, Api], label: str) -> None:
    report = _check(TRT_ENGINE.read_text(), apis[label])
    assert not report.findings, "\n".join(map(str, report.findings))
    checked = report.names()
    # The analysis reached the typed receivers, chains and return types, not just `trt.X`.
    for expected in (
        "Builder.create_network",
        "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
        "OnnxParser.parse",
        "ParserError.desc",
        "INetworkDefinition.get_input",
        "ITensor.dtype",
        "IBuilderConfig.set_memory_pool_limit",
        "IBuilderConfig.builder_optimization_level",
        "IBuilderConfig.profiling_verbosity",
        "IOptimizationProfile.set_shape",
        "Builder.build_serialized_network",
        "Runtime.deserialize_cuda_engine",
        "ICudaEngine.device_memory_size_v2",
        "ICudaEngine.get_tensor_profile_shape",
        "IExecutionContext.set_optimization_profile_async",
        "IExecutionContext.set_input_shape",
        "IExecutionContext.set_tensor_address",
        "IExecutionContext.execute_async_v3",
        "Logger.WARNING",
        "Logger.min_severity",  # one logger per process, its severity changed in place
        "ILogger.log",
        "IBuilderConfig.create_timing_cache",  # the timing cache: loaded, used, saved
        "IBuilderConfig.set_timing_cache",
        "IBuilderConfig.get_timing_cache",
        "ITimingCache.serialize",
        "ITimingCache.combine",
        "ICudaEngine.profiling_verbosity",  # per-layer precision from the engine inspector
        "ProfilingVerbosity.DETAILED",
        "ICudaEngine.create_engine_inspector",
        "EngineInspector.get_engine_information",
        "LayerInformationFormat.JSON",
        "__version__",
    ):
        assert expected in checked, f"{expected} was not seen in trt_engine.py"


def test_guarded_names_exist_in_at_least_one_version(apis: dict[str, Api]) -> None:
    reports = [_check(TRT_ENGINE.read_text(), api) for api in apis.values()]
    assert not _missing_everywhere(reports)


def _missing_everywhere(reports: list[Report]) -> set[str]:
    """Guarded names (getattr/hasattr) that no checked version has: misspelt, not version-gated."""
    missing = [{use.label for use in report.missing_optional} for report in reports]
    return set.intersection(*missing)


def test_no_precision_flags_or_calibrators_in_trt_engine(apis: dict[str, Api]) -> None:
    # Explicit Q/DQ + strong typing: the precision follows from the graph. TensorRT 10 still has
    # these (so the existence check above would pass them); 11 has removed most of them.
    forbidden = (
        "BuilderFlag",
        "IBuilderConfig.set_flag",
        "IBuilderConfig.int8_calibrator",
        "ITensor.set_dynamic_range",
        "ILayer.precision",
        "ILayer.set_output_type",
        "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
    )
    used = _check(TRT_ENGINE.read_text(), apis["pinned"]).names()
    assert not {name for name in used if name.startswith(forbidden)}


def test_strongly_typed_flag_value_differs_between_majors(apis: dict[str, Api]) -> None:
    # Why trt_engine.py shifts by int(STRONGLY_TYPED) instead of a literal.
    values = {
        label: api.entry(("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"))
        for label, api in apis.items()
    }
    pinned, trt11 = values["pinned"], values["trt11"]
    assert pinned is not None
    assert trt11 is not None
    assert pinned["int"] == 1
    assert trt11["int"] == 0


# --- the check fails where it must -------------------------------------------------------------

HEADER = "import tensorrt as trt\n\n"
EVERY = tuple(VERSIONS)  # a mistake in any TensorRT

NEGATIVE = [
    pytest.param(
        "flags = trt.BuilderFlag.INT8\n",
        r"BuilderFlag\.INT8 does not exist",
        ("trt11",),
        id="int8-flag",
    ),
    pytest.param(
        "def setup(config: trt.IBuilderConfig) -> None:\n    config.int8_calibrator = None\n",
        r"IBuilderConfig\.int8_calibrator does not exist",
        ("trt11",),
        id="calibrator",
    ),
    pytest.param(
        "flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)\n",
        r"EXPLICIT_BATCH does not exist",
        ("trt11",),
        id="explicit-batch",
    ),
    pytest.param(
        "def make(builder: trt.Builder):\n    return builder.create_netwrok(0)\n",
        r"Builder\.create_netwrok does not exist",
        EVERY,
        id="misspelt-method",
    ),
    pytest.param(
        "def make(logger: trt.ILogger):\n"
        "    builder = trt.Builder(logger)\n"
        "    network = builder.create_network(0)\n"
        "    return network.get_inptu(0)\n",
        r"INetworkDefinition\.get_inptu does not exist",
        EVERY,
        id="misspelt-via-return-types",
    ),
    pytest.param(
        "def make(builder: trt.Builder):\n"
        "    return builder.create_builder_config().max_workspace_size\n",
        r"IBuilderConfig\.max_workspace_size does not exist",
        EVERY,
        id="removed-property-in-chain",
    ),
    pytest.param(
        "class Run:\n"
        "    def __init__(self, contexts: list[trt.IExecutionContext]) -> None:\n"
        "        self._contexts = contexts\n"
        "    def go(self, stream: int) -> None:\n"
        "        for context in self._contexts:\n"
        "            context.execute_async_v2([], stream)\n",
        r"IExecutionContext\.execute_async_v2 does not exist",
        EVERY,
        id="self-attribute-list",
    ),
    pytest.param(
        "def shape(profile: trt.IOptimizationProfile) -> None:\n"
        "    profile.set_shape('x', (1, 3), (2, 3))\n",
        r"set_shape called with 3 positional arguments",
        EVERY,
        id="arity",
    ),
    pytest.param(
        "def size(engine: trt.ICudaEngine) -> None:\n    engine.num_io_tensors = 2\n",
        r"num_io_tensors is a read-only property",
        EVERY,
        id="read-only",
    ),
    pytest.param(
        "def level(config: trt.IBuilderConfig) -> int:\n"
        "    return config.builder_optimization_level()\n",
        r"builder_optimization_level is a property, not callable",
        EVERY,
        id="property-called",
    ),
    pytest.param(
        "def make(builder: trt.Builder) -> None:\n"
        "    network: trt.IBuilderConfig = builder.create_network(0)\n",
        r"annotated IBuilderConfig but the call returns INetworkDefinition",
        EVERY,
        id="wrong-annotation",
    ),
    pytest.param(
        "engine: trt.ICudaEngin | None = None\n",
        r"ICudaEngin does not exist",
        EVERY,
        id="misspelt-annotation",
    ),
]


@pytest.mark.parametrize(("snippet", "message", "fails_in"), NEGATIVE)
def test_the_check_catches(
    apis: dict[str, Api], snippet: str, message: str, fails_in: tuple[str, ...]
) -> None:
    for label, api in apis.items():
        findings = [str(f) for f in _check(HEADER + snippet, api).findings]
        if label in fails_in:
            assert any(re.search(message, f) for f in findings), (label, findings)
        else:
            assert not findings, (label, findings)


def test_guarded_access_is_allowed_where_the_name_is_missing(apis: dict[str, Api]) -> None:
    snippet = HEADER + "int8 = getattr(trt.BuilderFlag, 'INT8', None)\n"
    reports = [_check(snippet, api) for api in apis.values()]
    assert not any(report.findings for report in reports)
    assert not _missing_everywhere(reports)
    misspelt = HEADER + "direct_io = getattr(trt.BuilderFlag, 'DIRECT_IOO', None)\n"
    reports = [_check(misspelt, api) for api in apis.values()]
    assert _missing_everywhere(reports) == {"BuilderFlag.DIRECT_IOO"}
