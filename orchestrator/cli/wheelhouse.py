from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.config import Device
from orchestrator.images.catalog import CUDA_BASES, NGC_BASE

# The pinned NGC base's platform (catalog.NGC_BASE): what the wheels are for when nothing says.
# Without --base-image: the platform of the pinned NGC base (what `up` builds on by default).
DEFAULT_PYTHON = CUDA_BASES[NGC_BASE].python
DEFAULT_GLIBC = CUDA_BASES[NGC_BASE].glibc


def wheelhouse(
    ctx: typer.Context,
    backend: Annotated[str, typer.Argument(help="Backend whose image the wheels are for.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to fill.", file_okay=False)
    ],
    device: Annotated[Device, typer.Option("--device", case_sensitive=False)] = Device.CUDA,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            help="The base image the wheels are for; it must be present here (it is probed).",
            show_default=False,
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help=f"Python of the target base image, without --base-image [default: "
            f"{DEFAULT_PYTHON}, the pinned NGC base's].",
            show_default=False,
        ),
    ] = None,
    glibc: Annotated[
        str | None,
        typer.Option(
            "--glibc",
            help=f"glibc of the target base image, without --base-image [default: "
            f"{DEFAULT_GLIBC}].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download BACKEND's wheels into a folder for an air-gapped host (`up --wheelhouse`).

    The folder records the platform it was made for; `up`/`build --wheelhouse` refuse it for a
    base image it does not fit.
    """
    from orchestrator.errors import ConfigError
    from orchestrator.images.catalog import get_backend
    from orchestrator.images.wheelhouse import export_wheelhouse, platform_from_flags

    app: Application = ctx.obj
    definition = get_backend(backend)
    if base_image is not None:
        if python is not None or glibc is not None:
            raise ConfigError(
                "--base-image and --python/--glibc both name the target platform",
                key="python",
                hint="give --base-image when the image is present here, else --python and --glibc",
            )
        from orchestrator.images.build import probe_local_image

        platform = probe_local_image(app.engine, base_image)
        made_for = f"{base_image} ({platform.describe()})"
    else:
        platform = platform_from_flags(python or DEFAULT_PYTHON, glibc or DEFAULT_GLIBC)
        made_for = platform.describe()
        if python is None and glibc is None:
            app.terminal.info(
                f"no --base-image: wheels for {made_for}, the pinned NGC base's "
                "(pass --base-image IMAGE to match another image)"
            )
    with app.terminal.status(f"downloading {backend} {device.value} wheels for {made_for}"):
        house = export_wheelhouse(
            definition.requirements_for(device, base_image or definition.default_base[device]),
            platform,
            output,
            base_image=base_image,
            sources=definition.native_sources,
        )
    app.terminal.success(f"{len(house.wheels())} wheels for {made_for} in {house.path}")
