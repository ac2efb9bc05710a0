"""Preflight of a submission tree: every file of the v6.1 layout, the system fields, the LoadGen
logs (seeds, durations, counts, verdicts), accuracy and its truncation, compliance, and what the
MLCommons results repository refuses; each problem named with its path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import ResultError
from orchestrator.results.compliance import VERIFY_ACCURACY, VERIFY_PERFORMANCE
from orchestrator.results.loadgen_log import (
    ACCURACY_LOG,
    DETAIL,
    SUMMARY,
    DetailLog,
    parse_detail_text,
    parse_summary_text,
)
from orchestrator.results.truncation import ACCURACY_TXT, MAX_TRUNCATED_BYTES, recorded_hash
from orchestrator.results.validity import (
    COMPLIANCE_TESTS,
    DIVISIONS,
    Finding,
    accuracy_findings,
    performance_findings,
    seed_findings,
)
from orchestrator.submission.layout import (
    BENCHMARK,
    INFERABLE,
    LOG_FILES,
    MEASUREMENT_FIELDS,
    SCENARIOS_BY_TYPE,
    SYSTEM_TYPES,
    ScenarioPaths,
    SubmitterPaths,
)
from orchestrator.submission.preflight import CheckReport
from orchestrator.submission.system import MEANINGFUL_FIELDS, STATUSES, SYSTEM_FIELDS

MAX_FILE_BYTES = 50 * 1024 * 1024  # the MLCommons results repository refuses larger files
PASS = "TEST PASS"
# plain files a compliance test's performance/run_1 may hold besides the two logs
COMPLIANCE_OPTIONAL = frozenset({ACCURACY_LOG, "mlperf_log_trace.json", "results.json", ".gitkeep"})


def check_tree(root: Path) -> CheckReport:
    """Every problem of the submission tree under `root`, each named with its path."""
    report = CheckReport(str(root))
    if not root.is_dir():
        report.add(str(root), "not a folder")
        return report
    _repository_rules(root, report)
    divisions = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in DIVISIONS]
    if not divisions:
        report.add(".", "no closed/ or open/ folder: not a submission tree")
    for division in divisions:
        for submitter in sorted(p for p in division.iterdir() if p.is_dir()):
            _check_submitter(root, SubmitterPaths(root, division.name, submitter.name), report)
    return report


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _repository_rules(root: Path, report: CheckReport) -> None:
    """What the MLCommons results repository refuses (repository_checks.sh)."""
    for path in sorted(root.rglob("*")):
        where = _rel(root, path)
        if path.is_symlink():
            report.add(where, "a symbolic link (the repository refuses links)")
        elif path.name.startswith("."):
            report.add(where, "a hidden name (starts with '.')")
        elif " " in path.name:
            report.add(where, "a space in the name")
        elif path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            report.add(where, f"{path.stat().st_size / 2**20:.0f} MiB: files must stay under 50 MB")


def _check_submitter(root: Path, paths: SubmitterPaths, report: CheckReport) -> None:
    if not paths.src.is_dir() or not any(paths.src.iterdir()):
        report.add(_rel(root, paths.src), "missing or empty (src/ must hold the code)")
    results = (
        sorted(p for p in paths.results.iterdir() if p.is_dir()) if paths.results.is_dir() else []
    )
    if not results:
        report.add(_rel(root, paths.results), "no results")
    systems = {p.stem for p in paths.systems.glob("*.json")} if paths.systems.is_dir() else set()
    for orphan in sorted(systems - {r.name for r in results}):
        report.add(_rel(root, paths.system_json(orphan)), "a system without results")
    for system_dir in results:
        system = _check_system_json(root, paths, system_dir.name, report)
        system_type = str(system.get("system_type", "edge")) if system else "edge"
        benchmark = system_dir / BENCHMARK
        others = [p.name for p in system_dir.iterdir() if p.is_dir() and p.name != BENCHMARK]
        if others:
            report.notes.append(f"{_rel(root, system_dir)}: not checked: {', '.join(others)}")
        if not benchmark.is_dir():
            report.add(_rel(root, benchmark), "missing")
            continue
        _check_benchmark(root, paths.division, benchmark, system_type, report)


def _check_system_json(
    root: Path, paths: SubmitterPaths, system_id: str, report: CheckReport
) -> dict[str, Any] | None:
    path = paths.system_json(system_id)
    where = _rel(root, path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        report.add(where, "missing")
        return None
    except (OSError, json.JSONDecodeError) as exc:
        report.add(where, f"unreadable: {exc}")
        return None
    if not isinstance(data, dict):
        report.add(where, "not a JSON object")
        return None
    missing = [name for name in SYSTEM_FIELDS if name not in data]
    if missing:
        report.add(where, f"missing fields: {', '.join(missing)}")
    empty = [n for n in SYSTEM_FIELDS if n in MEANINGFUL_FIELDS and n in data and not data[n]]
    if empty:
        report.add(where, f"empty fields that need a value: {', '.join(empty)}")
    for name, folder in (("division", paths.division), ("submitter", paths.submitter)):
        if name in data and str(data[name]) != folder:
            report.add(where, f"{name} {data[name]!r} differs from its folder {folder!r}")
    if "status" in data and str(data["status"]).lower() not in STATUSES:
        report.add(where, f"status {data['status']!r} is not one of {', '.join(STATUSES)}")
    if "system_type" in data and data["system_type"] not in SYSTEM_TYPES:
        report.add(where, f"system_type {data['system_type']!r}: resnet50 needs edge or "
                   "datacenter,edge")  # fmt: skip
    count = data.get("accelerators_per_node")
    if count is not None and not str(count).isdigit():
        report.add(where, f"accelerators_per_node {count!r} is not a number")
    network = data.get("is_network")
    if network is not None and (not isinstance(network, str) or network.lower() == "true"):
        report.add(where, f'is_network {network!r}: must be the string "false" here')
    return data


def _check_benchmark(
    root: Path, division: str, benchmark: Path, system_type: str, report: CheckReport
) -> None:
    present = sorted(p.name for p in benchmark.iterdir() if p.is_dir())
    wanted = SCENARIOS_BY_TYPE.get(system_type, SCENARIOS_BY_TYPE["edge"])
    if division == "closed":
        for scenario in wanted:
            if scenario not in present:
                report.add(_rel(root, benchmark / scenario), f"missing ({system_type} needs it)")
        for scenario in present:
            if scenario not in wanted:
                report.add(_rel(root, benchmark / scenario), f"not a {system_type} scenario")
    for scenario in present:
        _check_scenario(root, division, ScenarioPaths(benchmark / scenario), system_type, report)


def _check_scenario(
    root: Path, division: str, folder: ScenarioPaths, system_type: str, report: CheckReport
) -> None:
    scenario = folder.root.name
    closed = division == "closed"
    files = folder.required_files()
    for test in COMPLIANCE_TESTS if closed else ():
        if folder.test(test).is_dir():
            files += folder.compliance_files(test)
        else:
            report.add(_rel(root, folder.test(test)), "missing: the compliance test did not run")
    for path in files:
        if not path.is_file():
            report.add(_rel(root, path), "missing")
        elif path.stat().st_size == 0:
            report.add(_rel(root, path), "empty")
    _check_measurements(root, folder, report)
    perf = _read_log(folder.performance, root, report)
    if perf is not None:
        _check_performance(root, folder.performance, perf, scenario, system_type, report)
    _check_accuracy(root, folder, division, report)
    if closed:
        for test in COMPLIANCE_TESTS:
            _check_compliance(root, folder, test, scenario, report)


def _check_measurements(root: Path, folder: ScenarioPaths, report: CheckReport) -> None:
    try:
        data = json.loads(folder.measurements.read_text())
    except (OSError, json.JSONDecodeError):
        return  # reported as missing (or unreadable) with the files
    if not isinstance(data, dict):
        report.add(_rel(root, folder.measurements), "not a JSON object")
        return
    empty = [name for name in MEASUREMENT_FIELDS if not data.get(name)]
    if empty:
        report.add(_rel(root, folder.measurements), f"empty or missing: {', '.join(empty)}")


def _read_log(folder: Path, root: Path, report: CheckReport) -> DetailLog | None:
    path = folder / DETAIL
    try:
        return parse_detail_text(path.read_text(errors="replace"))
    except OSError:
        return None  # reported as missing
    except ResultError as exc:
        report.add(_rel(root, path), exc.message)
        return None


def _report_findings(where: str, findings: Sequence[Finding], report: CheckReport) -> None:
    for _, reason in findings:
        report.add(where, reason)


def _check_performance(
    root: Path, folder: Path, log: DetailLog, scenario: str, system_type: str, report: CheckReport
) -> None:
    where = _rel(root, folder / DETAIL)
    effective = str(log.get("effective_scenario", scenario))
    if effective != scenario:
        if effective not in INFERABLE.get(scenario, ()):
            report.add(where, f"{effective} logs cannot stand for {scenario}")
        elif "edge" not in system_type:
            report.add(where, f"{scenario} inferred from {effective}: only edge systems may")
        elif scenario == "MultiStream" and not log.get("early_stopping_latency_ms"):
            report.add(
                where,
                "inferred MultiStream needs the SingleStream run's early-stopping p99 estimate "
                "(early_stopping_latency_ms is 0: too few queries)",
            )
    summary = parse_summary_text(_text(folder / SUMMARY))
    _report_findings(where, performance_findings(log, effective, summary), report)


def _check_accuracy(root: Path, folder: ScenarioPaths, division: str, report: CheckReport) -> None:
    log = _read_log(folder.accuracy, root, report)
    txt_path = folder.accuracy / ACCURACY_TXT
    txt = _text(txt_path) if txt_path.is_file() else None
    if log is not None:
        where = _rel(root, folder.accuracy / DETAIL)
        _report_findings(where, accuracy_findings(log, txt, division), report)
    if txt is not None and recorded_hash(txt) is None:
        report.add(_rel(root, txt_path), "no hash= line (the accuracy log was not truncated)")
    accuracy_log = folder.accuracy / ACCURACY_LOG
    if accuracy_log.is_file() and accuracy_log.stat().st_size > MAX_TRUNCATED_BYTES:
        report.add(_rel(root, accuracy_log), "not truncated (over 10 KiB)")


def _check_compliance(
    root: Path, folder: ScenarioPaths, test: str, scenario: str, report: CheckReport
) -> None:
    test_dir = folder.test(test)
    if not test_dir.is_dir():
        return  # its files are reported missing
    verdict_files = (
        (VERIFY_ACCURACY, VERIFY_PERFORMANCE) if test == "TEST01" else (VERIFY_PERFORMANCE,)
    )
    for name in verdict_files:
        path = test_dir / name
        if path.is_file() and PASS not in _text(path):
            report.add(_rel(root, path), f"{test} did not pass (no '{PASS}')")
    perf = folder.test_performance(test)
    if perf.is_dir():
        extra = sorted(
            p.name
            for p in perf.iterdir()
            if p.is_file() and p.name not in (*LOG_FILES, *COMPLIANCE_OPTIONAL)
        )
        if extra:
            report.add(_rel(root, perf), f"files the checker does not allow: {', '.join(extra)}")
        log = _read_log(perf, root, report)
        if log is not None:
            where = _rel(root, perf / DETAIL)
            findings = [f for f in performance_findings(log, scenario, {}) if f[0] in
                        ("duration", "errors", "latency")] + seed_findings(log)  # fmt: skip
            _report_findings(where, list(dict.fromkeys(findings)), report)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
