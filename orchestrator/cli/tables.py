"""What the commands render: tables that never cut an identifier or a hint.

A pipe (CI logs) is 80 columns wide. Tables whose natural width is larger come with a list layout
(`narrow`) the terminal uses instead; cells wrap at spaces and fold (never cut with `…`) a word
longer than its column. The results table of `up` is built to fit 80 columns: short verdict
codes, explained in a legend underneath that also says why each row is not VALID.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.results.validity import rule_code

if TYPE_CHECKING:
    from orchestrator.campaign.control import CampaignStatus
    from orchestrator.campaign.ledger import Unit
    from orchestrator.host.doctor import Check
    from orchestrator.results.loadgen_log import TestResult
    from orchestrator.results.manifest import RunListing
    from orchestrator.running.up import AuditOutcome, RunOutcome
    from orchestrator.submission.official import OfficialVerdict
    from orchestrator.submission.preflight import CheckReport
    from orchestrator.submission.tree import SubmissionOutcome

RUN_STYLE = {"complete": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
CHECK_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}

# verdict code → (style, meaning); codes stay 5 characters or fewer so the table fits 80 columns
VERDICTS: dict[str, tuple[str, str]] = {
    "VALID": ("green", "LoadGen's verdict is VALID"),
    "INVAL": ("red", "LoadGen's verdict is INVALID (why below)"),
    "ERR": ("red", "LoadGen logged errors, so invalid (below)"),
    "acc": ("cyan", "accuracy run, scored by mlorch"),
    "?": ("yellow", "no verdict in the log"),
    "PASS": ("green", "compliance audit verified"),
    "FAIL": ("red", "compliance audit failed verification (why below)"),
}


def verdict_code(result: TestResult) -> str:
    """The short verdict of one test (a key of VERDICTS)."""
    if result.errors:
        return "ERR"
    if result.mode == "AccuracyOnly":
        return "acc"
    if result.valid is None:
        return "?"
    return "VALID" if result.valid else "INVAL"


def audit_code(audit: AuditOutcome) -> str:
    return "PASS" if audit.verification.passed else "FAIL"


def _mode(result: TestResult) -> str:
    return "performance" if result.mode == "PerformanceOnly" else "accuracy"


def _metric(result: TestResult) -> str:
    return result.metric if result.unit in result.metric else f"{result.metric} ({result.unit})"


def results_table(outcome: RunOutcome) -> Table:
    """scenario · mode · metric · value · verdict for one run (fits 80 columns)."""
    manifest = outcome.manifest
    spec = manifest.spec
    engine = f" · {manifest.recipe['engine']}" if manifest.recipe else ""
    title = f"{manifest.run_id} · {spec.get('backend')} · {spec.get('device')}{engine}"
    table = Table(title=Text(title))
    table.add_column("scenario", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("metric", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    agreements = _agreements(outcome)
    for result in outcome.results:
        code = verdict_code(result)
        table.add_row(
            result.scenario,
            _mode(result),
            Text(_metric(result)),
            _value(result),
            Text(code, style=VERDICTS[code][0]),
        )
        if result.percentile_metric is not None:
            raw = f"raw {result.percentile_metric} (ms)"
            table.add_row("", "", Text(raw, style="dim"), _number(result.percentile_ms), "")
        agreement = agreements.get((result.scenario, result.mode))
        if agreement is not None:
            label = "FP32 agreement (%)"  # on the guard images (their count: manifest)
            table.add_row("", "", Text(label, style="dim"), _number(agreement["percent"]), "")
    for audit in outcome.compliance:
        code = audit_code(audit)
        table.add_row(
            audit.result.scenario,
            audit.verification.test,
            Text(_metric(audit.result)),
            _value(audit.result),
            Text(code, style=VERDICTS[code][0]),
        )
    return table


def _agreements(outcome: RunOutcome) -> dict[tuple[str, str], dict[str, Any]]:
    """A quantized recipe's accuracy runs: top-1 agreement with FP32 on the guard images."""
    found = {}
    for test in outcome.manifest.tests:
        agreement = (test.result or {}).get("fp32_agreement")
        if isinstance(agreement, dict) and agreement.get("total"):
            found[(test.scenario, test.mode)] = agreement
    return found


def results_list(outcome: RunOutcome) -> Group:
    """The results one line each, for terminals narrower than the table."""
    lines = [Text(f"{outcome.manifest.run_id} · {outcome.manifest.spec.get('device')}")]
    agreements = _agreements(outcome)
    for result in outcome.results:
        code = verdict_code(result)
        line = Text(f"  {result.scenario} {_mode(result)}: {_metric(result)} {_value(result)} ")
        if result.percentile_metric is not None:
            line.append(f"(raw {result.percentile_metric} {_number(result.percentile_ms)}) ")
        agreement = agreements.get((result.scenario, result.mode))
        if agreement is not None:
            line.append(f"(FP32 agreement {_number(agreement['percent'])} %) ")
        line.append(code, style=VERDICTS[code][0])
        lines.append(line)
    for audit in outcome.compliance:
        code = audit_code(audit)
        result = audit.result
        line = Text(f"  {result.scenario} {audit.verification.test}: {_metric(result)} ")
        line.append(f"{_value(result)} ")
        line.append(code, style=VERDICTS[code][0])
        lines.append(line)
    return Group(*lines)


def _value(result: TestResult) -> str:
    return _number(result.value)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:,.3f}"


def results_legend(outcome: RunOutcome) -> list[Text]:
    """The codes the table uses, why each row that is not VALID is not, and run-wide notes."""
    lines: list[Text] = []
    used = {verdict_code(r) for r in outcome.results} | {audit_code(a) for a in outcome.compliance}
    codes = [code for code in VERDICTS if code in used]
    if codes:
        lines.append(Text(" · ".join(f"{code}: {VERDICTS[code][1]}" for code in codes)))
    for result in outcome.results:
        row = f"{result.scenario} {_mode(result)}"
        code = verdict_code(result)
        if code == "INVAL":
            unmet = ", ".join(result.unmet)
            why = f"{unmet} not satisfied" if unmet else "see its mlperf_log_summary.txt"
            if result.scenario == "Offline" and "min duration" in result.unmet and result.value:
                why += (  # LoadGen sized the query for a slower SUT than ran
                    f"; the SUT outran its expected rate: set [run.tuning] "
                    f"offline_expected_qps above {result.value:,.0f}"
                )
            lines.append(Text(f"{row} INVAL: {why}"))
        for error in result.errors:
            lines.append(Text(f"{row} ERR: {error}"))
        for warning in result.warnings:
            lines.append(Text(f"{row} warning: {warning}"))
    if any(result.percentile_metric for result in outcome.results):
        lines.append(
            Text(
                "latency: the early-stopping estimate is the result the checker reads; "
                "the raw percentile is below it"
            )
        )
    for audit in outcome.compliance:
        row = f"{audit.result.scenario} {audit.verification.test}"
        for reason in audit.verification.reasons:
            lines.append(Text(f"{row} FAIL: {reason}"))
    if outcome.manifest.spec.get("compliance"):  # asked for, yet not run: say why
        not_run = {
            (entry.test, "; ".join(entry.reasons))
            for entry in outcome.manifest.compliance
            if entry.status == "skipped"
        }
        for test, why in sorted(not_run):
            lines.append(Text(f"compliance {test} not run: it {why}"))
    if outcome.manifest.assets.get("synthetic"):
        lines.append(Text("synthetic assets: accuracy is a plumbing check"))
    lines.extend(_non_int8_lines(outcome.manifest.recipe))
    manifest = outcome.manifest
    lines.extend(validity_lines(manifest.submission_valid, manifest.invalid_because))
    return lines


def _non_int8_lines(recipe: dict[str, Any] | None) -> list[Text]:
    """A TensorRT engine that runs a Conv/Gemm layer in another precision than INT8 (its engine
    inspector said so): named, as it costs a multiple in speed and passes the accuracy guard."""
    lines = []
    for guard in (recipe or {}).get("guards") or []:
        layers = guard.get("layer_precisions") if isinstance(guard, dict) else None
        if isinstance(layers, dict) and layers.get("non_int8_compute"):
            names = ", ".join(str(name) for name in layers["non_int8_compute"][:5])
            more = len(layers["non_int8_compute"]) - 5
            lines.append(
                Text(
                    f"engine {guard.get('engine')}: not INT8: {names}"
                    + (f" … {more} more" if more > 0 else "")
                    + " (TensorRT ran these compute layers in another precision)"
                )
            )
    return lines


def validity_lines(valid: bool | None, reasons: Sequence[str]) -> list[Text]:
    """Whether a run is submission-valid (closed division), and each rule it does not meet."""
    if valid:
        return [Text("submission-valid (closed division): every rule met", style="green")]
    if valid is None:
        return [Text("submission validity: not judged")]
    lines = [Text("NOT submission-valid (closed division):", style="yellow")]
    lines.extend(Text(f"  {reason}") for reason in reasons)
    return lines


def submit_code(item: RunListing) -> str:
    """The run's submission verdict in a few characters: `valid`, `—` (not judged), or its first
    unmet rule and how many other rules it misses (`quick +6`)."""
    if item.submission_valid is None:
        return "—"
    if item.submission_valid:
        return "valid"
    codes = list(dict.fromkeys(rule_code(reason) for reason in item.invalid_because)) or ["?"]
    return codes[0] + (f" +{len(codes) - 1}" if len(codes) > 1 else "")


def runs_table(listings: Sequence[RunListing]) -> Table:
    """One row per run; the run id is never cut (it is what other commands take)."""
    table = Table()
    table.add_column("run", no_wrap=True)
    for column in ("backend", "device", "profile", "tests", "started"):
        table.add_column(column, overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("submit", no_wrap=True)
    for item in listings:
        code = submit_code(item)
        table.add_row(
            *(Text(cell) for cell in (item.run_id, item.backend, item.device, item.profile)),
            str(item.tests),
            Text(item.started),
            Text(_verdict(item), style=RUN_STYLE.get(item.status, "white")),
            Text(code, style="green" if code == "valid" else "yellow"),
        )
    return table


def _verdict(item: RunListing) -> str:
    return f"{item.status} ↻" if item.resumable else item.status


RUNS_LEGEND = (
    "submit: `valid`, or the first rule the run does not meet (+ how many more); "
    "`mlorch runs --json` lists every reason. ↻: `mlorch up --resume RUN` finishes it"
)


def runs_list(listings: Sequence[RunListing]) -> Group:
    """The runs as two lines each, for terminals narrower than the table."""
    lines: list[Text] = []
    for item in listings:
        head = Text(item.run_id)
        head.append(f"  {_verdict(item)}", style=RUN_STYLE.get(item.status, "white"))
        code = submit_code(item)
        head.append(f"  submit {code}", style="green" if code == "valid" else "yellow")
        lines.append(head)
        tests = f"{item.tests} test" + ("" if item.tests == 1 else "s")
        details = [item.backend, item.device, item.profile, tests]
        if item.started:
            details.append(f"started {item.started}")
        lines.append(Text("    " + " · ".join(details)))
    return Group(*lines)


def doctor_table(checks: Sequence[Check]) -> Table:
    table = Table()
    table.add_column("check", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("hint", overflow="fold")
    for check in checks:
        table.add_row(
            Text(check.name),
            Text(check.verdict, style=CHECK_STYLE[check.verdict]),
            Text(check.detail),
            Text(check.hint or ""),
        )
    return table


def doctor_list(checks: Sequence[Check]) -> Table:
    """verdict, then `check: detail` with its hint, for terminals narrower than the table."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for check in checks:
        body = Text(f"{check.name}: {check.detail}")
        if check.hint:
            body.append(f"\nhint: {check.hint}", style="yellow")
        grid.add_row(Text(check.verdict, style=CHECK_STYLE[check.verdict]), body)
    return grid


def submission_lines(outcome: SubmissionOutcome) -> Group:
    """Each system of a tree just written, and where each of its scenarios comes from."""
    plan = outcome.plan
    lines = [Text(f"{plan.division}/{plan.submitter}", style="bold")]
    for system in plan.systems:
        description = system.description
        head = Text(f"  {description.system_id}")
        head.append(f"  {system.system_type}", style="cyan")
        lines.append(head)
        for entry in system.scenarios:
            source = f"inferred from {entry.source}, " if entry.inferred else ""
            lines.append(Text(f"    {entry.scenario}: {source}run {entry.run.run_id}"))
        if description.supplied:
            lines.append(Text(f"    from --system-facts: {', '.join(description.supplied)}"))
    return Group(*lines)


def wrap_lines(text: str, width: int, indent: str = "") -> list[str]:
    """`text` wrapped at spaces to `width` columns (paths and long words are never broken)."""
    import textwrap

    return textwrap.wrap(
        text,
        width=max(width, 40),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]


def check_lines(report: CheckReport, width: int = 80) -> list[str]:
    """`mlorch check`'s problems as plain lines (whole paths, greppable), grouped under the
    scenario folder or spec item each concerns, wrapped to `width`."""
    from orchestrator.submission.preflight import problems_by_where

    if report.ok:
        return [f"{report.target}: every check passed"]
    lines = [f"{report.target}: {len(report.problems)} problem(s)"]
    for where, messages in problems_by_where(report):
        lines.append(f"✗ {where}")
        for message in messages:
            lines.extend(wrap_lines(message, width, "    "))
    return lines


def official_lines(verdict: OfficialVerdict, tree: Path, width: int = 80) -> list[str]:
    """The MLCommons checker's verdict and its error lines, each message once (the scenario
    folders it occurs in listed after it), wrapped to `width`."""
    from orchestrator.submission.official import summarize_errors

    lines = wrap_lines(f"MLCommons checker: {verdict.summary}", width)
    errors, left_out = summarize_errors(verdict.errors, tree)
    for message in errors:
        lines.extend(wrap_lines(message, width, "  "))
    if left_out:
        lines.append(f"  (+ {left_out} lines that repeat these: 'Some checks failed for ...')")
    if not verdict.errors and not verdict.passed:
        lines.extend(verdict.output_tail.splitlines())
    return lines


# --- campaigns -----------------------------------------------------------------------------------


def _runs(unit: Unit) -> str:
    short = {"performance": "perf", "accuracy": "acc"}
    modes = "+".join(short.get(mode.short, mode.short) for mode in unit.modes)
    return modes + ("+audits" if unit.compliance else "")


def ledger_table(units: Sequence[Unit]) -> Table:
    """`campaign plan`: one row per unit, its id never cut."""
    table = Table()
    table.add_column("unit", no_wrap=True)
    table.add_column("system", overflow="fold")
    table.add_column("runs", overflow="fold")
    table.add_column("where", overflow="fold")
    for unit in units:
        where = unit.node or f"constraint {unit.constraint}"
        what = f"{unit.backend} {unit.scenario} {_runs(unit)}"
        table.add_row(unit.id, unit.tree_id, what, f"{where} ({unit.device})")
    return table


def campaign_table(status: CampaignStatus) -> Table:
    """`campaign status`: each unit's state, its job and attempts."""
    table = Table()
    table.add_column("unit", no_wrap=True)
    table.add_column("system", overflow="fold")
    table.add_column("runs", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("job", no_wrap=True)
    table.add_column("tries", justify="right")
    table.add_column("detail", overflow="fold")
    styles = {"complete": "green", "failed": "red", "excluded": "red", "node_fail": "red"}
    for unit in status.units:
        state = Text(unit.state, style=styles.get(unit.state, "yellow"))
        what = f"{unit.unit.backend} {unit.unit.scenario}"
        table.add_row(unit.unit.id, unit.unit.system, what, state, unit.job or "—",
                      str(unit.attempts), unit.detail)  # fmt: skip
    return table
