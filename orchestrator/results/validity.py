"""Is a run submission-valid? Every MLPerf rule checked against what its folder holds.

`judge_run` reads the manifest and the run folder (detail logs, user.conf, accuracy.txt, the
compliance verdicts) and returns each unmet rule with its reason; a run is submission-valid when
none is left. Nothing here trusts a flag where the logs can say it: the model by its md5, the
dataset by what the accuracy run reports, durations, counts and seeds by LoadGen's effective
values. Missing files are unmet rules, never errors: a failed run is judged too.

The rule values are those of round v6.1 (LoadGen 6.0.17's embedded mlperf.conf and the official
submission checker).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.resnet50 import (
    ACCURACY_RATIO,
    DATASET_SIZE,
    FP32_TOP1_PERCENT,
    PERFORMANCE_SAMPLE_COUNT,
)
from orchestrator.assets.model import OFFICIAL_MODELS
from orchestrator.config import Scenario
from orchestrator.errors import ResultError
from orchestrator.results.loadgen_log import (
    DETAIL,
    SUMMARY,
    DetailLog,
    parse_accuracy_line,
    parse_detail_text,
    parse_summary_text,
    unmet_constraints,
)
from orchestrator.results.rules import RULES, parse_user_conf

MIN_DURATION_MS = 600_000
CLOSED_ACCURACY_TARGET = FP32_TOP1_PERCENT * ACCURACY_RATIO  # % top-1, 99 % of FP32's
SERVER_LATENCY_NS = 15_000_000  # the Server target latency bound
SEEDS = {  # LoadGen's effective_* seeds the checker compares
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}
COMPLIANCE_TESTS = ("TEST01", "TEST04")
# The only user.conf keys a closed run may set: the submitter's expected rate or latency.
# Server's `target_latency` is bounded by the rules (checked from the log, SERVER_LATENCY_NS).
SUBMITTER_KEYS = frozenset({"target_qps", "target_latency"})
DIVISIONS = ("closed", "open")
SCENARIOS = tuple(s.value for s in Scenario)
PERFORMANCE, ACCURACY = "PerformanceOnly", "AccuracyOnly"

# rule code → what it means (the legend of `up` and `runs`)
RULE_CODES: dict[str, str] = {
    "run": "the run did not complete",
    "quick": "--quick profile",
    "model": "not the official resnet50_v1.onnx",
    "dataset": "not the full 50 000-image dataset",
    "user.conf": "user.conf overrides a rule key",
    "seeds": "LoadGen seeds differ from the rules'",
    "duration": "minimum duration below 600 s",
    "queries": "too few queries or samples",
    "latency": "Server target latency above 15 ms",
    "result": "LoadGen's verdict is not VALID",
    "errors": "LoadGen logged errors",
    "missing": "a performance or accuracy test is missing",
    "accuracy": "accuracy below the closed target",
    "compliance": "TEST01/TEST04 not run or not passed",
    "approval": "start_from_device: closed results need MLCommons approval",
}


@dataclass(frozen=True)
class Unmet:
    """One rule a run does not meet; `scenarios` lists where (empty: the whole run)."""

    rule: str  # a key of RULE_CODES
    reason: str
    scenarios: tuple[str, ...] = ()

    def line(self) -> str:
        where = f" ({', '.join(self.scenarios)})" if self.scenarios else ""
        return f"{self.rule}: {self.reason}{where}"


@dataclass(frozen=True)
class Validity:
    division: str
    unmet: tuple[Unmet, ...]

    @property
    def valid(self) -> bool:
        return not self.unmet

    def reasons(self) -> list[str]:
        """One line per unmet rule, `<rule>: <reason> (<scenarios>)`."""
        return [item.line() for item in self.unmet]

    def codes(self) -> list[str]:
        return list(dict.fromkeys(item.rule for item in self.unmet))


# what manifests written before the rules were judged say, as rule codes
LEGACY_CODES = {"--quick": "quick", "--skip-bad": "dataset"}


def rule_code(reason: str) -> str:
    """The rule code a reason line of `Validity.reasons` (or a manifest) starts with."""
    code = reason.partition(":")[0].strip()
    code = LEGACY_CODES.get(code, code)
    return code if code in RULE_CODES else "other"


# --- the rules, over one LoadGen log -----------------------------------------------------------

Finding = tuple[str, str]  # (rule, reason) found in one log


def official_md5s() -> frozenset[str]:
    return frozenset(source.md5 for source in OFFICIAL_MODELS)


def seed_findings(log: DetailLog) -> list[Finding]:
    """Seeds LoadGen used that differ from the rules' (a user.conf or audit.config set them)."""
    found = []
    for name, expected in SEEDS.items():
        value = log.get(f"effective_{name}")
        if value != expected:
            found.append(("seeds", f"{name} {value}, the rules' is {expected}"))
    return found


def performance_findings(
    log: DetailLog, scenario: str, summary: Mapping[str, str]
) -> list[Finding]:
    """What keeps one performance log from counting: duration, counts, seeds, verdict, errors."""
    found: list[Finding] = []
    rules = RULES.get(Scenario(scenario)) if scenario in SCENARIOS else None
    duration = log.get("effective_min_duration_ms")
    if not isinstance(duration, int | float) or duration < MIN_DURATION_MS:
        shown = "not logged" if duration is None else f"{float(duration) / 1000:g} s"
        found.append(("duration", f"min_duration {shown}, the rules need 600 s"))
    if rules is not None:
        samples = log.get("effective_min_sample_count")
        need = rules.min_query_count * rules.samples_per_query
        if not isinstance(samples, int | float) or samples < need:
            found.append(("queries", f"minimum {samples} samples, the rules need {need:,}"))
    count = log.get("effective_performance_sample_count")
    if isinstance(count, int | float) and count < PERFORMANCE_SAMPLE_COUNT:
        found.append(
            (
                "queries",
                f"performance sample count {count}, the rules need {PERFORMANCE_SAMPLE_COUNT}",
            )
        )
    if scenario == "Server":
        target = log.get("effective_target_latency_ns")
        if isinstance(target, int | float) and target > SERVER_LATENCY_NS:
            found.append(("latency", f"target latency {target / 1e6:g} ms, the bound is 15 ms"))
    found.extend(seed_findings(log))
    validity = log.get("result_validity")
    if validity != "VALID":
        unmet = unmet_constraints(summary)
        why = f": {', '.join(unmet)} not satisfied" if unmet else ""
        found.append(("result", f"LoadGen's verdict is {validity or 'missing'}{why}"))
    if log.errors:
        found.append(("errors", f"LoadGen logged {len(log.errors)} error(s): {log.errors[0]}"))
    return found


def accuracy_findings(
    log: DetailLog, accuracy_txt: str | None, division: str, dataset_size: int = DATASET_SIZE
) -> list[Finding]:
    """What keeps one accuracy run from counting: samples covered, score, errors."""
    found: list[Finding] = []
    total = log.get("effective_accuracy_sample_count", log.get("qsl_reported_total_count"))
    if total != dataset_size:
        found.append(("dataset", f"the accuracy run covered {total} samples, not {dataset_size:,}"))
    if log.errors:
        found.append(("errors", f"LoadGen logged {len(log.errors)} error(s): {log.errors[0]}"))
    if division == "closed":
        if accuracy_txt is None:
            found.append(("accuracy", "no accuracy.txt (not scored)"))
        else:
            try:
                percent, _, _ = parse_accuracy_line(accuracy_txt)
            except ResultError as exc:
                found.append(("accuracy", exc.message))
            else:
                if percent < CLOSED_ACCURACY_TARGET:
                    found.append(
                        (
                            "accuracy",
                            f"top-1 {percent:.3f} % is below the closed target "
                            f"{CLOSED_ACCURACY_TARGET:.4f} %",
                        )
                    )
    return found


def user_conf_findings(text: str, dataset_complete: bool) -> list[Finding]:
    """Rule keys a user.conf sets. performance_sample_count_override is only named when the data
    set is complete: otherwise the data set rule is the cause and the override its consequence."""
    found = []
    for key in sorted({entry.key for entry in parse_user_conf(text)}):
        if key in SUBMITTER_KEYS:
            continue
        if key == "performance_sample_count_override" and not dataset_complete:
            continue
        found.append(("user.conf", f"sets {key}"))
    return found


# --- compliance verdicts (the compliance runs' contract) ---------------------------------------


@dataclass(frozen=True)
class ComplianceVerdict:
    scenario: str
    test: str
    passed: bool
    reasons: tuple[str, ...]
    status: str = "verified"  # or "skipped" (not run, reasons say why), "failed", "interrupted"

    @property
    def ran(self) -> bool:
        """False when the audit was recorded as skipped (its reasons say why)."""
        return self.status != "skipped"


def compliance_verdicts(run_dir: Path, manifest: Mapping[str, Any]) -> list[ComplianceVerdict]:
    """The manifest's `compliance` records; a manifest without the key: the verification.json
    files under <backend>/<Scenario>/compliance/<TEST>/ (the run folder is the ground truth)."""
    records = manifest.get("compliance")
    if isinstance(records, list):
        return [_verdict(record) for record in records if isinstance(record, dict)]
    backend = str((manifest.get("spec") or {}).get("backend", ""))
    verdicts = []
    for path in sorted((run_dir / backend).glob("*/compliance/*/verification.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {"passed": False, "reasons": [f"{path.name} is unreadable"]}
        if isinstance(data, dict):
            data.setdefault("scenario", path.parents[2].name)
            data.setdefault("test", path.parent.name)
            verdicts.append(_verdict(data))
    return verdicts


def _verdict(record: Mapping[str, Any]) -> ComplianceVerdict:
    reasons = record.get("reasons") or []
    return ComplianceVerdict(
        scenario=str(record.get("scenario", "?")),
        test=str(record.get("test", "?")),
        passed=record.get("passed") is True,
        reasons=tuple(str(reason) for reason in reasons),
        status=str(record.get("status") or "verified"),
    )


def compliance_findings(scenario: str, verdicts: Sequence[ComplianceVerdict]) -> list[Finding]:
    found: list[Finding] = []
    for test in COMPLIANCE_TESTS:
        mine = [v for v in verdicts if v.scenario == scenario and v.test == test]
        ran = [v for v in mine if v.ran]
        if not ran:
            why = "; ".join(reason for v in mine for reason in v.reasons)
            found.append(("compliance", f"{test} not run" + (f" ({why})" if why else "")))
        elif not any(v.passed for v in ran):
            why = "; ".join(reason for v in ran for reason in v.reasons)
            found.append(("compliance", f"{test} failed" + (f": {why}" if why else "")))
    return found


# --- one run -----------------------------------------------------------------------------------


def judge_run(run_dir: Path, manifest: Mapping[str, Any], division: str = "closed") -> Validity:
    """Every rule of `division` the run in `run_dir` (its manifest already read) does not meet."""
    if division not in DIVISIONS:
        raise ValueError(f"division must be one of {DIVISIONS}, not {division!r}")
    spec = manifest.get("spec") or {}
    assets = manifest.get("assets") or {}
    findings: list[tuple[str, str, str]] = []  # (rule, reason, scenario or "")

    def add(items: Iterable[Finding], scenario: str = "") -> None:
        findings.extend((rule, reason, scenario) for rule, reason in items)

    status = str(manifest.get("status", "unknown"))
    if status != "complete":
        add([("run", f"the run is {status}")])
    if spec.get("profile") == "quick":
        add([("quick", "--quick profile: shortened durations and query counts")])
    if division == "closed":
        add(_model_findings(assets))
    add(_dataset_findings(assets))
    dataset_complete = assets.get("count") == DATASET_SIZE and not assets.get("skipped")
    verdicts = compliance_verdicts(run_dir, manifest)
    tests = {
        (str(t.get("scenario")), str(t.get("mode"))): t
        for t in manifest.get("tests") or []
        if isinstance(t, dict)
    }
    for scenario in _scenarios(spec, tests):
        folder = run_dir / str(spec.get("backend", "")) / scenario
        conf = _read(folder / "user.conf")
        if conf is not None:
            add(user_conf_findings(conf, dataset_complete), scenario)
        for mode in (PERFORMANCE, ACCURACY):
            add(_test_findings(run_dir, tests.get((scenario, mode)), mode, scenario, division),
                scenario)  # fmt: skip
        if division == "closed" and (scenario, PERFORMANCE) in tests:
            add(compliance_findings(scenario, verdicts), scenario)
        if division == "closed":
            add(_approval_findings(spec, scenario), scenario)
    return Validity(division, _grouped(findings))


def _approval_findings(spec: Mapping[str, Any], scenario: str) -> list[Finding]:
    """The QSL held in device memory (dell-trt's start_from_device) skips the host-to-device
    copy the rules count; a closed result that uses it needs MLCommons' approval first."""
    harness = spec.get("harness") or {}
    settings = (harness.get("scenarios") or {}).get(scenario) or {}
    if spec.get("device") == "cuda" and settings.get("start_from_device"):
        return [("approval", "start_from_device (QSL in GPU memory) needs MLCommons approval")]
    return []


def _scenarios(spec: Mapping[str, Any], tests: Mapping[tuple[str, str], Any]) -> list[str]:
    planned = [str(s) for s in spec.get("scenarios") or []]
    ran = [scenario for scenario, _ in tests]
    return sorted(
        set(planned) | set(ran), key=lambda s: SCENARIOS.index(s) if s in SCENARIOS else 99
    )


def _model_findings(assets: Mapping[str, Any]) -> list[Finding]:
    if not assets:
        return [("model", "no model recorded (the run stopped before its assets)")]
    if assets.get("synthetic"):
        return [("model", "synthetic random-weight model, not the official resnet50_v1.onnx")]
    md5 = assets.get("model_md5")
    if md5 not in official_md5s():
        return [("model", f"model md5 {md5} is not an official resnet50_v1.onnx")]
    return []


def _dataset_findings(assets: Mapping[str, Any]) -> list[Finding]:
    if not assets:
        return [("dataset", "no dataset recorded (the run stopped before its assets)")]
    found: list[Finding] = []
    skipped = assets.get("skipped")
    if skipped:
        count = skipped.get("count", "?") if isinstance(skipped, dict) else len(skipped)
        found.append(("dataset", f"--skip-bad: {count} damaged dataset entries left out"))
    if assets.get("synthetic"):
        found.append(("dataset", f"{assets.get('count')} synthetic images, not ImageNet"))
    elif assets.get("count") != DATASET_SIZE:
        found.append(("dataset", f"{assets.get('count')} images used, not {DATASET_SIZE:,}"))
    return found


def _test_findings(
    run_dir: Path, record: Mapping[str, Any] | None, mode: str, scenario: str, division: str
) -> list[Finding]:
    what = "performance" if mode == PERFORMANCE else "accuracy"
    if record is None:
        return [("missing", f"no {what} test")]
    if record.get("status", "ok") != "ok":
        return [("missing", f"the {what} test {record.get('status')}")]
    folder = run_dir / str(record.get("dir", ""))
    text = _read(folder / DETAIL)
    if text is None:
        return [("missing", f"the {what} test left no {DETAIL}")]
    try:
        log = parse_detail_text(text)
    except ResultError as exc:
        return [("missing", f"the {what} test's {exc.message}")]
    if mode == PERFORMANCE:
        summary = parse_summary_text(_read(folder / SUMMARY) or "")
        return performance_findings(log, scenario, summary)
    return accuracy_findings(log, _read(folder / "accuracy.txt"), division)


def _grouped(findings: Sequence[tuple[str, str, str]]) -> tuple[Unmet, ...]:
    """One Unmet per (rule, reason), naming every scenario it applies to, in first-seen order."""
    where: dict[tuple[str, str], list[str]] = {}
    for rule, reason, scenario in findings:
        scenarios = where.setdefault((rule, reason), [])
        if scenario and scenario not in scenarios:
            scenarios.append(scenario)
    order = list(RULE_CODES)
    keys = sorted(where, key=lambda key: order.index(key[0]) if key[0] in order else len(order))
    return tuple(Unmet(rule, reason, tuple(where[(rule, reason)])) for rule, reason in keys)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
