"""Real LoadGen on the host: an error in the reference SUT's worker ends the test at once.

Without `abort_test`, an exception while encoding or completing a batch only ends its thread and
LoadGen waits for the lost responses forever; here the process must exit quickly with the
documented status and one `mlorch-fatal` line naming the stage and the error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from contract.protocol import EXIT_SUT_FAILED, read_fatal

pytestmark = pytest.mark.loadgen

# A stand-in model and sample library around the real ReferenceSUT and LoadGen: the third batch
# fails at the stage named by argv[1].
SCRIPT = textwrap.dedent("""
    import sys, threading
    from pathlib import Path

    import mlperf_loadgen as lg
    import numpy as np

    from backends.common.loadgen_driver import TestRequest, run_test
    from backends.reference.sut import ReferenceSUT

    stage, scenario, conf, out = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    calls, lock = [0], threading.Lock()

    def third_call():
        with lock:
            calls[0] += 1
            return calls[0] == 3

    class Samples:
        total_count = 64
        performance_count = 64
        def load(self, indices): pass
        def unload(self, indices): pass
        def batch(self, indices): return np.zeros((len(indices), 3, 8, 8), np.float32)

    class Model:
        def predict(self, batch, worker=0):
            if stage == "inference" and third_call():
                raise RuntimeError("device lost on batch 3")
            short = stage == "encoding" and third_call()  # one label missing: cannot encode
            return np.ones(len(batch) - short, np.int64)

    if stage == "QuerySamplesComplete":
        complete = lg.QuerySamplesComplete
        def refusing(responses):
            if third_call():
                raise RuntimeError("response rejected")
            complete(responses)
        lg.QuerySamplesComplete = refusing

    samples = Samples()
    request = TestRequest(scenario, "PerformanceOnly", conf, out)
    run_test(request, samples, lambda: ReferenceSUT(Model(), samples, scenario, 2, 4))
    print("finished normally")
""")

CONF = (
    "*.*.min_duration = 60000\n*.*.min_query_count = 1000\n"
    "*.*.performance_sample_count_override = 64\n"
    "*.Offline.target_qps = 2000\n*.SingleStream.target_latency = 1\n"
)


@pytest.mark.parametrize(
    ("stage", "scenario", "message"),
    [
        ("inference", "Offline", "RuntimeError: device lost on batch 3"),
        ("encoding", "Offline", "ValueError"),
        ("QuerySamplesComplete", "Offline", "RuntimeError: response rejected"),
        ("encoding", "SingleStream", "ValueError"),  # inline, on LoadGen's issue thread
    ],
)
def test_worker_exception_ends_the_test_at_once(
    tmp_path: Path, stage: str, scenario: str, message: str
) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text(CONF)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, stage, scenario, str(conf), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,  # a hung LoadGen (the bug) fails here instead of finishing
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_SUT_FAILED, result.stderr[-3000:]
    assert elapsed < 30, elapsed  # the test asked for 60 s of queries: it was cut short
    assert "finished normally" not in result.stdout
    fatal = [read_fatal(line) for line in result.stdout.splitlines()]
    reports = [report for report in fatal if report is not None]
    assert len(reports) == 1, result.stdout
    assert reports[0]["where"] == stage
    assert message in reports[0]["error"]
    assert "Traceback" in result.stderr
