"""MLPerf compliance audits of ResNet50: TEST01 and TEST04, one LoadGen test each.

An audit is a performance run whose settings LoadGen overrides from an `audit.config` file:
TEST01 also logs a seeded sample of the responses (to compare with the accuracy run), TEST04
issues one sample over and over (a SUT that caches answers would get faster). The files are
generated here from the rules' values, never copied; which audits a run can do depends on the
tests it has to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.config import Mode, RunSpec, Scenario

AUDIT_CONFIG = "audit.config"
COMPLIANCE_DIR = "compliance"  # runs/<id>/<backend>/<Scenario>/compliance/<TEST>/

# LoadGen's config-file code of TestMode::PerformanceOnly (0 submission, 1 accuracy, 2 perf)
PERFORMANCE_MODE = 2
TEST01_ACCURACY_LOG_RNG_SEED = 720381539243781796
TEST01_ACCURACY_LOG_SAMPLING_TARGET = 4096
TEST04_SAME_INDEX = 3


class AuditTest(StrEnum):
    TEST01 = "TEST01"
    TEST04 = "TEST04"

    @property
    def purpose(self) -> str:
        if self is AuditTest.TEST01:
            return "logged responses equal the accuracy run's, performance within ±10 %"
        return "one sample issued over and over is not more than 10 % faster"


def audit_settings(test: AuditTest) -> dict[str, str]:
    """`model.scenario.key` → value, as LoadGen reads them from audit.config.

    LoadGen looks the audit file up with the model `*` (it does not know the benchmark's name),
    so every key is scoped `*.<scenario>.` or `*.*.`.
    """
    if test is AuditTest.TEST01:
        return {
            "*.*.mode": str(PERFORMANCE_MODE),
            "*.*.accuracy_log_rng_seed": str(TEST01_ACCURACY_LOG_RNG_SEED),
            "*.*.accuracy_log_sampling_target": str(TEST01_ACCURACY_LOG_SAMPLING_TARGET),
        }
    settings: dict[str, str] = {}
    for scenario in Scenario:
        scope = f"*.{scenario.value}"
        settings[f"{scope}.mode"] = str(PERFORMANCE_MODE)
        settings[f"{scope}.performance_issue_unique"] = "0"
        settings[f"{scope}.performance_issue_same"] = "1"
        settings[f"{scope}.performance_issue_same_index"] = str(TEST04_SAME_INDEX)
    return settings


def render_audit_config(test: AuditTest) -> str:
    """The text of one audit's audit.config (the same for every scenario)."""
    header = [
        f"# mlorch audit.config: MLPerf compliance {test.value} ({test.purpose})",
        "# keys: model.scenario.key (LoadGen applies them with the model '*'); "
        f"mode {PERFORMANCE_MODE} = PerformanceOnly",
    ]
    lines = [f"{key} = {value}" for key, value in audit_settings(test).items()]
    return "\n".join([*header, *lines]) + "\n"


def applied_settings(test: AuditTest) -> dict[str, Any]:
    """Detail-log keys and the values they take when LoadGen applied the audit.config."""
    common: dict[str, Any] = {"effective_test_mode": Mode.PERFORMANCE.value}
    if test is AuditTest.TEST01:
        return {
            **common,
            "effective_accuracy_log_rng_seed": TEST01_ACCURACY_LOG_RNG_SEED,
            "effective_accuracy_log_sampling_target": TEST01_ACCURACY_LOG_SAMPLING_TARGET,
        }
    return {
        **common,
        "effective_performance_issue_unique": False,
        "effective_performance_issue_same": True,
        "effective_performance_issue_same_index": TEST04_SAME_INDEX,
    }


@dataclass(frozen=True)
class AuditPlan:
    """The audits a run does (per scenario) and those it cannot, with the reason."""

    tests: tuple[AuditTest, ...]
    skipped: tuple[tuple[AuditTest, str], ...] = ()


OFF_REASON = "compliance audits off (--no-compliance, or the --quick default)"


def plan_audits(spec: RunSpec) -> AuditPlan:
    """Both audits compare with the scenario's performance run; TEST01 also with its accuracy
    run. An audit with nothing to compare with is not run (it could only fail); every audit not
    run is listed with the reason."""
    if not spec.compliance:
        return AuditPlan((), tuple((test, OFF_REASON) for test in AuditTest))
    if Mode.PERFORMANCE not in spec.modes:
        why = "needs the performance run to compare with (-m PerformanceOnly)"
        return AuditPlan((), tuple((test, why) for test in AuditTest))
    if Mode.ACCURACY not in spec.modes:
        why = "needs the accuracy run to compare responses with (-m AccuracyOnly)"
        return AuditPlan((AuditTest.TEST04,), ((AuditTest.TEST01, why),))
    return AuditPlan(tuple(AuditTest))
