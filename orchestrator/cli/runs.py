from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.application import Application

STYLE = {"complete": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}


def runs(
    ctx: typer.Context,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where runs are written.", file_okay=False)
    ] = Path("runs"),
) -> None:
    """List runs with their verdicts (complete, failed, interrupted)."""
    from orchestrator.results.manifest import list_runs

    app: Application = ctx.obj
    listings = list_runs(runs_dir)
    if not listings:
        app.terminal.info(f"no runs under {runs_dir}")
        return
    table = Table()
    for column in ("run", "backend", "device", "profile", "tests", "started", "verdict"):
        table.add_column(column)
    for item in listings:
        style = STYLE.get(item.status, "white")
        table.add_row(
            item.run_id,
            item.backend,
            item.device,
            item.profile,
            str(item.tests),
            item.started,
            f"[{style}]{item.status}[/]",
        )
    app.terminal.table(table)
