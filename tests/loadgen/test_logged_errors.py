"""Real LoadGen on the host: an error LoadGen logs invalidates a result it calls VALID.

tests/golden/loadgen/Offline-performance-error was recorded the same way (Offline, 200 ms,
expected 100 samples/s, a SUT that answers after 300 ms and completes one sample twice).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.results.loadgen_log import parse_summary_text, result_from_logs

pytestmark = pytest.mark.loadgen


def test_sample_completed_twice_is_an_invalid_result(tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text(
        "*.*.min_duration = 200\n*.*.min_query_count = 1\n"
        "*.*.performance_sample_count_override = 8\nresnet50.Offline.target_qps = 100\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.loadgen.standin", "--conf", str(conf),
         "--out", str(tmp_path / "out"), "--delay", "0.3", "--complete-twice"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    summary = parse_summary_text((out / "mlperf_log_summary.txt").read_text())
    assert summary["Result is"] == "VALID"  # LoadGen's own verdict ignores the error
    parsed = result_from_logs(out, "Offline", "PerformanceOnly")
    assert parsed.errors == ("error_runtime: Attempted to complete a sample twice.",)
    assert parsed.valid is False
