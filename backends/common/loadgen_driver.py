"""Run exactly one LoadGen test in this process.

LoadGen keeps global state: a second `TestSettings.FromConfig` in the same process logs
`error_invalid_config` and invalidates the run. The driver therefore refuses a second test in one
process; the orchestrator starts one process (one container) per scenario and mode.

Two kinds of SUT: the classic one (`issue_queries(samples)`, the reference) and a fast-issue one
(`issue_fast(ids, indices)`, registered with `ConstructFastSUT`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from contract.resnet50 import MODEL_NAME

if TYPE_CHECKING:
    from backends.common.native import NativeLoadGen

_tests_run_in_process = 0
# How long a SUT may take to stop its workers after its test (each worker join, each wait).
STOP_TIMEOUT_S = 30.0


class SampleLibrary(Protocol):
    total_count: int
    performance_count: int

    def load(self, indices: list[int]) -> None: ...

    def unload(self, indices: list[int]) -> None: ...


class SystemUnderTest(Protocol):
    """Classic issue path: LoadGen passes QuerySample objects."""

    def issue_queries(self, query_samples: list[Any]) -> None: ...

    def flush_queries(self) -> None: ...

    def stop(self) -> None: ...


class FastSystemUnderTest(Protocol):
    """Fast issue path (`ConstructFastSUT`): LoadGen passes two int lists, ids and QSL indices,
    about ten times cheaper than QuerySample objects. A SUT that has `issue_fast` gets it."""

    def issue_fast(self, ids: list[int], indices: list[int]) -> None: ...

    def flush_queries(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class TestRequest:
    scenario: str
    mode: str
    user_conf: Path
    output_dir: Path
    audit_config: Path | None = None
    # "quick" / "full": measure the SUT first and size this test from it (that profile's
    # headroom), overriding what user.conf says for the scenario's expected rate or latency.
    sizing: str | None = None


SIZING_PROFILES = ("quick", "full")
PROBE_SAMPLES = 64  # loaded for the measured pass (cycled); the test loads its own set after

# The TestSettings field each scenario's sized value goes to, and the factor from the tuning's
# unit (qps, ms) to LoadGen's (qps, ns).
_SIZED_SETTING = {
    "Offline": ("offline_expected_qps", 1.0),
    "Server": ("server_target_qps", 1.0),
    "SingleStream": ("single_stream_expected_latency_ns", 1e6),
    "MultiStream": ("multi_stream_expected_latency_ns", 1e6),
}


def scenario_enum(name: str) -> Any:
    import mlperf_loadgen as lg

    try:
        return getattr(lg.TestScenario, name)
    except AttributeError:
        raise ValueError(f"unknown scenario {name!r}") from None


def mode_enum(name: str) -> Any:
    import mlperf_loadgen as lg

    try:
        return getattr(lg.TestMode, name)
    except AttributeError:
        raise ValueError(f"unknown mode {name!r}") from None


def size_test(
    settings: Any,
    request: TestRequest,
    qsl: SampleLibrary,
    make_sut: Callable[..., SystemUnderTest | FastSystemUnderTest],
) -> dict[str, Any]:
    """The measured pass (backends.common.probe) and the value it sizes the test to, set on
    LoadGen's `settings`; the record harness.json keeps."""
    from backends.common.probe import measure
    from contract.sizing import loadgen_value, tuning_value

    if request.sizing not in SIZING_PROFILES:
        raise ValueError(f"sizing must be one of {SIZING_PROFILES}, got {request.sizing!r}")
    indices = list(range(min(PROBE_SAMPLES, qsl.performance_count, qsl.total_count)))
    qsl.load(indices)
    try:
        measurement = measure(make_sut, request.scenario, indices, quick=request.sizing == "quick")
    finally:
        qsl.unload(indices)
    tuned = tuning_value(measurement)
    value = loadgen_value(request.scenario, tuned, request.sizing == "quick")
    field, factor = _SIZED_SETTING[request.scenario]
    setattr(settings, field, value * factor)
    rate = "estimated" if measurement.estimated else "measured"
    print(
        f"sizing: {request.scenario} {rate} {measurement.samples_per_second:.4g} samples/s"
        + (f", {measurement.latency_ms:.4g} ms a query" if measurement.latency_ms else "")
        + f" in {measurement.seconds:.2f} s; {field} = {value * factor:.6g}",
        flush=True,
    )
    return {
        "profile": request.sizing,
        "measurement": measurement.to_dict(),
        "tuning_value": tuned,
        "setting": field,
        "value": value * factor,
    }


def run_test(
    request: TestRequest,
    qsl: SampleLibrary,
    make_sut: Callable[..., SystemUnderTest | FastSystemUnderTest],
    facts: dict[str, Any] | None = None,
    *,
    coalesce_server: bool = False,
    native: NativeLoadGen | None = None,
) -> None:
    """Configure LoadGen from user.conf, run one test, write logs to request.output_dir.

    `make_sut()` builds the SUT of the test; with `request.sizing`, `make_sut(complete)` also
    builds one for the measured pass first, answering through `complete` instead of LoadGen.
    `coalesce_server` lets LoadGen's Server issue thread hand over every query that is due in
    one call (user.conf cannot set it). With `native` (backends.common.native) and a SUT that
    has `issue_native` (big issues, a view) beside `issue_fast` (small ones, lists), the test
    runs on the library's LoadGen: the native issue path. If the SUT has `stats()`, its result
    goes into harness.json.
    """
    global _tests_run_in_process
    if _tests_run_in_process:
        raise RuntimeError("one LoadGen test per process: start a new process for the next test")
    # LoadGen skips an audit.config it cannot find without a word: an audit would then be a
    # plain performance run.
    if request.audit_config is not None and not request.audit_config.is_file():
        raise FileNotFoundError(f"audit config {request.audit_config} not found")
    _tests_run_in_process += 1

    settings = _settings(request, native)
    coalesced = coalesce_server and request.scenario == "Server"
    if coalesced:
        settings.server_coalesce_queries = True
    sizing = None
    if request.sizing is not None and request.mode == "PerformanceOnly":
        sizing = size_test(settings, request, qsl, make_sut)

    request.output_dir.mkdir(parents=True, exist_ok=True)
    audit = str(request.audit_config) if request.audit_config else "audit.config"
    sut = make_sut()
    started = time.monotonic()
    try:
        if native is not None and getattr(sut, "issue_native", None) is not None:
            issue_path = "native"
            _start_native(native, settings, request, audit, qsl, sut)
        else:
            issue_path = _start_bindings(settings, request, audit, qsl, sut)
    finally:
        sut.stop()
    test_seconds = time.monotonic() - started
    stats = getattr(sut, "stats", None)
    record = {
        "scenario": request.scenario,
        "mode": request.mode,
        "test_seconds": round(test_seconds, 3),
        "issue_path": issue_path,
        "server_coalesce_queries": coalesced,
        "audit_config": str(request.audit_config) if request.audit_config else None,
        "total_count": qsl.total_count,
        "performance_count": qsl.performance_count,
        "uid": os.getuid(),
        "gid": os.getgid(),
        **(facts or {}),
    }
    if native is not None and issue_path == "native":
        record["native_loadgen"] = {
            "loadgen_version": native.record.loadgen_version,
            "compiler": native.record.compiler,
        }
    if stats is not None:
        record["harness_stats"] = stats()
    if sizing is not None:
        record["sizing"] = sizing
    (request.output_dir / "harness.json").write_text(json.dumps(record, indent=2) + "\n")


def _settings(request: TestRequest, native: NativeLoadGen | None) -> Any:
    """LoadGen's TestSettings for the request, from user.conf: the bindings' or the library's."""
    if native is not None:
        settings: Any = native.settings(request.scenario, request.mode)
        status = settings.from_config(request.user_conf, MODEL_NAME, request.scenario)
    else:
        import mlperf_loadgen as lg

        settings = lg.TestSettings()
        settings.scenario = scenario_enum(request.scenario)
        settings.mode = mode_enum(request.mode)
        status = settings.FromConfig(str(request.user_conf), MODEL_NAME, request.scenario)
    if status not in (0, None):
        raise RuntimeError(f"LoadGen rejected {request.user_conf} (status {status})")
    return settings


def _start_bindings(
    settings: Any, request: TestRequest, audit: str, qsl: SampleLibrary, sut: Any
) -> str:
    """Run the test through the mlperf_loadgen bindings; the issue path it used."""
    import mlperf_loadgen as lg

    output = lg.LogOutputSettings()
    output.outdir = str(request.output_dir)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = False  # the trace is large and nobody reads it
    qsl_handle = lg.ConstructQSL(qsl.total_count, qsl.performance_count, qsl.load, qsl.unload)
    issue_fast = getattr(sut, "issue_fast", None)
    if issue_fast is not None:
        sut_handle = lg.ConstructFastSUT(issue_fast, sut.flush_queries)
        destroy_sut = lg.DestroyFastSUT
    else:
        classic = cast(SystemUnderTest, sut)
        sut_handle = lg.ConstructSUT(classic.issue_queries, classic.flush_queries)
        destroy_sut = lg.DestroySUT
    try:
        lg.StartTestWithLogSettings(sut_handle, qsl_handle, settings, log_settings, audit)
    finally:
        destroy_sut(sut_handle)
        lg.DestroyQSL(qsl_handle)
    return "fast" if issue_fast is not None else "classic"


def _start_native(
    native: NativeLoadGen,
    settings: Any,
    request: TestRequest,
    audit: str,
    qsl: SampleLibrary,
    sut: Any,
) -> None:
    """Run the test on the native library's LoadGen (same release, same log files)."""
    from backends.common.fatal import abort_test

    native.start_test(
        settings,
        request.output_dir,
        audit,
        name=f"mlorch-{request.scenario}",
        total_count=qsl.total_count,
        performance_count=qsl.performance_count,
        issue=sut.issue_native,
        issue_lists=sut.issue_fast,
        flush=sut.flush_queries,
        load=qsl.load,
        unload=qsl.unload,
        on_error=lambda exc: abort_test(exc, "native issue path"),
    )
