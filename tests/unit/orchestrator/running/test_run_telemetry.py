"""Telemetry around one test's container in `run_test`, engine-free: the canned docker API
(tests/support/fake_docker.py) "runs" the container, and starting it writes a LoadGen detail
log (the golden Offline one) whose power window lies at known times after the start; NVML is the
scripted stand-in (tests/support/fake_nvml.py), psutil is real."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.assets import ResolvedAssets
from orchestrator.assets.model import ModelInfo
from orchestrator.config import DEFAULT_TUNING, Device, Mode, RunSpec, Scenario
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import ContainerFailed, EngineWentAway, WaitTimeout
from orchestrator.images.build import BaseImage, BuiltImage
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity
from orchestrator.images.wheelhouse import Platform
from orchestrator.report.telemetry import read_telemetry
from orchestrator.results.loadgen_log import DETAIL
from orchestrator.running.up import RunContext, run_test
from tests.support.fake_docker import RUNNING, CannedAPI, exited, fake_client
from tests.support.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakeNvml
from tests.support.paths import GOLDEN as GOLDEN_ROOT

GOLDEN_DETAIL = GOLDEN_ROOT / "loadgen" / "Offline-performance" / DETAIL
WINDOW = (0.2, 0.7)  # LoadGen's power window, seconds after the container started
WATTS = 200.0


def _power_time(posix: float) -> str:
    """LoadGen's power_begin/power_end format: UTC, milliseconds truncated."""
    moment = datetime.fromtimestamp(posix, UTC)
    return moment.strftime("%m-%d-%Y %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


class LoadGenAPI(CannedAPI):
    """Starting the container writes the detail log LoadGen would (when `window` is set)."""

    def __init__(self, states: list[dict[str, Any]], results: Path, **kwargs: Any) -> None:
        super().__init__(states, [b"reference SUT\n"], **kwargs)
        self.results = results
        self.window: tuple[float, float] | None = WINDOW

    def start(self, container: str, *args: Any, **kwargs: Any) -> None:
        super().start(container)
        if self.window is None:
            return
        now = time.time()
        text = GOLDEN_DETAIL.read_text()
        for key, offset in zip(("power_begin", "power_end"), self.window, strict=True):
            text = re.sub(
                rf'("key": "{key}", "value": ")[^"]*"',
                lambda m, o=offset: m.group(1) + _power_time(now + o) + '"',
                text,
            )
        (self.results / DETAIL).write_text(text)


def _context(
    tmp_path: Path, states: list[dict[str, Any]], nvml: Any, hz: float = 50, timeout_s: int = 60,
    **api_kwargs: Any,
) -> tuple[RunContext, LoadGenAPI]:  # fmt: skip
    run_dir = tmp_path / "runs" / "run-1"
    test_dir = run_dir / "reference" / "Offline" / "performance"
    test_dir.mkdir(parents=True)
    api = LoadGenAPI(states, test_dir, **api_kwargs)
    spec = RunSpec(
        backend="reference",
        device=Device.CPU,
        tuning=DEFAULT_TUNING[Device.CPU],
        telemetry_hz=hz,
        test_timeout_s=timeout_s,
        runs_dir=tmp_path / "runs",
    )
    image = BuiltImage(
        "mlorch/reference-cpu:test", "sha256:" + "a" * 64, "0" * 64,
        BaseImage("mlorch/base:bookworm", "sha256:" + "b" * 64, True), Platform("3.11", "2.36"),
        False, [],
    )  # fmt: skip
    assets = ResolvedAssets(
        ModelInfo(tmp_path / "model.onnx", "0" * 32, False, 11), tmp_path / "data", 64, 64, True
    )
    ctx = RunContext(
        DockerEngine(fake_client(api)), get_backend("reference"), spec, image, "run-1", run_dir,
        assets, tmp_path / "cache", Identity.current(), Terminal(quiet=True), nvml=nvml,
    )  # fmt: skip
    return ctx, api


def _fake_nvml(**kwargs: Any) -> FakeNvml:
    return FakeNvml([FakeGpu(power_w=lambda _t: WATTS, energy_mj=lambda t: 1000 * WATTS * t)],
                    **kwargs)  # fmt: skip


def _no_sampler_thread() -> bool:
    return not any(t.name == "telemetry" and t.is_alive() for t in threading.enumerate())


def _summary(ctx: RunContext) -> dict[str, Any]:
    folder = ctx.run_dir / "reference" / "Offline" / "performance" / "telemetry"
    return dict(json.loads((folder / "summary.json").read_text()))


def test_a_test_gets_its_telemetry_cut_to_the_loadgen_window(tmp_path: Path) -> None:
    nvml = _fake_nvml()
    ctx, api = _context(tmp_path, [RUNNING] * 4 + [exited(0)], nvml)
    result, record = run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert result.valid is True
    telemetry = record.telemetry
    assert telemetry == _summary(ctx)
    begin, end = telemetry["window_s"]
    # ms truncation and the instant between the log's write and the zero: a few ms at most
    assert begin == pytest.approx(WINDOW[0], abs=0.005)
    assert end == pytest.approx(WINDOW[1], abs=0.005)
    gpu = telemetry["gpus"]["0"]
    assert gpu["energy_source"] == "counter"
    assert gpu["energy_j"] == pytest.approx(WATTS * (end - begin), rel=0.01)
    assert gpu["mean_power_w"] == WATTS
    assert telemetry["loadgen_samples"] == 33
    assert telemetry["samples_per_joule"] == pytest.approx(33 / gpu["energy_j"], rel=1e-4)
    assert telemetry["nvml"] == "ok"
    assert telemetry["host"]["mean_cpu_util_pct"] is not None
    assert telemetry["problems"] == []
    folder = ctx.run_dir / record.dir
    assert {p.name for p in (folder / "telemetry").iterdir()} == {
        "gpu.csv",
        "host.csv",
        "summary.json",
    }
    data = read_telemetry(folder)
    assert data is not None
    assert data.gpu_count == 1
    assert data.power_w[0][0] < 0 < data.power_w[-1][0]  # a baseline before the start
    assert data.power_w[-1][0] >= 0.75  # the container ran 4 polls of 0.25 s
    assert nvml.initialised == 0
    assert _no_sampler_thread()
    assert api.names()[-1] == "remove"


def test_a_failed_test_keeps_its_telemetry(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path, [RUNNING, RUNNING, exited(1)], _fake_nvml())
    with pytest.raises(ContainerFailed):
        run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    summary = _summary(ctx)
    assert summary["window_s"] is not None  # LoadGen finished; the SUT failed on its way out
    assert summary["gpus"]["0"]["energy_j"] is not None
    assert _no_sampler_thread()


def test_a_test_without_a_loadgen_log_says_why(tmp_path: Path) -> None:
    ctx, api = _context(tmp_path, [RUNNING, exited(1)], _fake_nvml())
    api.window = None
    with pytest.raises(ContainerFailed):
        run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    summary = _summary(ctx)
    assert summary["window_s"] is None
    assert summary["gpus"]["0"]["energy_j"] is None
    assert summary["problems"] == ["no LoadGen window: LoadGen wrote no mlperf_log_detail.txt"]


def test_ctrl_c_stops_the_sampler(tmp_path: Path) -> None:
    ctx, api = _context(tmp_path, [RUNNING], _fake_nvml(), interrupt_on_inspect=3)
    with pytest.raises(KeyboardInterrupt):
        run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert _no_sampler_thread()
    assert api.names()[-1] == "remove"
    assert _summary(ctx)["window_s"] is not None


def test_a_timeout_stops_the_sampler(tmp_path: Path) -> None:
    nvml = _fake_nvml()
    ctx, api = _context(tmp_path, [RUNNING], nvml, timeout_s=1)
    with pytest.raises(WaitTimeout):
        run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert _no_sampler_thread()
    assert nvml.initialised == 0
    assert "kill" in api.names()


def test_no_nvml_still_records_the_host(tmp_path: Path) -> None:
    ctx, _ = _context(
        tmp_path, [RUNNING] * 3 + [exited(0)], _fake_nvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    )
    _, record = run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    telemetry = record.telemetry
    assert telemetry["gpus"] == {}
    assert telemetry["nvml"] == "NVML unavailable (NVML Shared Library Not Found)"
    assert telemetry["samples_per_joule"] is None
    assert telemetry["host"]["mean_cpu_util_pct"] is not None
    folder = ctx.run_dir / record.dir / "telemetry"
    assert sorted(p.name for p in folder.iterdir()) == ["host.csv", "summary.json"]


def test_rate_zero_disables_telemetry(tmp_path: Path) -> None:
    nvml = _fake_nvml()
    ctx, _ = _context(tmp_path, [RUNNING, exited(0)], nvml, hz=0)
    _, record = run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert record.telemetry is None
    assert not (ctx.run_dir / record.dir / "telemetry").exists()
    assert nvml.calls == {}
    assert nvml.initialised == 0


# --- faults while the sampler runs (issue: a long run survives the telemetry phase) -------------


def test_a_gpu_lost_while_the_test_runs_keeps_the_test_and_says_so(tmp_path: Path) -> None:
    # NVML answers GPU_IS_LOST mid-test: the test's own result stands, sampling of that GPU
    # stops, and its summary says the energy covers only part of the window.
    nvml = FakeNvml([FakeGpu(power_w=lambda _t: WATTS, energy_mj=lambda t: 1e3 * WATTS * t,
                             lost_after=25)])  # fmt: skip
    # 25 reads at 50 Hz: lost ~0.5 s in, well inside a 0.2..1.8 s window of a 2.5 s test even
    # on a host that samples at half the rate
    ctx, api = _context(tmp_path, [RUNNING] * 10 + [exited(0)], nvml)
    api.window = (0.2, 1.8)
    result, record = run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert result.valid is True
    telemetry = record.telemetry
    assert telemetry is not None
    assert telemetry["gpus"]["0"]["window_covered"] is False
    assert telemetry["samples_per_joule"] is None
    assert any("GPU 0 stopped answering" in p for p in telemetry["problems"])
    assert telemetry == _summary(ctx)
    assert nvml.initialised == 0  # shut down though a GPU was lost
    assert _no_sampler_thread()
    assert api.names()[-1] == "remove"


def test_the_engine_going_away_while_sampling_is_one_typed_error(tmp_path: Path) -> None:
    # dockerd stops during the test: exit 3 naming the test, the sampler stopped, and the
    # telemetry of what ran is kept for the resumed run's record of the attempt.
    nvml = _fake_nvml()
    ctx, api = _context(tmp_path, [RUNNING] * 8 + [exited(143)], nvml)
    api.gone_on_inspect = 3
    with pytest.raises(EngineWentAway) as gone:
        run_test(ctx, Scenario.OFFLINE, Mode.PERFORMANCE)
    assert gone.value.exit_code == 3
    assert "stopped answering" in gone.value.message
    assert _no_sampler_thread()
    assert nvml.initialised == 0
    assert _summary(ctx)["nvml"] == "ok"
    folder = ctx.run_dir / "reference" / "Offline" / "performance" / "telemetry"
    assert {p.name for p in folder.iterdir()} >= {"gpu.csv", "host.csv"}
