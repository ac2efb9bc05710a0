"""Verdicts of the compliance audits TEST01 and TEST04, with the semantics of MLCommons'
verification scripts (compliance/TEST01/verify_accuracy.py and verify_performance.py,
compliance/TEST04/verify_performance.py), implemented here.

TEST01: every response the audit logged equals the accuracy run's for the same qsl_idx (the
first value in the backend's response dtype; at least one must match), and the audit's metric
from the detail log (Offline samples/s, Server completed samples/s, SingleStream/MultiStream
early-stopping latency) lies within ±10 % of the performance run's (±20 % for SingleStream under
0.2 ms and MultiStream under 1.6 ms); both runs VALID, no LoadGen errors, same Server target.
TEST04: the audit's score from the summary (Offline/Server throughput, 1e9 / early-stopping
latency in ns for the streams) is below the performance run's × 1.10. The script tests its 20 %
exception on that converted score, so SingleStream gets 20 % whenever its latency is 5 µs or
more and MultiStream whenever it is 625 ns or more; verdicts here are the script's, that quirk
included. Both summaries VALID (Server: the same target latency).

Each audit folder gets what the official scripts write (`verify_accuracy.txt`,
`verify_performance.txt`: their figure lines, then `TEST PASS` or `TEST FAIL...`; the
submission checker looks for `TEST PASS`) and mlorch's `verification.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.locks import atomic_write_text
from orchestrator.errors import ResultError
from orchestrator.results.accuracy import read_responses
from orchestrator.results.audits import AuditTest, applied_settings
from orchestrator.results.loadgen_log import (
    ACCURACY_LOG,
    DETAIL,
    SUMMARY,
    DetailLog,
    parse_detail_text,
)
from orchestrator.results.truncation import require_untruncated

VERIFY_ACCURACY = "verify_accuracy.txt"
VERIFY_PERFORMANCE = "verify_performance.txt"
VERIFICATION = "verification.json"
PASS_LINE = "TEST PASS"
AUDIT_NOTICE = "Found Audit Config file"  # LoadGen's warning when it applies an audit.config
MISMATCHES_SHOWN = 8

THRESHOLD = 0.10
# The exception for very short latencies (ns): TEST01 compares the latency with it.
RELAXED_THRESHOLD = 0.20
RELAXED_BELOW = {"SingleStream": 200_000.0, "MultiStream": 1_600_000.0}

TEST01_SCORE_KEY = {
    "Offline": "result_samples_per_second",
    "Server": "result_completed_samples_per_sec",
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
}
# TEST04 reads the summary; the streams' score is 1e9 / the early-stopping estimate (ns).
_EARLY_STOPPING = {
    "SingleStream": re.compile(r".*Early stopping (90th|90\.0th|99\.9th) percentile estimate"),
    "MultiStream": re.compile(r".*Early stopping (99th|99\.0th) percentile estimate"),
}
_THROUGHPUT = {"Server": "Completed samples per second", "Offline": "Samples per second"}


@dataclass
class CheckReport:
    """One verification script's run: its output lines, verdict, figures and reasons."""

    lines: list[str] = field(default_factory=list)
    passed: bool = False
    figures: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def fail(self, line: str, reason: str) -> CheckReport:
        self.lines.append(line)
        self.reasons.append(reason)
        self.passed = False
        return self

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def record(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.figures}


@dataclass(frozen=True)
class Verification:
    """One audit's verdict, as verification.json holds it."""

    test: str
    scenario: str
    passed: bool
    checks: dict[str, Any]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "scenario": self.scenario,
            "passed": self.passed,
            "checks": self.checks,
            "reasons": list(self.reasons),
        }


# -- TEST01, accuracy: the audit's logged responses against the accuracy run's ---------------


@dataclass(frozen=True)
class ResponseComparison:
    """The counts verify_accuracy.py prints (same names), plus the qsl indices that differ."""

    num_acc_log_entries: int
    num_acc_log_duplicate_keys: int
    num_acc_log_data_mismatch: int
    num_perf_log_entries: int
    num_perf_log_qsl_idx_match: int
    num_perf_log_data_mismatch: int
    num_missing_qsl_idxs: int
    mismatched_qsl_idxs: tuple[int, ...]

    @property
    def passed(self) -> bool:
        return self.num_perf_log_data_mismatch == 0 and self.num_perf_log_qsl_idx_match > 0

    def counts(self) -> dict[str, int]:
        return {
            "num_acc_log_entries": self.num_acc_log_entries,
            "num_acc_log_duplicate_keys": self.num_acc_log_duplicate_keys,
            "num_acc_log_data_mismatch": self.num_acc_log_data_mismatch,
            "num_perf_log_entries": self.num_perf_log_entries,
            "num_perf_log_qsl_idx_match": self.num_perf_log_qsl_idx_match,
            "num_perf_log_data_mismatch": self.num_perf_log_data_mismatch,
            "num_missing_qsl_idxs": self.num_missing_qsl_idxs,
        }


def _values(data: bytes, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    return np.frombuffer(data, dtype=dtype, count=len(data) // dtype.itemsize)


def same_answer(reference: bytes, test: bytes, dtype: str) -> bool:
    """The official comparison: the first value in `dtype`; an empty response equals only an
    empty one."""
    kind = np.dtype(dtype)
    ref, got = _values(reference, kind), _values(test, kind)
    if ref.size == 0 or got.size == 0:
        return bool(ref.size == got.size)
    return bool(ref[0] == got[0])


def compare_responses(accuracy_log: Path, audit_log: Path, dtype: str) -> ResponseComparison:
    """Each response of `audit_log` against the accuracy run's first response for its qsl_idx.

    The accuracy run's own repeats are counted (and whether they disagree), as the official
    script does; they do not decide the verdict.
    """
    reference: dict[int, bytes] = {}
    duplicates = disagreeing = 0
    accuracy = read_responses(accuracy_log)
    for index, data in accuracy:
        if index in reference:
            duplicates += 1
            disagreeing += reference[index] != data
        else:
            reference[index] = data
    matched = missing = 0
    mismatched: list[int] = []
    audit = read_responses(audit_log)
    for index, data in audit:
        expected = reference.get(index)
        if expected is None:
            missing += 1
            continue
        matched += 1
        if not same_answer(expected, data, dtype):
            mismatched.append(index)
    return ResponseComparison(
        num_acc_log_entries=len(accuracy),
        num_acc_log_duplicate_keys=duplicates,
        num_acc_log_data_mismatch=disagreeing,
        num_perf_log_entries=len(audit),
        num_perf_log_qsl_idx_match=matched,
        num_perf_log_data_mismatch=len(mismatched),
        num_missing_qsl_idxs=missing,
        mismatched_qsl_idxs=tuple(mismatched),
    )


def check_test01_accuracy(
    accuracy_dir: Path, audit_dir: Path, dtype: str, shown: Callable[[Path], str]
) -> CheckReport:
    """verify_accuracy.txt of TEST01. Refuses (ResultError) a truncated accuracy log."""
    report = CheckReport(lines=["Verifying accuracy. This might take a while..."])
    reference = accuracy_dir / ACCURACY_LOG
    logged = audit_dir / ACCURACY_LOG
    if not reference.is_file():
        return report.fail(
            f"TEST FAIL: no accuracy log of the accuracy run ({shown(reference)})",
            "no accuracy run of this scenario to compare the audit's responses with",
        )
    require_untruncated(accuracy_dir)
    if not logged.is_file():
        return report.fail(
            f"TEST FAIL: the audit run logged no responses ({shown(logged)})",
            "the TEST01 audit wrote no accuracy log",
        )
    try:
        found = compare_responses(reference, logged, dtype)
    except ResultError as exc:
        return report.fail(f"TEST FAIL: {exc.message}", exc.message)
    report.lines += ["Reading accuracy mode results...", "Reading performance mode results..."]
    report.lines += [f"{key} = {value}" for key, value in found.counts().items()]
    report.figures = {"dtype": dtype, **found.counts()}
    if found.mismatched_qsl_idxs:
        report.figures["mismatched_qsl_idxs"] = list(found.mismatched_qsl_idxs[:MISMATCHES_SHOWN])
    report.passed = found.passed
    report.lines.append(PASS_LINE if found.passed else "TEST FAIL")
    if found.num_perf_log_data_mismatch:
        shown_idxs = ", ".join(str(i) for i in found.mismatched_qsl_idxs[:MISMATCHES_SHOWN])
        report.reasons.append(
            f"{found.num_perf_log_data_mismatch} of {found.num_perf_log_entries} logged "
            f"responses differ from the accuracy run's (qsl_idx {shown_idxs})"
        )
    elif not found.num_perf_log_qsl_idx_match:
        report.reasons.append("no logged response has a qsl_idx the accuracy run answered")
    return report


# -- performance: the audit's score against the performance run's ----------------------------


def _threshold(scenario: str, reference_score: float) -> float:
    below = RELAXED_BELOW.get(scenario)
    return RELAXED_THRESHOLD if below is not None and reference_score <= below else THRESHOLD


@dataclass(frozen=True)
class _Scored:
    scenario: str
    score: float
    target_latency: Any


def _detail_score(path: Path, shown: str) -> tuple[_Scored | None, str]:
    """(scored log, "") or (None, why it fails) for TEST01's reading of a detail log."""
    if not path.is_file():
        return None, f"no {DETAIL} ({shown})"
    try:
        log: DetailLog = parse_detail_text(path.read_text(errors="replace"))
    except ResultError as exc:
        return None, f"{shown}: {exc.message}"
    scenario = str(log.get("effective_scenario", ""))
    key = TEST01_SCORE_KEY.get(scenario)
    raw = log.get(key) if key else None
    if raw is None:
        return None, f"no {key or 'effective_scenario'} in {shown}"
    if log.get("result_validity") != "VALID":
        return None, f"Invalid results in {shown}"
    if log.errors:  # the official script stops there too (no TEST PASS line)
        return None, f"{len(log.errors)} ERROR reported in {shown}"
    return _Scored(scenario, float(raw), log.get("effective_target_latency_ns")), ""


def check_test01_performance(
    performance_dir: Path, audit_dir: Path, shown: Callable[[Path], str]
) -> CheckReport:
    """verify_performance.txt of TEST01: detail logs, within ±threshold."""
    report = CheckReport(lines=["Verifying performance."])
    reference_path, test_path = performance_dir / DETAIL, audit_dir / DETAIL
    scored: list[_Scored] = []
    for run, path in (("performance run", reference_path), ("audit run", test_path)):
        found, failed = _detail_score(path, shown(path))
        if found is None:
            return report.fail(f"TEST FAIL: {failed}", f"{run}: {failed}")
        scored.append(found)
    return _compare_scores(report, scored[0], scored[1], within=True)


def _compare_scores(
    report: CheckReport, reference: _Scored, test: _Scored, *, within: bool
) -> CheckReport:
    if test.scenario != reference.scenario:
        return report.fail(
            "TEST FAIL: Test and reference scenarios do not match!",
            f"scenarios differ: performance run {reference.scenario}, audit {test.scenario}",
        )
    if reference.scenario == "Server" and test.target_latency != reference.target_latency:
        return report.fail(
            "TEST FAIL: Server target latency mismatch",
            f"Server target latency differs: {reference.target_latency} vs {test.target_latency}",
        )
    # TEST01's script capitalises its figure lines, TEST04's does not
    ref_label, test_label = ("Reference", "Test") if within else ("reference", "test")
    report.lines += [f"{ref_label} score = {reference.score}", f"{test_label} score = {test.score}"]
    threshold = _threshold(reference.scenario, reference.score)
    low, high = reference.score * (1 - threshold), reference.score * (1 + threshold)
    passed = low <= test.score <= high if within else test.score < high
    report.figures = {
        "reference_score": reference.score,
        "test_score": test.score,
        "threshold": threshold,
        "ratio": test.score / reference.score if reference.score else None,
    }
    report.passed = passed
    if passed:
        report.lines.append(PASS_LINE)
        return report
    report.lines.append("TEST FAIL: Test score invalid")
    report.reasons.append(_score_reason(reference, test, threshold, within=within))
    return report


def _score_reason(reference: _Scored, test: _Scored, threshold: float, *, within: bool) -> str:
    """Why a score fails, in the metric's own units (TEST04's stream score is 1e9 / latency)."""
    streams = reference.scenario in RELAXED_BELOW
    what = "early-stopping latency" if streams else "samples/s"

    def shown(score: float) -> str:
        if not streams:
            return f"{score:,.2f} {what}"
        latency_ns = score if within else (1e9 / score if score else float("inf"))
        return f"{latency_ns / 1e6:,.3f} ms"

    audit, performance = shown(test.score), shown(reference.score)
    change = (test.score / reference.score - 1) * 100 if reference.score else float("inf")
    if streams:
        audit = f"{what} {audit}"
    if within:
        return (
            f"audit {audit} is {change:+.1f} % off the performance run's {performance} "
            f"(allowed: ±{threshold:.0%})"
        )
    return (
        f"audit {audit} is {change:.1f} % faster than the performance run's {performance} "
        f"(allowed: at most {threshold:.0%} faster)"
    )


def _summary_score(path: Path) -> tuple[_Scored | None, bool | None, int]:
    """TEST04's reading of a summary: (score or None, VALID?, errors reported)."""
    scenario, score, valid, errors, target = "", None, None, 0, None
    for line in path.read_text(errors="replace").splitlines():
        value = line.split(": ", 1)[1].strip() if ": " in line else ""
        if line.startswith("Scenario"):
            scenario = value
        elif scenario in _EARLY_STOPPING and _EARLY_STOPPING[scenario].match(line):
            score = 1e9 / float(value) if value and float(value) > 0 else None
        elif scenario in _THROUGHPUT and line.startswith(_THROUGHPUT[scenario]):
            score = float(value) if value else None
        elif line.startswith("target_latency (ns)"):
            target = value
        elif line.startswith("Result is"):
            valid = value == "VALID"
        elif match := re.match(r"(\d+) ERROR", line):
            errors = int(match.group(1))
    scored = _Scored(scenario, score, target) if scenario and score is not None else None
    return scored, valid, errors


def check_test04_performance(
    performance_dir: Path, audit_dir: Path, shown: Callable[[Path], str]
) -> CheckReport:
    """verify_performance.txt of TEST04: summaries, the audit not faster than allowed."""
    report = CheckReport(lines=["Verifying performance."])
    scored: list[_Scored] = []
    for who, path in (("Reference", performance_dir / SUMMARY), ("Test", audit_dir / SUMMARY)):
        run = "performance run" if who == "Reference" else "audit run"
        if not path.is_file():
            return report.fail(f"TEST FAIL: no {SUMMARY} ({shown(path)})", f"{run}: no summary")
        try:
            found, valid, errors = _summary_score(path)
        except ValueError as exc:
            return report.fail(f"TEST FAIL: {shown(path)}: {exc}", f"{run}: unreadable summary")
        if valid is False:
            return report.fail(
                f"TEST FAIL: {who} results are invalid", f"{run}: LoadGen's verdict is INVALID"
            )
        if errors:
            report.lines.append(f"WARNING: {errors} ERROR reported in {who.lower()} results")
        if found is None:
            return report.fail(f"TEST FAIL: no score in {shown(path)}", f"{run}: no score")
        scored.append(found)
    return _compare_scores(report, scored[0], scored[1], within=False)


# -- LoadGen really applied the audit.config ------------------------------------------------


def check_applied(test: AuditTest, audit_dir: Path) -> tuple[bool, list[str]]:
    """The audit run's detail log shows LoadGen found the audit.config and took its values."""
    path = audit_dir / DETAIL
    if not path.is_file():
        return False, [f"the audit wrote no {DETAIL}"]
    try:
        log = parse_detail_text(path.read_text(errors="replace"))
    except ResultError as exc:
        return False, [exc.message]
    reasons = []
    if not any(AUDIT_NOTICE in warning for warning in log.warnings):
        reasons.append("LoadGen did not report finding the audit.config")
    for key, expected in applied_settings(test).items():
        if log.get(key) != expected:
            reasons.append(f"{key} is {log.get(key)!r}, the audit.config sets {expected!r}")
    return not reasons, reasons


# -- one audit --------------------------------------------------------------------------------


def verify_audit(
    test: AuditTest, scenario: str, scenario_dir: Path, audit_dir: Path, dtype: str
) -> Verification:
    """Verify one audit against the scenario's performance (and, TEST01, accuracy) run in
    `scenario_dir` (its `performance/` and `accuracy/` folders) and write the verify files and
    verification.json into `audit_dir`. Refuses (ResultError) a truncated accuracy log."""

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(scenario_dir))
        except ValueError:
            return path.name

    performance_dir, accuracy_dir = scenario_dir / "performance", scenario_dir / "accuracy"
    checks: dict[str, Any] = {}
    reasons: list[str] = []
    applied, why = check_applied(test, audit_dir)
    checks["audit_config_applied"] = applied
    reasons += why
    if test is AuditTest.TEST01:
        accuracy = check_test01_accuracy(accuracy_dir, audit_dir, dtype, shown)
        atomic_write_text(audit_dir / VERIFY_ACCURACY, accuracy.text())
        checks["accuracy"] = accuracy.record()
        reasons += accuracy.reasons
        performance = check_test01_performance(performance_dir, audit_dir, shown)
    else:
        accuracy = None
        performance = check_test04_performance(performance_dir, audit_dir, shown)
    atomic_write_text(audit_dir / VERIFY_PERFORMANCE, performance.text())
    checks["performance"] = performance.record()
    reasons += performance.reasons
    passed = applied and performance.passed and (accuracy is None or accuracy.passed)
    verification = Verification(test.value, scenario, passed, checks, tuple(reasons))
    atomic_write_text(audit_dir / VERIFICATION, json.dumps(verification.to_dict(), indent=2) + "\n")
    return verification
