from __future__ import annotations

import typer

from orchestrator.cli.application import Application


def compose(ctx: typer.Context) -> None:
    """Print compose.yaml as generated from mlorch's own container specs."""
    from orchestrator.running.compose import render_compose

    app: Application = ctx.obj
    app.terminal.data(render_compose().rstrip("\n"))
