from __future__ import annotations

import typer

from orchestrator.cli.application import Application


def down(ctx: typer.Context) -> None:
    """Remove every container mlorch labelled (running or not)."""
    app: Application = ctx.obj
    engine = app.engine
    with engine.mapped_errors("listing containers"):
        containers = engine.labelled_containers()
        for container in containers:
            engine.remove_container(container)
            app.terminal.info(f"removed {container.name}")
    app.terminal.success(f"removed {len(containers)} mlorch container(s)")
