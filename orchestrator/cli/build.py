from __future__ import annotations

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    DeviceOpt,
    ImageQuickOpt,
    WheelhouseOpt,
)


def build(
    ctx: typer.Context,
    backend: BackendArg,
    device: DeviceOpt = None,
    base_image: BaseImageOpt = None,
    quick: ImageQuickOpt = False,
    wheelhouse: WheelhouseOpt = None,
) -> None:
    """Build the SUT image for BACKEND (content-addressed: unchanged inputs build nothing)."""
    from orchestrator.catalog import get_backend
    from orchestrator.image import ensure_image

    app: Application = ctx.obj
    definition = get_backend(backend)
    chosen = app.resolve_device(device)
    image = ensure_image(app.engine, definition, chosen, base_image, wheelhouse, app.terminal)
    app.terminal.data(image.tag)
