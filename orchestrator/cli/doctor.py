from __future__ import annotations

import typer
from rich.table import Table

from orchestrator.cli.application import Application


def doctor(ctx: typer.Context) -> None:
    """Check the docker engine, NVIDIA runtime, GPUs (NVML), free disk and base images."""
    from orchestrator.doctor import run_checks

    app: Application = ctx.obj
    checks = run_checks()
    table = Table()
    for column in ("check", "verdict", "detail", "hint"):
        table.add_column(column)
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        table.add_row(
            check.name,
            f"[{colour[check.verdict]}]{check.verdict}[/]",
            check.detail,
            check.hint or "",
        )
    app.terminal.table(table)
    if any(check.verdict == "fail" for check in checks):
        raise typer.Exit(1)
