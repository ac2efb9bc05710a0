"""`mlorch submit`: run folders → one submission tree in the v6.1 layout, assembled atomically.

Planning reads the runs and decides everything before a byte is written: one system per host,
accelerators and backend; the scenarios each system reports (an edge system may infer
MultiStream and Offline from SingleStream, as the checker allows: the inferred folder holds the
source scenario's logs); every system field (missing ones stop the build, all named at once).

Writing copies the tree that is already at the output (if any) into a sibling folder, replaces
the scenario folders and system files of this submission there, truncates the copied accuracy
logs (the run folders keep theirs whole: compliance was verified on them), and swaps the folder
into place with one rename. A failure or Ctrl-C on the way leaves the previous tree as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.locks import LockTimeout, exclusive
from orchestrator.errors import ConfigError, ResultError
from orchestrator.results.compliance import VERIFY_ACCURACY, VERIFY_PERFORMANCE
from orchestrator.results.loadgen_log import ACCURACY_LOG, DETAIL, SUMMARY
from orchestrator.results.manifest import read_manifest, resolve_run
from orchestrator.results.truncation import ACCURACY_TXT, truncate_accuracy_log
from orchestrator.results.validity import (
    COMPLIANCE_TESTS,
    DIVISIONS,
    ComplianceVerdict,
    Validity,
    compliance_verdicts,
    judge_run,
)
from orchestrator.submission.documents import (
    compliance_lines,
    json_text,
    measurements,
    mlorch_commit,
    scenario_readme,
    src_readme,
)
from orchestrator.submission.layout import (
    INFERABLE,
    LOG_FILES,
    SCENARIOS_BY_TYPE,
    TELEMETRY,
    USER_CONF,
    ScenarioPaths,
    SubmitterPaths,
)
from orchestrator.submission.system import (
    RunFacts,
    SystemDescription,
    UserFacts,
    describe_system,
    require_complete,
    system_desc_id,
)

PERFORMANCE, ACCURACY = "performance", "accuracy"
LOCK_TIMEOUT_S = 60.0
_SUBMITTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class RunInput:
    run_dir: Path
    manifest: dict[str, Any]
    facts: RunFacts
    validity: Validity  # judged for the tree's division
    verdicts: tuple[ComplianceVerdict, ...]

    @property
    def run_id(self) -> str:
        return self.facts.run_id

    def scenario_dir(self, scenario: str) -> Path:
        return self.run_dir / self.facts.backend / scenario

    def test_dir(self, scenario: str, mode: str) -> Path:
        return self.scenario_dir(scenario) / mode

    def complete_scenarios(self) -> list[str]:
        """Scenarios whose performance and accuracy tests both finished with their logs."""
        ok = {
            (str(t.get("scenario")), str(t.get("mode")))
            for t in self.manifest.get("tests") or []
            if isinstance(t, dict) and t.get("status", "ok") == "ok"
        }
        return [
            scenario
            for scenario, mode in ok
            if mode == "PerformanceOnly"
            and (scenario, "AccuracyOnly") in ok
            and (self.test_dir(scenario, PERFORMANCE) / DETAIL).is_file()
            and (self.test_dir(scenario, ACCURACY) / ACCURACY_LOG).is_file()
        ]


@dataclass(frozen=True)
class ScenarioEntry:
    scenario: str  # the folder in the tree
    source: str  # the scenario whose logs it holds (differs when inferred)
    run: RunInput

    @property
    def inferred(self) -> bool:
        return self.source != self.scenario


@dataclass(frozen=True)
class SystemEntry:
    description: SystemDescription
    system_type: str
    scenarios: tuple[ScenarioEntry, ...]


@dataclass(frozen=True)
class SubmissionPlan:
    division: str
    submitter: str
    systems: tuple[SystemEntry, ...]
    notes: tuple[str, ...]  # what the planner decided that the user should know

    @property
    def runs(self) -> list[RunInput]:
        seen: dict[str, RunInput] = {}
        for system in self.systems:
            for entry in system.scenarios:
                seen.setdefault(entry.run.run_id, entry.run)
        return list(seen.values())


# --- reading the runs --------------------------------------------------------------------------


def load_run(run_dir: Path, division: str) -> RunInput:
    manifest = read_manifest(run_dir)
    return RunInput(
        run_dir,
        manifest,
        RunFacts.from_manifest(manifest),
        judge_run(run_dir, manifest, division),
        tuple(compliance_verdicts(run_dir, manifest)),
    )


# --- planning ----------------------------------------------------------------------------------


def plan_submission(
    runs: Sequence[RunInput],
    *,
    division: str,
    submitter: str | None,
    user: UserFacts,
    facts_file: Path | None,
) -> SubmissionPlan:
    """Systems, scenarios and every system field of the tree, decided before writing."""
    if division not in DIVISIONS:
        raise ConfigError(f"--division must be closed or open, not {division!r}", key="division")
    notes: list[str] = []
    grouped: dict[str, list[RunInput]] = {}
    for run in runs:
        grouped.setdefault(system_desc_id(run.facts, user), []).append(run)
    systems = []
    for system_id, members in grouped.items():
        available = _scenarios_of(system_id, members, notes)
        backend = members[0].facts.backend
        system_type = _system_type(user, backend, available, system_id, notes)
        entries = _entries(system_id, system_type, available, division, notes)
        newest = members[-1]
        description = describe_system(
            newest.facts, user, division=division, submitter=submitter, system_type=system_type
        )
        if newest.facts.probed_now:
            notes.append(
                f"{system_id}: run {newest.run_id} recorded no system facts; read them from "
                "this host (the same host name)"
            )
        systems.append(SystemEntry(description, system_type, tuple(entries)))
    require_complete([s.description for s in systems], facts_file)
    name = systems[0].description.fields["submitter"] if systems else (submitter or "")
    if not _SUBMITTER.fullmatch(name):
        raise ConfigError(
            f"submitter {name!r} cannot be a folder name of the tree",
            key="submitter",
            hint="letters, digits, '-', '_' and '.', not starting with '.' (no spaces)",
        )
    if len({s.description.fields["submitter"] for s in systems}) > 1:
        raise ConfigError("[backend.*] tables name different submitters", key="submitter")
    return SubmissionPlan(division, name, tuple(systems), tuple(notes))


def _scenarios_of(
    system_id: str, runs: Sequence[RunInput], notes: list[str]
) -> dict[str, RunInput]:
    """scenario → the run that has it complete; two runs with the same scenario are an error."""
    available: dict[str, RunInput] = {}
    for run in runs:
        complete = run.complete_scenarios()
        planned = [str(s) for s in (run.manifest.get("spec") or {}).get("scenarios") or []]
        for scenario in planned:
            if scenario not in complete:
                notes.append(
                    f"{system_id}: {scenario} of run {run.run_id} is left out (its performance "
                    "or accuracy test did not finish)"
                )
        for scenario in complete:
            if scenario in available:
                raise ConfigError(
                    f"{system_id}: {scenario} is in runs {available[scenario].run_id} and "
                    f"{run.run_id}",
                    key="run",
                    hint="pass one run per scenario of a system",
                )
            available[scenario] = run
    if not available:
        names = ", ".join(run.run_id for run in runs)
        raise ResultError(
            f"{system_id}: no scenario of run(s) {names} has both its performance and accuracy "
            "logs",
            hint="a submission needs both modes of a scenario (`mlorch up` runs both by default)",
        )
    return available


def _system_type(
    user: UserFacts, backend: str, available: dict[str, RunInput], system_id: str, notes: list[str]
) -> str:
    chosen = user.for_backend(backend).get("system_type")
    if chosen is None:
        return "datacenter,edge" if "Server" in available else "edge"
    if chosen == "edge" and "Server" in available:
        notes.append(f"{system_id}: Server left out (system_type edge has no Server)")
    return chosen


def _entries(
    system_id: str,
    system_type: str,
    available: dict[str, RunInput],
    division: str,
    notes: list[str],
) -> list[ScenarioEntry]:
    wanted = SCENARIOS_BY_TYPE[system_type]
    entries = [ScenarioEntry(s, s, available[s]) for s in wanted if s in available]
    for scenario in wanted:
        if scenario in available:
            continue
        source = next((s for s in INFERABLE.get(scenario, ()) if s in available), None)
        if source is not None:
            entries.append(ScenarioEntry(scenario, source, available[source]))
            notes.append(f"{system_id}: {scenario} inferred from {source} (edge rule)")
        elif division == "closed":
            notes.append(
                f"{system_id}: no {scenario} (and nothing to infer it from): the closed "
                f"division needs it for system_type {system_type}"
            )
    order = list(SCENARIOS_BY_TYPE["datacenter,edge"])
    return sorted(entries, key=lambda e: order.index(e.scenario))


# --- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenTree:
    root: Path
    paths: SubmitterPaths
    replaced: bool  # a previous tree was merged into


def write_submission(plan: SubmissionPlan, output: Path) -> WrittenTree:
    """Assemble the tree beside `output` (merging the tree already there) and swap it in."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = output.parent / f".{output.name}.lock"
    try:
        with exclusive(lock, LOCK_TIMEOUT_S):
            return _write_locked(plan, output)
    except LockTimeout as exc:
        raise ConfigError(f"{output} is being written by another mlorch submit ({exc})") from exc


def _write_locked(plan: SubmissionPlan, output: Path) -> WrittenTree:
    staging = output.parent / f".{output.name}.partial-{secrets.token_hex(4)}"
    existed = output.exists()
    if existed and not output.is_dir():
        raise ConfigError(f"--output {output} exists and is not a folder", key="output")
    try:
        if existed:
            shutil.copytree(output, staging, symlinks=True)
        else:
            staging.mkdir()
        paths = SubmitterPaths(staging, plan.division, plan.submitter)
        commit = mlorch_commit()
        for system in plan.systems:
            _write_system(paths, system)
        _write_src(paths, plan, commit)
        _swap_into_place(staging, output)
    finally:
        if staging.exists():  # failed or interrupted: the previous tree was never touched
            shutil.rmtree(staging, ignore_errors=True)
    return WrittenTree(output, SubmitterPaths(output, plan.division, plan.submitter), existed)


def _write_system(paths: SubmitterPaths, system: SystemEntry) -> None:
    description = system.description
    target = paths.system_json(description.system_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json_text(description.json_fields()))
    for entry in system.scenarios:
        folder = paths.scenario(description.system_id, entry.scenario)
        if folder.root.exists():
            shutil.rmtree(folder.root)  # this submission's logs replace the older ones
        _write_scenario(folder, entry, description.system_id)


def _write_scenario(folder: ScenarioPaths, entry: ScenarioEntry, system_id: str) -> None:
    run, source = entry.run, entry.source
    perf = run.test_dir(source, PERFORMANCE)
    _copy_files(perf, folder.performance, LOG_FILES)
    _copy_telemetry(perf, folder.performance)
    # Compliance first: TEST01 was verified against the full accuracy log, truncated below.
    for test in COMPLIANCE_TESTS:
        _write_compliance(run.scenario_dir(source) / "compliance" / test, folder, test)
    accuracy = run.test_dir(source, ACCURACY)
    _copy_files(accuracy, folder.accuracy, (SUMMARY, DETAIL, ACCURACY_LOG, ACCURACY_TXT))
    _copy_telemetry(accuracy, folder.accuracy)
    truncate_accuracy_log(folder.accuracy)
    _copy_files(run.scenario_dir(source), folder.root, (USER_CONF,))
    folder.measurements.write_text(json_text(measurements(run.manifest)))
    compliance = compliance_lines(run.verdicts, source)
    folder.readme.write_text(
        scenario_readme(run.manifest, entry.scenario, source, system_id, run.validity, compliance)
    )


def _write_compliance(source: Path, folder: ScenarioPaths, test: str) -> None:
    """A compliance test's logs and verdicts, as the official run_verification.py lays them out."""
    if not source.is_dir():
        return
    verdicts = (VERIFY_ACCURACY, VERIFY_PERFORMANCE) if test == "TEST01" else (VERIFY_PERFORMANCE,)
    _copy_files(source, folder.test(test), verdicts, required=False)
    _copy_files(source, folder.test_performance(test), LOG_FILES, required=False)
    _copy_telemetry(source, folder.test_performance(test))
    if test == "TEST01" and (source / ACCURACY_LOG).is_file():
        _copy_files(source, folder.test_accuracy(test), (ACCURACY_LOG,))
        truncate_accuracy_log(folder.test_accuracy(test), create_accuracy_txt=True)


def _copy_files(source: Path, target: Path, names: Sequence[str], *, required: bool = True) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = source / name
        if not path.is_file():
            if required:
                raise ResultError(
                    f"{path} is missing", hint="the run's test did not leave all its logs"
                )
            continue
        shutil.copyfile(path, target / name)


def _copy_telemetry(test_dir: Path, target: Path) -> None:
    """mlorch's telemetry of a test, in a sub-folder the checker does not list."""
    telemetry = test_dir / TELEMETRY
    if telemetry.is_dir():
        shutil.copytree(telemetry, target / TELEMETRY, symlinks=False, dirs_exist_ok=True)


_BACKENDS_LINE = re.compile(r"^Backends in this tree: (.*)\.$", re.MULTILINE)


def _write_src(paths: SubmitterPaths, plan: SubmissionPlan, commit: str | None) -> None:
    readme = paths.src / "README.md"
    backends = [s.description.backend for s in plan.systems]
    if readme.is_file():  # a merge keeps the backends an earlier submit wrote
        match = _BACKENDS_LINE.search(readme.read_text())
        if match:
            backends = re.findall(r"`([^`]+)`", match.group(1)) + backends
    paths.src.mkdir(parents=True, exist_ok=True)
    readme.write_text(src_readme(sorted(set(backends)), commit))


# --- the swap ----------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _swap_into_place(staging: Path, output: Path) -> None:
    """`staging` becomes `output`; the previous `output` (if any) is deleted afterwards."""
    if not output.exists():
        staging.rename(output)
        return
    if _exchange(staging, output):
        shutil.rmtree(staging, ignore_errors=True)  # now the previous tree
        return
    previous = output.parent / f".{output.name}.previous-{secrets.token_hex(4)}"
    output.rename(previous)
    try:
        staging.rename(output)
    except BaseException:
        previous.rename(output)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(previous)


@dataclass(frozen=True)
class SubmissionOutcome:
    plan: SubmissionPlan
    tree: WrittenTree


def build_submission(
    refs: Sequence[str],
    output: Path,
    *,
    division: str,
    submitter: str | None,
    facts_file: Path | None,
    runs_dir: Path,
) -> SubmissionOutcome:
    """Read the runs, plan the tree (all checks first), then write it atomically."""
    from orchestrator.submission.system import load_user_facts

    user = load_user_facts(facts_file)
    folders = list(dict.fromkeys(resolve_run(ref, runs_dir) for ref in refs))
    runs = [load_run(folder, division) for folder in folders]
    plan = plan_submission(
        runs, division=division, submitter=submitter, user=user, facts_file=facts_file
    )
    return SubmissionOutcome(plan, write_submission(plan, output))
