"""Real LoadGen on the host through the native library (libmlorch_loadgen.so, built from the
pinned mlcommons-loadgen sdist): its settings, a failing callback, and the same logs as the
bindings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backends.common.native import NativeLoadGen, NativeUnavailable
from contract.protocol import EXIT_SUT_FAILED, read_fatal
from tests.support.native_build import native_library

pytestmark = pytest.mark.loadgen


@pytest.fixture(scope="module")
def native_folder(test_cache: Path) -> Path:
    return native_library(test_cache)


def test_the_library_is_the_installed_loadgen_release(native_folder: Path) -> None:
    from importlib import metadata

    record = json.loads((native_folder / "build.json").read_text())
    assert record["built"] is True
    assert record["loadgen_version"] == metadata.version("mlcommons-loadgen")


def test_settings_read_user_conf_and_set_only_known_fields(
    native_folder: Path, tmp_path: Path
) -> None:
    native = NativeLoadGen(native_folder)
    conf = tmp_path / "user.conf"
    conf.write_text("resnet50.Offline.target_qps = 1234\nresnet50.Server.target_qps = 77\n")
    offline = native.settings("Offline", "PerformanceOnly")
    assert offline.from_config(conf, "resnet50", "Offline") == 0
    assert offline.offline_expected_qps == 1234
    offline.offline_expected_qps = 99.5
    assert offline.offline_expected_qps == 99.5
    offline.server_coalesce_queries = True
    assert offline.server_coalesce_queries == 1.0
    with pytest.raises(AttributeError, match=r"cannot set TestSettings\.performance_issue_same"):
        offline.performance_issue_same = 1
    with pytest.raises(AttributeError, match="cannot read"):
        _ = offline.no_such_field
    with pytest.raises(ValueError, match="unknown scenario"):
        native.settings("Batch", "PerformanceOnly")


def test_a_folder_without_a_build_says_why(tmp_path: Path) -> None:
    with pytest.raises(NativeUnavailable, match="no native build"):
        NativeLoadGen(tmp_path)
    (tmp_path / "build.json").write_text('{"built": false, "reason": "no C++ compiler (g++)"}')
    with pytest.raises(NativeUnavailable, match="no C\\+\\+ compiler"):
        NativeLoadGen(tmp_path)


FAILING = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.common.native import NativeLoadGen
    from backends.dell_trt.null_engine import NullDevice
    from backends.dell_trt.sut import LwisSUT, fail_process

    native = NativeLoadGen(Path(sys.argv[1]))

    class Library:
        total_count = 64
        performance_count = 64
        def load(self, indices): pass
        def unload(self, indices): pass

    class Broken(LwisSUT):
        def _issue_native(self, samples):
            raise RuntimeError(f"lost {len(samples)} samples")

    def make_sut():
        sut = Broken([NullDevice("null", 1, 8)], 8, 0, fail_process, native=native)
        return sut

    request = TestRequest("Offline", "PerformanceOnly", Path(sys.argv[2]), Path(sys.argv[3]))
    run_test(request, Library(), make_sut, coalesce_server=True, native=native)
""")


def test_an_error_in_a_native_callback_ends_the_test_at_once(
    native_folder: Path, tmp_path: Path
) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text("*.*.min_duration = 10\n*.Offline.target_qps = 100\n")
    result = subprocess.run(
        [sys.executable, "-c", FAILING, str(native_folder), str(conf), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_SUT_FAILED, result.stderr[-2000:]
    reports = [read_fatal(line) for line in result.stdout.splitlines()]
    fatal = next((report for report in reports if report), None)
    assert fatal is not None
    assert fatal["where"] == "native issue path"
    assert "RuntimeError: lost" in fatal["error"]


@pytest.mark.parametrize("native", [False, True])
def test_the_issue_path_benchmark_runs_both_paths(native: bool, native_folder: Path) -> None:
    # Small sizes: what is checked is that the benchmark still runs end to end, not figures.
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "benchmarks.issue_path", "--sizes", "20k,40k"]
    if native:
        command += ["--native", str(native_folder), "--lanes", "2"]
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "issued 40,000 in one query" in result.stdout
    expected = "issue path on the critical path (e)" if native else "whole Python issue path"
    assert expected in result.stdout
