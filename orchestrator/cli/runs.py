from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application


def runs(
    ctx: typer.Context,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where runs are written.", file_okay=False)
    ] = Path("runs"),
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print a JSON array (one object per run: id, status, backend, device, profile, "
            "started, tests, path, submission_valid, invalid_because, resumable) for scripts.",
        ),
    ] = False,
) -> None:
    """List runs with their verdicts (complete, failed, interrupted)."""
    from rich.text import Text

    from orchestrator.cli.tables import RUNS_LEGEND, runs_list, runs_table
    from orchestrator.results.manifest import list_runs

    app: Application = ctx.obj
    listings = list_runs(runs_dir)
    if as_json:
        rows = [
            {
                "id": item.run_id,
                "status": item.status,
                "backend": item.backend,
                "device": item.device,
                "profile": item.profile,
                "started": item.started,
                "tests": item.tests,
                "path": str(item.path.resolve()),
                "submission_valid": item.submission_valid,
                "invalid_because": list(item.invalid_because),
                "resumable": item.resumable,
            }
            for item in listings
        ]
        app.terminal.data(json.dumps(rows, indent=2))
        return
    if not listings:
        app.terminal.info(f"no runs under {runs_dir}")
        return
    app.terminal.table(runs_table(listings), narrow=runs_list(listings), legend=[Text(RUNS_LEGEND)])
