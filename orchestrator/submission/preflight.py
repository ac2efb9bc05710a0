"""`mlorch check`: the rules a run spec would break, and what a submission tree lacks.

`check_spec` judges the run `mlorch up` would start with the same flags, before hours of
LoadGen: profile, model md5, dataset size, the user.conf it would write, compliance, modes and
scenarios, and how long it would take. A tree is `tree_check.check_tree`'s; both report into
one `CheckReport`, grouped by scenario folder for the terminal (`problems_by_where`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contract.resnet50 import DATASET_SIZE
from orchestrator.config import Mode, RunSpec, Scenario
from orchestrator.results.validity import (
    SUBMITTER_KEYS,
    official_md5s,
)
from orchestrator.running.plan import estimate_seconds, human_duration
from orchestrator.running.userconf import user_conf_entries
from orchestrator.submission.layout import (
    INFERABLE,
    SCENARIOS_BY_TYPE,
)


@dataclass(frozen=True)
class Problem:
    where: str  # a path (relative to the tree), or what in the spec
    message: str

    def line(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CheckReport:
    target: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts that are not problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))


# --- a run spec --------------------------------------------------------------------------------


def check_spec(spec: RunSpec, division: str = "closed", config: Path | None = None) -> CheckReport:
    """The rules the run `mlorch up` would start with this spec breaks, before it starts."""
    source = f" --config {config}" if config else ""
    report = CheckReport(f"mlorch up {spec.backend} --device {spec.device.value}{source}")
    if spec.quick_run:
        report.add("profile", "--quick shortens durations and query counts: never valid")
    count = _spec_model_and_dataset(spec, division, report)
    if spec.skip_bad:
        report.add("--skip-bad", "a dataset with entries left out is not the full data set")
    for scenario in spec.scenarios:
        for key, value in user_conf_entries(spec, scenario, count or DATASET_SIZE).items():
            if key in SUBMITTER_KEYS:
                continue
            if key == "performance_sample_count_override" and count != DATASET_SIZE:
                continue  # the data set problem above is the cause
            report.add(f"{scenario.value}/user.conf", f"would set the rule key {key} = {value}")
    if Mode.ACCURACY not in spec.modes:
        report.add("--mode", "no accuracy runs: every scenario needs one")
    if Mode.PERFORMANCE not in spec.modes:
        report.add("--mode", "no performance runs: nothing to submit")
    _spec_scenarios(spec, division, report)
    scenarios = spec.harness.scenarios if spec.harness else {}
    for scenario in spec.scenarios:
        settings = scenarios.get(scenario.value)
        on = settings is not None and settings.start_from_device
        if division == "closed" and on and spec.device.value == "cuda":
            report.add(f"{scenario.value}/start_from_device", "the QSL in GPU memory needs "
                       "MLCommons approval before a closed result may use it")  # fmt: skip
    compliance = spec.model_dump().get("compliance")
    if division == "closed" and not compliance:
        why = (
            "--no-compliance (or --quick) skips them"
            if compliance is False
            else "this mlorch's `up` does not run them"
        )
        report.add("compliance", f"TEST01 and TEST04 are needed for every scenario; {why}")
    _estimate(spec, count or DATASET_SIZE, bool(compliance), report)
    return report


def _spec_model_and_dataset(spec: RunSpec, division: str, report: CheckReport) -> int | None:
    """Problems of the model and dataset; the number of images the run would use."""
    from contract.layout import read_val_map, val_map_path
    from orchestrator.assets.model import file_md5

    if spec.synthetic:
        report.add("--model/--dataset", "none given: the synthetic random-weight model and "
                   f"{spec.synthetic_images} generated images")  # fmt: skip
        if spec.calibration_list is not None:
            report.add("--calibration-list", "unused: a synthetic run calibrates on the "
                       "synthetic images")  # fmt: skip
        return spec.dataset_count or spec.synthetic_images
    if spec.model is None or spec.dataset is None:
        report.add("--model/--dataset", "both are needed (one is missing)")
        return None
    if spec.harness is not None and spec.calibration_list is None:
        report.add("--calibration-list", "dell-trt on a real dataset calibrates on the official "
                   "cal_image_list_option_1.txt; none given")  # fmt: skip
    elif spec.calibration_list is not None and not spec.calibration_list.is_file():
        report.add(str(spec.calibration_list), "calibration list not found")
    if not spec.model.is_file():
        report.add(str(spec.model), "model file not found")
    elif division == "closed":
        md5 = file_md5(spec.model)
        if md5 not in official_md5s():
            report.add(str(spec.model), f"md5 {md5} is not an official resnet50_v1.onnx")
    try:
        listed = len(read_val_map(spec.dataset))
    except (OSError, ValueError) as exc:
        report.add(str(val_map_path(spec.dataset)), f"unreadable: {exc}")
        return None
    count = min(spec.dataset_count or listed, listed)
    if spec.quick_run and spec.dataset_count is None:
        count = min(count, spec.quick.max_dataset_count)
    if listed != DATASET_SIZE:
        report.add(str(val_map_path(spec.dataset)), f"lists {listed} images, not {DATASET_SIZE:,}")
    elif count != DATASET_SIZE:
        report.add("--count", f"the run would use {count} images, not {DATASET_SIZE:,}")
    return count


def _spec_scenarios(spec: RunSpec, division: str, report: CheckReport) -> None:
    ran = {scenario.value for scenario in spec.scenarios}
    for scenario in SCENARIOS_BY_TYPE["edge"]:
        if scenario in ran:
            continue
        source = next((s for s in INFERABLE.get(scenario, ()) if s in ran), None)
        if source is not None:
            report.notes.append(f"{scenario} would be inferred from {source} (edge rule)")
        elif division == "closed":
            report.add("--scenario", f"no {scenario}: the closed edge suite needs it")


def _estimate(spec: RunSpec, count: int, compliance: bool, report: CheckReport) -> None:
    """LoadGen time from the rule minimums (600 s and the query counts of each performance
    test, every image once per accuracy test) at the tuning's expected rates."""
    scenarios = list(spec.scenarios)
    performance = (
        [estimate_seconds(spec, s, Mode.PERFORMANCE, count) for s in scenarios]
        if Mode.PERFORMANCE in spec.modes
        else []
    )
    accuracy = (
        [estimate_seconds(spec, s, Mode.ACCURACY, count) for s in scenarios]
        if Mode.ACCURACY in spec.modes
        else []
    )
    # TEST01 and TEST04 each run as long as the scenario's performance test
    audits = 2 * sum(performance) if compliance else 0.0
    parts = [f"{len(performance)} performance {human_duration(sum(performance))}"]
    parts.append(f"{len(accuracy)} accuracy {human_duration(sum(accuracy))} ({count:,} images)")
    if compliance:
        parts.append(f"{2 * len(performance)} compliance {human_duration(audits)}")
    total = sum(performance) + sum(accuracy) + audits
    report.notes.append(
        f"estimated LoadGen time {human_duration(total)}: {', '.join(parts)}, at the tuning's "
        "expected rates (container starts and warm-up not counted)"
    )
    for scenario, seconds in zip(scenarios, performance, strict=False):
        if scenario is not Scenario.SERVER and seconds > 3 * 600:
            report.notes.append(
                f"{scenario.value}: the minimum query count, not the 600 s, sets its "
                f"length (≈ {human_duration(seconds)})"
            )


SCENARIO_DEPTH = 6  # division/submitter/results/system/benchmark/scenario


def problems_by_where(report: CheckReport) -> Iterator[tuple[str, list[str]]]:
    """The report's problems grouped by scenario folder (or path), in order of appearance;
    each message starts with the rest of its path."""
    grouped: dict[str, list[str]] = {}
    for problem in report.problems:
        parts = Path(problem.where).parts
        if len(parts) > SCENARIO_DEPTH and parts[2] == "results":
            head, rest = str(Path(*parts[:SCENARIO_DEPTH])), str(Path(*parts[SCENARIO_DEPTH:]))
            grouped.setdefault(head, []).append(f"{rest}: {problem.message}")
        else:
            grouped.setdefault(problem.where, []).append(problem.message)
    yield from grouped.items()
