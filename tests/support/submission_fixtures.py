"""Small submission trees made by the tests: one that meets every rule `mlorch check` checks,
which a test then breaks in exactly one place.

The LoadGen logs hold only the keys the checks read, written as LoadGen writes them
(`:::MLLOG {json}` lines, the last value of a key wins).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestrator.config import Scenario
from orchestrator.results.rules import RULES
from orchestrator.results.validity import SEEDS
from orchestrator.submission.layout import MEASUREMENT_FIELDS, ScenarioPaths, SubmitterPaths
from orchestrator.submission.system import SYSTEM_FIELDS

# The system fields mlorch cannot detect, as a CI host's facts file gives them.
CI_HOST_FACTS = """
[system]
status = "available"
system_name = "CI host"
cooling = "air"
host_memory_configuration = "as the CI host has"
system_type_detail = "CI machine"
"""

SUBMITTER = "Acme"
SYSTEM_ID = "box-cpu-reference"
EDGE = ("SingleStream", "MultiStream", "Offline")
GOOD_ACCURACY = "accuracy=76.500%, good=38250, total=50000\nhash=" + "ab" * 32 + "\n"


def mllog(values: dict[str, Any]) -> str:
    lines = [
        ":::MLLOG "
        + json.dumps(
            {
                "key": key,
                "value": value,
                "time_ms": 0.0,
                "namespace": "mlperf::logging",
                "event_type": "POINT_IN_TIME",
                "metadata": {"is_error": False, "is_warning": False},
            }
        )
        for key, value in values.items()
    ]
    return "\n".join(lines) + "\n"


def performance_values(scenario: str) -> dict[str, Any]:
    rules = RULES[Scenario(scenario)]
    values: dict[str, Any] = {
        "effective_scenario": scenario,
        "effective_test_mode": "PerformanceOnly",
        "effective_min_duration_ms": 600_000,
        "effective_min_query_count": rules.min_query_count,
        "effective_min_sample_count": rules.min_query_count * rules.samples_per_query,
        "effective_performance_sample_count": 1024,
        **{f"effective_{name}": seed for name, seed in SEEDS.items()},
        "result_validity": "VALID",
        "early_stopping_latency_ss": 2_000_000,
        "early_stopping_latency_ms": 9_000_000,
    }
    if scenario == "Server":
        values["effective_target_latency_ns"] = 15_000_000
    return values


def accuracy_values(scenario: str) -> dict[str, Any]:
    return {
        "effective_scenario": scenario,
        "effective_test_mode": "AccuracyOnly",
        "effective_accuracy_sample_count": 50_000,
        **{f"effective_{name}": seed for name, seed in SEEDS.items()},
    }


def system_fields(system_type: str = "edge") -> dict[str, str]:
    fields = {name: f"test value of {name}" for name in SYSTEM_FIELDS}
    fields.update(
        division="closed",
        submitter=SUBMITTER,
        status="available",
        system_type=system_type,
        number_of_nodes="1",
        accelerators_per_node="0",
    )
    return fields


def write_logs(folder: Path, values: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlperf_log_detail.txt").write_text(mllog(values))
    verdict = values.get("result_validity", "VALID")
    (folder / "mlperf_log_summary.txt").write_text(f"Result is : {verdict}\n")


def write_scenario(folder: ScenarioPaths, scenario: str, source: str | None = None) -> None:
    """A complete closed scenario folder; `source` (an edge inference) holds that one's logs."""
    logs = source or scenario
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.measurements.write_text(json.dumps(dict.fromkeys(MEASUREMENT_FIELDS, "fp32")))
    folder.user_conf.write_text(f"*.{logs}.target_qps = 100\n")
    folder.readme.write_text(f"# {scenario}\n")
    write_logs(folder.performance, performance_values(logs))
    write_logs(folder.accuracy, accuracy_values(logs))
    (folder.accuracy / "mlperf_log_accuracy.json").write_text('[{"qsl_idx": 0}]\n')
    (folder.accuracy / "accuracy.txt").write_text(GOOD_ACCURACY)
    for test in ("TEST01", "TEST04"):
        (folder.test(test)).mkdir(parents=True)
        (folder.test(test) / "verify_performance.txt").write_text("TEST PASS\n")
        write_logs(folder.test_performance(test), performance_values(logs))
    (folder.test("TEST01") / "verify_accuracy.txt").write_text("TEST PASS\n")
    folder.test_accuracy("TEST01").mkdir(parents=True)
    (folder.test_accuracy("TEST01") / "mlperf_log_accuracy.json").write_text("[]\n")


def make_tree(
    root: Path, scenarios: tuple[str, ...] = EDGE, system_type: str = "edge"
) -> SubmitterPaths:
    """A closed tree with one CPU system that meets every rule `check_tree` checks."""
    paths = SubmitterPaths(root, "closed", SUBMITTER)
    paths.systems.mkdir(parents=True)
    paths.system_json(SYSTEM_ID).write_text(json.dumps(system_fields(system_type)))
    paths.src.mkdir(parents=True)
    (paths.src / "README.md").write_text("the code\n")
    for scenario in scenarios:
        write_scenario(paths.scenario(SYSTEM_ID, scenario), scenario)
    return paths


def set_log_values(detail: Path, **values: Any) -> None:
    """Append MLLOG lines to a detail log: the last value of a key wins."""
    with detail.open("a") as handle:
        handle.write(mllog(values))


# --- run folders made from the golden runs (tests/golden/runs) -----------------------------

GOLDEN_RUN = "20261123-171232-reference-0375"  # every scenario, both modes (quick, synthetic)
SYSTEM = {  # what `up` records under manifest["host"]["system"] (orchestrator/host/facts.py)
    "cpu_model": "AMD EPYC 9654 96-Core Processor",
    "sockets": 1,
    "cores_per_socket": 96,
    "logical_cpus": 192,
    "cpu_mhz": 2400,
    "cpu_max_mhz": 3700,
    "caches": [{"level": 3, "type": "Unified", "size": "384M", "shared_by": 192}],
    "memory_gib": 755.0,
    "disks": [{"name": "nvme0n1", "bytes": 3_840_000_000_000, "kind": "NVMe SSD"}],
    "network_cards": [{"name": "eth0", "kind": "Ethernet", "driver": "mlx5", "speed_mbps": 100000}],
    "os_release": "Debian GNU/Linux 12 (bookworm)",
    "kernel": "6.1.0",
    "dmi": {"vendor": "Dell Inc.", "product": "PowerEdge R7615", "chassis": "Rack Mount Chassis"},
    "accelerators": [],
}
# what the SYSTEM facts above cannot tell
FACTS = """
[system]
status = "available"
cooling = "air"
host_memory_configuration = "12x 64 GB DDR5-4800"
"""


def make_run(golden: Path, runs: Path, backend: str = "reference", name: str = GOLDEN_RUN) -> Path:
    """A copy of a golden run folder, with recorded system facts, run as `backend`."""
    run = runs / f"{name}-{backend}"
    shutil.copytree(golden / "runs" / name, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["run_id"] = run.name
    manifest["host"]["hostname"] = "lab1"
    manifest["host"]["system"] = SYSTEM
    if backend != "reference":
        (run / "reference").rename(run / backend)
        manifest["spec"]["backend"] = backend
        for test in manifest["tests"]:
            test["dir"] = test["dir"].replace("reference/", f"{backend}/", 1)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run
