from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.submission.layout import Division


def submit(
    ctx: typer.Context,
    runs: Annotated[
        list[str],
        typer.Argument(help="Run ids (under --runs-dir) or run folders.", show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Root of the tree (OUTPUT/<division>/<submitter>/...); an existing tree is "
            "merged into, and stays as it was if the merge fails.",
            file_okay=False,
            show_default=False,
        ),
    ],
    division: Annotated[
        Division, typer.Option("--division", help="closed or open.", case_sensitive=False)
    ] = Division.CLOSED,
    submitter: Annotated[
        str | None,
        typer.Option(
            "--submitter",
            help="Organization: the folder name and the systems' submitter field "
            "[default: `submitter` of --system-facts].",
            show_default=False,
        ),
    ] = None,
    system_facts: Annotated[
        Path | None,
        typer.Option(
            "--system-facts",
            help="TOML with the system fields mlorch cannot detect ([system], "
            "[backend.<name>]); a missing one is asked for by name.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where run ids are looked up.", file_okay=False)
    ] = Path("runs"),
) -> None:
    """Build a submission tree in the MLCommons v6.1 layout from RUN folders.

    One system per host, accelerators and backend (systems/<id>.json from the facts the runs
    recorded, plus --system-facts); per scenario measurements.json, user.conf, README.md, the
    LoadGen logs (accuracy logs truncated, with their hash), TEST01/TEST04 when they ran, and
    mlorch's telemetry in telemetry/ sub-folders. An edge system infers MultiStream and Offline
    from SingleStream when it has no run of its own. Check the result with `mlorch check OUTPUT`."""
    from orchestrator.cli.tables import submission_lines
    from orchestrator.submission.tree import build_submission

    app: Application = ctx.obj
    outcome = build_submission(
        runs,
        output,
        division=division.value,
        submitter=submitter,
        facts_file=system_facts,
        runs_dir=runs_dir,
    )
    for note in outcome.plan.notes:
        app.terminal.info(note)
    for run in outcome.plan.runs:
        if not run.validity.valid:
            count = len(run.validity.unmet)
            app.terminal.warn(
                f"run {run.run_id} is NOT submission-valid ({division.value}): {count} rules "
                f"unmet, first {run.validity.reasons()[0]} (every one: its README.md)"
            )
    app.terminal.table(submission_lines(outcome))
    verb = "merged into" if outcome.tree.replaced else "written to"
    app.terminal.success(f"tree {verb} {outcome.tree.root}; check it: mlorch check {output}")
