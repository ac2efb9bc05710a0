from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import BaseImageOpt, WheelhouseOpt

assets_app = typer.Typer(
    help="Create or fetch the model and dataset.", no_args_is_help=True, rich_markup_mode=None
)


@assets_app.command("synthetic")
def synthetic(
    ctx: typer.Context,
    images: Annotated[int, typer.Option("--images", "-n", help="How many JPEGs.", min=1)] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of weights and images.")] = 0,
    base_image: BaseImageOpt = None,
    wheelhouse: WheelhouseOpt = None,
) -> None:
    """Make a random-weight ResNet50-v1.5 ONNX and N JPEGs labelled by its own FP32 answers.

    They are generated inside the reference CPU image (built when missing), like every other
    model and data step: the host runs no ML code.
    """
    from orchestrator.assets import synthetic_request
    from orchestrator.assets.prepare import SYNTHETIC_TIMEOUT_S, Preparer, ensure_synthetic
    from orchestrator.config import Device
    from orchestrator.images.build import ensure_image
    from orchestrator.images.catalog import get_backend
    from orchestrator.images.containers import Identity

    app: Application = ctx.obj
    request = synthetic_request(images, seed)
    if not request.complete:
        backend = get_backend("reference")
        image = ensure_image(app.engine, backend, Device.CPU, base_image, wheelhouse, app.terminal)
        prep = Preparer(
            app.engine, backend, image.tag, "assets", Identity.current(), app.terminal,
            timeout_s=SYNTHETIC_TIMEOUT_S,
        )  # fmt: skip
        ensure_synthetic(prep, request)
    model, dataset = request.model, request.dataset
    app.terminal.info(
        "synthetic assets: accuracy runs on them are a plumbing check (FP32 scores 100 %)"
    )
    app.terminal.data(f"model   {model}\ndataset {dataset}")


@assets_app.command("model")
def model(
    ctx: typer.Context,
    opset: Annotated[
        int, typer.Option("--opset", help="11 (zenodo 4735647) or 8 (zenodo 2592612).")
    ] = 11,
    dest: Annotated[
        Path | None,
        typer.Option("--dest", help="Folder [default: the mlorch cache].", file_okay=False),
    ] = None,
) -> None:
    """Download the official resnet50_v1.onnx and verify its md5."""
    from orchestrator.assets.model import download_model
    from orchestrator.paths import cache_dir

    app: Application = ctx.obj
    with app.terminal.status(f"downloading resnet50_v1.onnx (opset {opset})"):
        path = download_model(dest or cache_dir() / "models" / f"opset{opset}", opset)
    app.terminal.data(str(path))
