from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.config import Device


def wheelhouse(
    ctx: typer.Context,
    backend: Annotated[str, typer.Argument(help="Backend whose image the wheels are for.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to fill.", file_okay=False)
    ],
    device: Annotated[Device, typer.Option("--device", case_sensitive=False)] = Device.CUDA,
    python: Annotated[
        str, typer.Option("--python", help="Python of the target base image.")
    ] = "3.12",
    glibc: Annotated[str, typer.Option("--glibc", help="glibc of the target base image.")] = "2.39",
) -> None:
    """Download BACKEND's wheels into a folder for an air-gapped host (`up --wheelhouse`)."""
    from orchestrator.catalog import get_backend
    from orchestrator.wheelhouse import Platform, export_wheelhouse

    app: Application = ctx.obj
    definition = get_backend(backend)
    with app.terminal.status(f"downloading wheels for Python {python} / glibc {glibc}"):
        house = export_wheelhouse(definition.requirements[device], Platform(python, glibc), output)
    app.terminal.success(f"{len(house.wheels())} wheels in {house.path}")
