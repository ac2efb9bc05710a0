"""Real LoadGen on the host: LwisSUT over null devices through the driver's two issue paths —
the bindings' fast path ("fast") and the native library's LoadGen ("native", built from the
pinned mlcommons-loadgen sdist into the test cache)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backends.dell_trt.null_engine import null_labels
from orchestrator.results.loadgen_log import result_from_logs
from tests.support.native_build import native_library

pytestmark = pytest.mark.loadgen

# Short runs, sized by query counts rather than durations: null slots answer far faster than
# any target latency, and LoadGen ends a run early (an error) when it runs out of the queries it
# generated from min_duration and the expected latency. Offline asks for 11 000 000 samples/s x
# 10 ms, far more than any host completes in 10 ms, so the run outlasts min_duration. The Server
# latency bound is loose: this host is shared, and its scheduler delays alone can exceed 15 ms.
USER_CONF = textwrap.dedent("""\
    *.*.min_duration = 10
    *.*.min_query_count = 1000
    *.SingleStream.target_latency = 1
    *.MultiStream.target_latency = 1
    *.Server.target_qps = 5000
    *.Server.target_latency = 200
    *.Server.min_query_count = 3000
    *.Offline.target_qps = 10000000
    *.Offline.min_query_count = 1
""")

# (devices, slots per device, batch size, deque timeout µs) per scenario, as the real settings
# would pick them: batch 1 for SingleStream, one query of 8 for MultiStream, batching for the
# throughput scenarios over two devices.
SHAPES = {
    "SingleStream": (1, 2, 1, 0),
    "MultiStream": (1, 2, 8, 2000),
    "Server": (2, 2, 16, 2000),
    "Offline": (2, 2, 256, 2000),
}

CHILD = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.dell_trt.null_engine import NullDevice
    from backends.dell_trt.sut import LwisSUT, fail_process

    scenario, mode, conf, out = sys.argv[1:5]
    total, performance, devices, slots, batch, timeout_us = map(int, sys.argv[5:11])
    native = None
    if sys.argv[11] != "-":
        from backends.common.native import NativeLoadGen

        native = NativeLoadGen(Path(sys.argv[11]))

    class NullLibrary:
        total_count = total
        performance_count = performance
        def load(self, indices): pass
        def unload(self, indices): pass

    def make_sut():
        null = [NullDevice(f"null{n}", slots, batch) for n in range(devices)]
        return LwisSUT(null, batch, timeout_us, fail_process, native=native)

    request = TestRequest(scenario, mode, Path(conf), Path(out))
    run_test(
        request, NullLibrary(), make_sut, {"backend": "null"}, coalesce_server=True,
        native=native,
    )
""")


ISSUE_PATHS = ["fast", "native"]


@pytest.fixture(scope="module")
def native_folder(test_cache: Path) -> Path:
    return native_library(test_cache)


def run_null(
    tmp_path: Path,
    scenario: str,
    mode: str,
    total: int,
    performance: int,
    native: Path | None = None,
) -> Path:
    conf = tmp_path / "user.conf"
    conf.write_text(USER_CONF)
    out = tmp_path / "out"
    shape = [str(value) for value in SHAPES[scenario]]
    command = [
        sys.executable, "-c", CHILD, scenario, mode, str(conf), str(out),
        str(total), str(performance), *shape, str(native) if native else "-",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("path", ISSUE_PATHS)
@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_null_performance_runs_are_valid(
    tmp_path: Path, scenario: str, path: str, request: pytest.FixtureRequest
) -> None:
    native = request.getfixturevalue("native_folder") if path == "native" else None
    out = run_null(tmp_path, scenario, "PerformanceOnly", 1024, 1024, native)
    result = result_from_logs(out, scenario, "PerformanceOnly")
    assert result.errors == ()
    assert result.valid is True, result.unmet
    harness = json.loads((out / "harness.json").read_text())
    assert harness["issue_path"] == path
    assert harness["server_coalesce_queries"] is (scenario == "Server")
    stats = harness["harness_stats"]
    assert stats["samples"] > 0
    assert stats["mean_batch_size"] <= SHAPES[scenario][2]
    assert len(stats["devices"]) == SHAPES[scenario][0]


@pytest.mark.parametrize("path", ISSUE_PATHS)
@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_null_accuracy_log_has_every_sample_once_with_its_own_label(
    tmp_path: Path, scenario: str, path: str, request: pytest.FixtureRequest
) -> None:
    # Three loads; indices past 1000 wrap the label pattern; a multiple of 8 so that no
    # MultiStream query is padded with repeated samples.
    total, performance = 1504, 512
    native = request.getfixturevalue("native_folder") if path == "native" else None
    out = run_null(tmp_path, scenario, "AccuracyOnly", total, performance, native)
    assert result_from_logs(out, scenario, "AccuracyOnly").errors == ()
    entries = json.loads((out / "mlperf_log_accuracy.json").read_text())
    indices = sorted(entry["qsl_idx"] for entry in entries)
    assert indices == list(range(total))
    expected = null_labels(np.arange(total))
    for entry in entries:
        label = np.frombuffer(bytes.fromhex(entry["data"]), dtype="<i4")
        assert label.tolist() == [expected[entry["qsl_idx"]]]
