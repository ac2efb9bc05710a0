from __future__ import annotations

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    DeviceOpt,
    DriverOpt,
    GpuNameOpt,
    ImageQuickOpt,
)


def render(
    ctx: typer.Context,
    backend: BackendArg,
    device: DeviceOpt = None,
    base_image: BaseImageOpt = None,
    quick: ImageQuickOpt = False,
    driver: DriverOpt = None,
    gpu: GpuNameOpt = None,
) -> None:
    """Print the Dockerfile mlorch renders for BACKEND (no engine needed with --device).

    With --device cuda --driver VERSION: the Dockerfile of the stack that driver can run."""
    from orchestrator.config import Device
    from orchestrator.errors import ConfigError
    from orchestrator.host.driver import plan_offline
    from orchestrator.images.build import render_dockerfile
    from orchestrator.images.catalog import get_backend

    app: Application = ctx.obj
    definition = get_backend(backend)
    chosen = app.resolve_device(device)
    base = base_image or definition.default_base[chosen]
    if driver is not None or gpu is not None:
        if chosen is not Device.CUDA or driver is None:
            raise ConfigError(
                "--driver (and --gpu) plan a cuda image",
                key="driver",
                hint="mlorch render BACKEND --device cuda --driver 570.172.08",
            )
        plan = plan_offline(driver, gpu, base_image)
        app.terminal.info(plan.sentence())
        base = plan.base.ref
    app.terminal.data(render_dockerfile(definition, chosen, base).rstrip("\n"))
