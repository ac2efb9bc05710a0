"""The v6.1 submission layout (MLCommons `tools/submission`, round v6.1), path by path.

```
<division>/<submitter>/systems/<system_desc_id>.json
<division>/<submitter>/src/                                       (must exist, non-empty)
<division>/<submitter>/results/<system_desc_id>/resnet50/<Scenario>/
    measurements.json  user.conf  README.md
    performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
    accuracy/{mlperf_log_summary.txt, mlperf_log_detail.txt, mlperf_log_accuracy.json,
              accuracy.txt}
    TEST01/{verify_accuracy.txt, verify_performance.txt, performance/run_1/{summary, detail},
            accuracy/{mlperf_log_accuracy.json, accuracy.txt}}
    TEST04/{verify_performance.txt, performance/run_1/{summary, detail}}
```

The checker lists the scenario folders of `resnet50/` (any other folder there would be taken for
a scenario) and the plain files of `performance/run_1` and `accuracy/` folders, never their
sub-folders; `performance/power/` would declare a power result. mlorch's telemetry therefore
goes in a `telemetry/` sub-folder beside the official files of each test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from orchestrator.results.compliance import VERIFY_ACCURACY, VERIFY_PERFORMANCE
from orchestrator.results.loadgen_log import ACCURACY_LOG, DETAIL, SUMMARY
from orchestrator.results.truncation import ACCURACY_TXT

VERSION = "v6.1"
BENCHMARK = "resnet50"  # the checker maps it to its model "resnet"


class Division(StrEnum):
    CLOSED = "closed"
    OPEN = "open"


SYSTEM_TYPES = ("edge", "datacenter,edge")
EDGE_SCENARIOS = ("SingleStream", "MultiStream", "Offline")
SCENARIOS_BY_TYPE = {
    "edge": EDGE_SCENARIOS,
    "datacenter,edge": (*EDGE_SCENARIOS, "Server"),
}
# What an edge system may infer from which run (the checker's pairs), best source first.
INFERABLE: dict[str, tuple[str, ...]] = {
    "MultiStream": ("SingleStream",),
    "Offline": ("MultiStream", "SingleStream"),
}
TELEMETRY = "telemetry"
MEASUREMENTS = "measurements.json"
USER_CONF = "user.conf"
README = "README.md"
LOG_FILES = (SUMMARY, DETAIL)
ACCURACY_FILES = (SUMMARY, DETAIL, ACCURACY_LOG, ACCURACY_TXT)
# measurements.json fields the checker wants non-empty
MEASUREMENT_FIELDS = (
    "input_data_types",
    "retraining",
    "starting_weights_filename",
    "weight_data_types",
    "weight_transformations",
)


@dataclass(frozen=True)
class SubmitterPaths:
    root: Path  # the tree's root (holds closed/, open/)
    division: str
    submitter: str

    @property
    def base(self) -> Path:
        return self.root / self.division / self.submitter

    @property
    def systems(self) -> Path:
        return self.base / "systems"

    @property
    def src(self) -> Path:
        return self.base / "src"

    @property
    def results(self) -> Path:
        return self.base / "results"

    def system_json(self, system_id: str) -> Path:
        return self.systems / f"{system_id}.json"

    def scenario(self, system_id: str, scenario: str) -> ScenarioPaths:
        return ScenarioPaths(self.results / system_id / BENCHMARK / scenario)


@dataclass(frozen=True)
class ScenarioPaths:
    root: Path

    @property
    def measurements(self) -> Path:
        return self.root / MEASUREMENTS

    @property
    def user_conf(self) -> Path:
        return self.root / USER_CONF

    @property
    def readme(self) -> Path:
        return self.root / README

    @property
    def performance(self) -> Path:
        return self.root / "performance" / "run_1"

    @property
    def accuracy(self) -> Path:
        return self.root / "accuracy"

    def test(self, name: str) -> Path:
        return self.root / name

    def test_performance(self, name: str) -> Path:
        return self.root / name / "performance" / "run_1"

    def test_accuracy(self, name: str) -> Path:
        return self.root / name / "accuracy"

    def required_files(self) -> list[Path]:
        """Every file the checker needs in this scenario folder, compliance tests aside."""
        files = [self.measurements, self.user_conf, self.readme]
        files += [self.performance / name for name in LOG_FILES]
        files += [self.accuracy / name for name in ACCURACY_FILES]
        return files

    def compliance_files(self, test: str) -> list[Path]:
        """The files of one compliance test folder (closed division)."""
        verdicts = (
            (VERIFY_ACCURACY, VERIFY_PERFORMANCE) if test == "TEST01" else (VERIFY_PERFORMANCE,)
        )
        files = [self.test(test) / name for name in verdicts]
        files += [self.test_performance(test) / name for name in LOG_FILES]
        if test == "TEST01":
            files.append(self.test_accuracy(test) / ACCURACY_LOG)
        return files


def safe_name(text: str) -> str:
    """`text` as a folder name the MLCommons repository accepts: no spaces, no leading dot."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text.strip())
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-.") or "unnamed"
