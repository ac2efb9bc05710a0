from __future__ import annotations

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import BackendArg, BaseImageOpt, DeviceOpt, ImageQuickOpt


def render(
    ctx: typer.Context,
    backend: BackendArg,
    device: DeviceOpt = None,
    base_image: BaseImageOpt = None,
    quick: ImageQuickOpt = False,
) -> None:
    """Print the Dockerfile mlorch renders for BACKEND (no engine needed with --device)."""
    from orchestrator.images.build import render_dockerfile
    from orchestrator.images.catalog import get_backend

    app: Application = ctx.obj
    definition = get_backend(backend)
    chosen = app.resolve_device(device)
    base = base_image or definition.default_base[chosen]
    app.terminal.data(render_dockerfile(definition, chosen, base).rstrip("\n"))
