from __future__ import annotations

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    BuildTimeoutOpt,
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
    build_timeout: BuildTimeoutOpt = None,
) -> None:
    """Build the SUT image for BACKEND (content-addressed: unchanged inputs build nothing)."""
    from orchestrator.config import BUILD_TIMEOUT_S
    from orchestrator.images.build import ensure_image
    from orchestrator.images.catalog import get_backend

    app: Application = ctx.obj
    definition = get_backend(backend)
    chosen = app.resolve_device(device)
    image = ensure_image(
        app.engine, definition, chosen, base_image, wheelhouse, app.terminal,
        build_timeout_s=build_timeout or BUILD_TIMEOUT_S,
    )  # fmt: skip
    app.terminal.data(image.tag)
