"""`mlorch campaign plan|run|status|resume|merge FILE`: a lab's nodes through Slurm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.submission.layout import Division

if TYPE_CHECKING:
    from orchestrator.campaign.control import CampaignStatus
    from orchestrator.campaign.spec import CampaignSpec

campaign_app = typer.Typer(
    help="Benchmark a lab's nodes through Slurm: one job per system, results on shared "
    "storage, one merged tree and report.",
    no_args_is_help=True,
)

FileArg = Annotated[
    Path,
    typer.Argument(help="The campaign file (TOML).", dir_okay=False, show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON for scripts.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait for the jobs, showing progress per system.")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds --wait waits at most.", min=1)
]


def _load(path: Path) -> CampaignSpec:
    from orchestrator.campaign.spec import load_campaign

    return load_campaign(path)


@campaign_app.command("plan")
def plan(ctx: typer.Context, file: FileArg, as_json: JsonOpt = False) -> None:
    """The ledger: every unit (system × backend × scenario) with its id; nothing is submitted."""
    from orchestrator.campaign.ledger import plan_units
    from orchestrator.cli.tables import ledger_table

    app: Application = ctx.obj
    spec = _load(file)
    units = plan_units(spec)
    if as_json:
        rows = [
            {"unit": u.id, "system": u.system, "tree_id": u.tree_id, "backend": u.backend,
             "scenario": str(u.scenario), "modes": [str(m) for m in u.modes],
             "compliance": u.compliance, "node": u.node, "constraint": u.constraint,
             "device": str(u.device)}
            for u in units
        ]  # fmt: skip
        app.terminal.data(json.dumps(rows, indent=2))
        return
    app.terminal.table(ledger_table(units))
    app.terminal.info(f"{len(units)} units on {len(spec.system)} systems; results in {spec.root}")


def _show(app: Application, status: CampaignStatus, as_json: bool = False) -> None:
    from orchestrator.cli.tables import campaign_table

    if as_json:
        rows = [unit.as_dict() for unit in status.units]
        app.terminal.data(json.dumps({"units": rows, "excluded": list(status.excluded)}, indent=2))
        return
    app.terminal.table(campaign_table(status))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(status.counts().items()))
    app.terminal.info(counts)
    for system in status.excluded:
        app.terminal.warn(f"system {system} is excluded after repeated failed jobs: its units "
                          "are listed above, not lost (fix the node, then resume)")  # fmt: skip


def _wait(app: Application, spec: CampaignSpec, timeout: float) -> None:
    from orchestrator.campaign.control import wait

    seen: dict[str, str] = {}

    def progress(status: CampaignStatus) -> None:
        for system in spec.system:
            mine = [s for s in status.units if s.unit.system == system.system_id]
            done = sum(s.state == "complete" for s in mine)
            states = sorted({s.state for s in mine if s.state != "complete"})
            line = f"{system.system_id}: {done}/{len(mine)} complete" + (
                f" ({', '.join(states)})" if states else ""
            )
            if seen.get(system.system_id) != line:
                seen[system.system_id] = line
                app.terminal.info(line)

    try:
        final = wait(spec, timeout, progress)
    except KeyboardInterrupt:
        from orchestrator.campaign.store import CAMPAIGN_FILE
        from orchestrator.errors import Interrupted

        raise Interrupted(
            "stopped waiting; the campaign's jobs keep running under Slurm",
            hint=f"mlorch campaign status {spec.root / CAMPAIGN_FILE}, or scancel them",
        ) from None
    _show(app, final)
    if not final.complete:
        from orchestrator.errors import CampaignIncomplete

        missing = sum(s.state != "complete" for s in final.units)
        raise CampaignIncomplete(
            f"campaign {spec.campaign.name}: {missing} units without a complete attempt and no "
            "job left running",
            hint=f"see their failed.json / up.log under {spec.root}; then mlorch campaign resume",
        )


@campaign_app.command("run")
def run(
    ctx: typer.Context, file: FileArg, wait_: WaitOpt = False, timeout: TimeoutOpt = 86400.0
) -> None:
    """Submit one sbatch job per system (its units one after the other on its node)."""
    from orchestrator.campaign.control import submit

    app: Application = ctx.obj
    spec = _load(file)
    for system, job in submit(spec, file).items():
        app.terminal.success(f"{system}: job {job}")
    if wait_:
        _wait(app, spec, timeout)


@campaign_app.command("status")
def status(ctx: typer.Context, file: FileArg, as_json: JsonOpt = False) -> None:
    """Every unit: complete, running, pending, held, requeued, failed, node_fail, timeout,
    out_of_memory, excluded … from squeue/scontrol (sacct when it answers) and the results."""
    from orchestrator.campaign.control import campaign_status

    app: Application = ctx.obj
    _show(app, campaign_status(_load(file)), as_json)


@campaign_app.command("resume")
def resume_(
    ctx: typer.Context, file: FileArg, wait_: WaitOpt = False, timeout: TimeoutOpt = 86400.0
) -> None:
    """Resubmit only the systems with units lacking a complete attempt (and no live job)."""
    from orchestrator.campaign.control import resume

    app: Application = ctx.obj
    spec = _load(file)
    submitted, before = resume(spec, file)
    if not submitted:
        app.terminal.info("nothing to resubmit")
    for system, job in submitted.items():
        app.terminal.success(f"{system}: job {job} (resumed)")
    for system in before.excluded:
        app.terminal.warn(f"{system}: excluded after repeated failed jobs (not resubmitted)")
    if wait_:
        _wait(app, spec, timeout)


@campaign_app.command("merge")
def merge_(
    ctx: typer.Context,
    file: FileArg,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Root of the submission tree.", file_okay=False),
    ],
    division: Annotated[
        Division, typer.Option("--division", help="closed or open.", case_sensitive=False)
    ] = Division.CLOSED,
    submitter: Annotated[
        str | None, typer.Option("--submitter", help="Organization (as `submit` takes it).")
    ] = None,
    system_facts: Annotated[
        Path | None,
        typer.Option("--system-facts", help="TOML of system fields (as `submit`).", dir_okay=False),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Report folder [default: OUTPUT-report].", file_okay=False),
    ] = None,
) -> None:
    """One submission tree of every unit's result (one system per node and backend), its
    preflight, and one comparison report across systems and backends."""
    from orchestrator.campaign.control import merge
    from orchestrator.cli.tables import check_lines
    from orchestrator.errors import PreflightFailed

    app: Application = ctx.obj
    spec = _load(file)
    folder = report or output.with_name(output.name + "-report")
    outcome = merge(
        spec, output, folder, division=division.value, submitter=submitter,
        facts_file=system_facts,
    )  # fmt: skip
    for note in outcome.submission.plan.notes:
        app.terminal.info(note)
    for unit in outcome.missing:
        app.terminal.warn(f"not merged (no complete attempt): {unit.describe()} [{unit.id}]")
    systems = ", ".join(s.description.system_id for s in outcome.submission.plan.systems)
    app.terminal.success(f"tree {output}: {systems}; report {outcome.report.html}")
    if not outcome.check.ok:
        for line in check_lines(outcome.check, app.terminal.out.width):
            app.terminal.data(line)
        raise PreflightFailed(f"the merged tree has {len(outcome.check.problems)} problem(s)")


@campaign_app.command("worker", hidden=True)
def worker(
    ctx: typer.Context,
    file: FileArg,
    system: Annotated[str, typer.Option("--system", help="The system whose units to run.")],
) -> None:
    """Inside a campaign job: run the system's units that have no complete attempt."""
    from orchestrator.campaign.worker import run_worker

    app: Application = ctx.obj
    code = run_worker(_load(file), system, app.terminal)
    raise typer.Exit(code)
