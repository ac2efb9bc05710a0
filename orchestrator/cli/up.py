from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    BuildTimeoutOpt,
    ConfigOpt,
    DeviceOpt,
    QuickOpt,
    WheelhouseOpt,
)
from orchestrator.cli.tables import results_table
from orchestrator.config import Mode, Scenario


def up(
    ctx: typer.Context,
    backend: BackendArg,
    device: DeviceOpt = None,
    base_image: BaseImageOpt = None,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
    wheelhouse: WheelhouseOpt = None,
    scenario: Annotated[
        list[Scenario] | None,
        typer.Option(
            "--scenario",
            "-s",
            help="Scenario to run (repeatable) [default: all four].",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        list[Mode] | None,
        typer.Option(
            "--mode", "-m", help="Mode to run (repeatable) [default: both].", show_default=False
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="resnet50_v1.onnx [default: synthetic].", dir_okay=False),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="ImageNet folder with val_map.txt [default: synthetic].",
            file_okay=False,
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Use only the first N images.", min=1)
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="SUT worker threads [default: CPU count].", min=1),
    ] = None,
    max_batchsize: Annotated[
        int | None, typer.Option("--max-batchsize", help="Largest batch [default: 32].", min=1)
    ] = None,
    timeout: Annotated[
        int | None,
        typer.Option(
            "--timeout",
            help="Seconds each container may take: one test, the preprocessing, the synthetic "
            "assets [default: 7200].",
            min=1,
        ),
    ] = None,
    build_timeout: BuildTimeoutOpt = None,
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory",
            help="Memory limit of each container, e.g. 8g or 512m [default: none].",
            show_default=False,
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(
            "--runs-dir", help="Where runs are written [default: ./runs].", file_okay=False
        ),
    ] = None,
) -> None:
    """Build the BACKEND image and run its LoadGen scenarios, one test per container."""
    from orchestrator.run import up as run_up

    app: Application = ctx.obj
    spec = app.spec(
        backend,
        device,
        base_image=base_image,
        quick=quick,
        config=config,
        overrides={
            "scenarios": tuple(scenario) if scenario else None,
            "modes": tuple(mode) if mode else None,
            "model": model,
            "dataset": dataset,
            "dataset_count": count,
            "threads": threads,
            "max_batchsize": max_batchsize,
            "test_timeout_s": timeout,
            "build_timeout_s": build_timeout,
            "memory": memory,
            "runs_dir": runs_dir,
            "wheelhouse": wheelhouse,
        },
    )
    outcome = run_up(spec, lambda: app.engine, app.terminal)
    app.terminal.table(results_table(outcome))
    app.terminal.success(f"results in {outcome.manifest.run_dir}")
