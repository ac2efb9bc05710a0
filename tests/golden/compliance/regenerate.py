"""Regenerate the compliance goldens with real LoadGen on the host (one process per test).

    PYTHONPATH=. python tests/golden/compliance/regenerate.py

A tiny SUT answers sample i with the label (7 i) mod 1000 as float32 (the reference's response
format) after a fixed pause; for each of SingleStream and Offline it writes the performance run,
the accuracy run, and the TEST01 and TEST04 audits (audit.config from orchestrator.results.audits)
into <Scenario>/{performance,accuracy,compliance/TEST01,compliance/TEST04}/, the layout of a run
folder. The unit tests copy these folders and alter them for the failing cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOTAL = 16
CONF = (
    "*.*.min_duration = 300\n"
    "*.*.min_query_count = 64\n"
    f"*.*.performance_sample_count_override = {TOTAL}\n"
    "resnet50.SingleStream.target_latency = 0.25\n"
    "resnet50.Offline.target_qps = 2000\n"
)
ONE_TEST = """
import sys, time
from pathlib import Path
import numpy as np
import mlperf_loadgen as lg
from backends.common.loadgen_driver import TestRequest, run_test

scenario, mode, audit = sys.argv[1], sys.argv[2], sys.argv[3]
answers = ((np.arange({total}) * 7) % 1000).astype(np.float32)

class Qsl:
    total_count = {total}
    performance_count = {total}
    def load(self, indices): pass
    def unload(self, indices): pass

class Sut:
    def issue_queries(self, samples):
        time.sleep(0.0005 * len(samples))
        lg.QuerySamplesComplete([
            lg.QuerySampleResponse(s.id, answers[s.index:].ctypes.data, 4) for s in samples
        ])
    def flush_queries(self): pass
    def stop(self): pass

request = TestRequest(
    scenario, mode, Path("../../user.conf"), Path("."), Path("audit.config") if audit else None
)
run_test(request, Qsl(), Sut)
"""


def main() -> None:
    from orchestrator.results.audits import AuditTest, render_audit_config

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    for scenario in ("SingleStream", "Offline"):
        scenario_dir = HERE / scenario
        scenario_dir.mkdir(exist_ok=True)
        (scenario_dir / "user.conf").write_text(CONF)
        runs = [("performance", "PerformanceOnly", None), ("accuracy", "AccuracyOnly", None)]
        runs += [(f"compliance/{test.value}", "PerformanceOnly", test) for test in AuditTest]
        for folder, mode, audit in runs:
            out = scenario_dir / folder
            out.mkdir(parents=True, exist_ok=True)
            conf = Path(os.path.relpath(scenario_dir / "user.conf", out))
            if audit is not None:
                (out / "audit.config").write_text(render_audit_config(audit))
            script = ONE_TEST.format(total=TOTAL).replace('"../../user.conf"', repr(str(conf)))
            subprocess.run(
                [sys.executable, "-c", script, scenario, mode, audit.value if audit else ""],
                cwd=out,
                env=env,
                check=True,
            )
            (out / "harness.json").unlink()
            (out / "mlperf_log_trace.json").unlink(missing_ok=True)
            if mode == "PerformanceOnly" and audit is not AuditTest.TEST01:
                (out / "mlperf_log_accuracy.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
