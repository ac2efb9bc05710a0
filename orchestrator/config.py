"""Typed, validated run configuration.

A `RunSpec` is built once from CLI flags and an optional TOML file, validated here, and then only
read. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.dell_trt.settings import ScenarioSettings as HarnessScenario
from orchestrator.errors import ConfigError

BUILD_TIMEOUT_S = 3600  # the whole image build, context upload included
# Telemetry samples a second per test container (GPU via NVML, host CPU and memory); 0: none.
DEFAULT_HZ = 10.0
MAX_HZ = 100.0  # NVML refreshes power and utilisation every few ms at best


class Scenario(StrEnum):
    SINGLE_STREAM = "SingleStream"
    MULTI_STREAM = "MultiStream"
    SERVER = "Server"
    OFFLINE = "Offline"


class Mode(StrEnum):
    PERFORMANCE = "PerformanceOnly"
    ACCURACY = "AccuracyOnly"

    @property
    def short(self) -> str:
        return "performance" if self is Mode.PERFORMANCE else "accuracy"


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


class Profile(StrEnum):
    QUICK = "quick"
    FULL = "full"


class Calibration(StrEnum):
    """dell-trt's INT8 calibration: one method, or each kept if it scores best (`auto`)."""

    AUTO = "auto"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    MINMAX = "minmax"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HarnessRecord(StrictModel):
    """A harness backend's settings (dell-trt, `contract.dell_trt.settings`) as chosen on the
    host before the run: the profile and why, the GPU count, the `--set` overrides and each
    scenario's values. Validated on read: a manifest whose settings do not parse is refused."""

    profile: str
    source: str
    reason: str
    gpus: int = Field(ge=0)
    overrides: tuple[str, ...] = ()
    scenarios: dict[str, HarnessScenario]

    @model_validator(mode="after")
    def _valid_scenarios(self) -> HarnessRecord:
        for name, values in self.scenarios.items():
            try:
                values.validate()
            except ValueError as exc:
                raise ValueError(f"harness settings of {name}: {exc}") from None
        return self

    def scenario(self, name: str) -> dict[str, Any] | None:
        """One scenario's values as plain data (what sizing keys hash), None if it has none."""
        from dataclasses import asdict

        values = self.scenarios.get(name)
        return None if values is None else asdict(values)


class Tuning(StrictModel):
    """Non-rule LoadGen settings: what the SUT is expected to sustain."""

    offline_expected_qps: float = Field(gt=0)
    server_target_qps: float = Field(gt=0)
    single_stream_expected_latency_ms: float = Field(gt=0)
    multi_stream_expected_latency_ms: float = Field(gt=0)


DEFAULT_TUNING: dict[Device, Tuning] = {
    # 2-core CPU: the reference does ~15-40 samples/s; Server well below that bounds latency.
    Device.CPU: Tuning(
        offline_expected_qps=20,
        server_target_qps=8,
        single_stream_expected_latency_ms=50,
        multi_stream_expected_latency_ms=400,
    ),
    Device.CUDA: Tuning(
        offline_expected_qps=3000,
        server_target_qps=1500,
        single_stream_expected_latency_ms=2,
        multi_stream_expected_latency_ms=8,
    ),
}


class QuickLimits(StrictModel):
    """Shortened durations and counts for `--quick` runs (never submission-valid)."""

    min_duration_ms: int = Field(default=1500, gt=0)
    # LoadGen's early stopping proves the percentile from at least 64 queries at p90
    # (SingleStream) and 662 at p99 (MultiStream): fewer is INVALID however fast the SUT.
    single_stream_min_query_count: int = Field(default=64, gt=0)
    multi_stream_min_query_count: int = Field(default=662, gt=0)
    server_min_query_count: int = Field(default=16, gt=0)
    offline_min_query_count: int = Field(default=1, gt=0)
    max_dataset_count: int = Field(default=500, gt=0)

    def min_query_count(self, scenario: Scenario) -> int:
        return {
            Scenario.SINGLE_STREAM: self.single_stream_min_query_count,
            Scenario.MULTI_STREAM: self.multi_stream_min_query_count,
            Scenario.SERVER: self.server_min_query_count,
            Scenario.OFFLINE: self.offline_min_query_count,
        }[scenario]


MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_MEMORY_BYTES = 6 << 20  # the engine refuses less


def parse_memory(value: str) -> int:
    """Bytes of a docker-style memory size ("8g", "512m", "1073741824"); ValueError otherwise."""
    match = re.fullmatch(r"(\d+)\s*([bkmgt]?)", value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a size like 8g, 512m or 1073741824 (bytes)")
    size = int(match.group(1)) * MEMORY_UNITS[match.group(2)]
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"{value!r} is below the engine's minimum of 6m")
    return size


REFERENCE_MAX_BATCHSIZE = 32


class RunSpec(StrictModel):
    """Everything one `mlorch up` does, fully resolved."""

    backend: str
    device: Device
    base_image: str | None = None  # None: the backend default (NGC), local fallback
    # The system's id in a submission tree (campaigns set one per node and backend); None: the
    # host name, accelerators and backend.
    system_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    profile: Profile = Profile.FULL
    scenarios: tuple[Scenario, ...] = tuple(Scenario)
    modes: tuple[Mode, ...] = tuple(Mode)
    model: Path | None = None
    dataset: Path | None = None
    dataset_count: int | None = Field(default=None, gt=0)
    skip_bad: bool = False  # run without damaged dataset entries (then not submission-valid)
    synthetic_images: int = Field(default=64, gt=0)
    synthetic_seed: int = 0
    threads: int | None = Field(default=None, gt=0)
    max_batchsize: int | None = Field(default=None, gt=0)  # the reference's (None: dell-trt's)
    tuning: Tuning
    # The tuning keys the user gave ([run.tuning]): used as given, never measured or replaced.
    tuning_given: tuple[str, ...] = ()
    use_tuned: bool = True  # take what `mlorch tune` found for this host, image and settings
    quick: QuickLimits = QuickLimits()
    test_timeout_s: int = Field(default=7200, gt=0)  # each container: a test, prepare, synthetic
    build_timeout_s: int = Field(default=BUILD_TIMEOUT_S, gt=0)  # the whole image build
    memory: str | None = None  # memory limit of each container ("8g"); None: unlimited
    # GPU (NVML) and host telemetry per test container, samples a second; 0: none.
    telemetry_hz: float = Field(default=DEFAULT_HZ, ge=0, le=MAX_HZ)
    runs_dir: Path = Path("runs")
    wheelhouse: Path | None = None
    # dell-trt: `--set key=value` overrides, a forced profile, and the resolved settings
    # (profile, reason, per-scenario values) chosen on the host before the run starts.
    set_overrides: tuple[str, ...] = ()
    harness_profile: str | None = None
    harness: HarnessRecord | None = None
    # dell-trt model preparation: the official calibration list (real ImageNet); every quantized
    # model and engine must keep 99 % of FP32's accuracy on `guard_samples` labelled images
    # (contract.accuracy_gate), and, when asked, reach `min_agreement` top-1 agreement with FP32.
    calibration_list: Path | None = None
    calibration: Calibration = Calibration.AUTO
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    guard_samples: int = Field(default=500, gt=0)
    # MLPerf compliance audits (TEST01, TEST04) per scenario; unset: on for the full profile,
    # off for --quick (whose audits could not make a run submission-valid anyway).
    compliance: bool = False

    @model_validator(mode="before")
    @classmethod
    def _compliance_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("compliance") is None:
            profile = data.get("profile", Profile.FULL)
            quick = profile is Profile.QUICK or profile == Profile.QUICK.value
            data = {**data, "compliance": not quick}
        return data

    @model_validator(mode="before")
    @classmethod
    def _reference_batch_default(cls, data: Any) -> Any:
        """--threads/--max-batchsize are the reference SUT's; a harness backend (dell-trt)
        takes batches and threads from its settings, so its spec records neither."""
        reference = isinstance(data, dict) and data.get("harness") is None
        if reference and data.get("max_batchsize") is None:
            data = {**data, "max_batchsize": REFERENCE_MAX_BATCHSIZE}
        return data

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory)

    @field_validator("tuning_given")
    @classmethod
    def _known_tuning_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(Tuning.model_fields))
        if unknown:
            raise ValueError(f"unknown tuning key {unknown[0]!r}")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _non_empty(self) -> RunSpec:
        if not self.scenarios:
            raise ValueError("scenarios: at least one scenario is needed")
        if not self.modes:
            raise ValueError("modes: at least one mode is needed")
        return self

    @property
    def quick_run(self) -> bool:
        return self.profile is Profile.QUICK

    @property
    def synthetic(self) -> bool:
        return self.model is None and self.dataset is None


# Keys a TOML config file may set (the [run] table); everything else is an error.
class FileConfig(StrictModel):
    profile: Profile | None = None
    scenarios: tuple[Scenario, ...] | None = None
    modes: tuple[Mode, ...] | None = None
    model: Path | None = None
    dataset: Path | None = None
    dataset_count: int | None = None
    skip_bad: bool | None = None
    synthetic_images: int | None = None
    synthetic_seed: int | None = None
    threads: int | None = None
    max_batchsize: int | None = None
    base_image: str | None = None
    test_timeout_s: int | None = None
    build_timeout_s: int | None = None
    memory: str | None = None
    telemetry_hz: float | None = None
    runs_dir: Path | None = None
    wheelhouse: Path | None = None
    tuning: dict[str, float] | None = None
    quick: dict[str, int] | None = None
    set_overrides: tuple[str, ...] | None = None
    harness_profile: str | None = None
    calibration_list: Path | None = None
    calibration: Calibration | None = None
    min_agreement: float | None = None
    guard_samples: int | None = None
    compliance: bool | None = None
    use_tuned: bool | None = None


def _key_of(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ())) or "<root>"


def validation_to_config_error(exc: ValidationError, source: str) -> ConfigError:
    """Turn a pydantic error into one line naming the first offending key."""
    first = dict(exc.errors()[0])
    key = _key_of(first)
    if first.get("type") == "extra_forbidden":
        return ConfigError(
            f"{source}: unknown key '{key}'", key=key, hint="check the spelling against the README"
        )
    return ConfigError(f"{source}: {key}: {first.get('msg', 'invalid value')}", key=key)


def load_file_config(path: Path) -> FileConfig:
    """Read and validate a TOML run config (keys under [run])."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}", hint="pass an existing file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(raw) - {"run"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{path}: unknown table '{key}'", key=key, hint="put settings under [run]"
        )
    try:
        return FileConfig.model_validate(raw.get("run", {}))
    except ValidationError as exc:
        raise validation_to_config_error(exc, str(path)) from exc


def build_spec(values: dict[str, Any], source: str = "options") -> RunSpec:
    """Validate merged values into a RunSpec."""
    try:
        return RunSpec.model_validate(values)
    except ValidationError as exc:
        raise validation_to_config_error(exc, source) from exc


def merge_tuning(
    device: Device, overrides: dict[str, float] | None, base_values: dict[str, float] | None = None
) -> Tuning:
    """Tuning = the backend's expectations (or the device defaults) < the config file's."""
    base = base_values or DEFAULT_TUNING[device].model_dump()
    try:
        return Tuning.model_validate({**base, **(overrides or {})})
    except ValidationError as exc:
        raise validation_to_config_error(exc, "tuning") from exc


def merge_quick(overrides: dict[str, int] | None) -> QuickLimits:
    try:
        return QuickLimits.model_validate(overrides or {})
    except ValidationError as exc:
        raise validation_to_config_error(exc, "quick") from exc
