from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.application import Application


def down(
    ctx: typer.Context,
    all_containers: Annotated[
        bool,
        typer.Option("--all", help="Also remove the containers of mlorch runs still in progress."),
    ] = False,
) -> None:
    """Remove the containers of mlorch runs that are gone (killed, crashed); --all: every one."""
    from orchestrator.engine.owner import remove_orphans

    app: Application = ctx.obj
    found = remove_orphans(app.engine, force=all_containers, include_unowned=True)
    for item in found.removable:
        app.terminal.info(f"removed {item.name} ({item.why()})")
    for item in found.kept:
        app.terminal.info(f"kept {item.name}: {item.why()}")
    summary = f"removed {len(found.removable)} mlorch container(s)"
    if found.kept:
        summary += f"; kept {len(found.kept)} of live runs (`mlorch down --all` removes them too)"
    app.terminal.success(summary)
