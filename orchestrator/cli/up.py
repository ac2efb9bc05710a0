from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    ConfigOpt,
    DeviceOpt,
    QuickOpt,
    WheelhouseOpt,
)
from orchestrator.cli.tables import results_legend, results_list, results_table
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
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Run without damaged dataset entries instead of refusing (NOT submission-valid).",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="SUT worker threads [default: CPU count].", min=1),
    ] = None,
    max_batchsize: Annotated[
        int | None, typer.Option("--max-batchsize", help="Largest batch [default: 32].", min=1)
    ] = None,
    timeout: Annotated[
        int | None,
        typer.Option("--timeout", help="Seconds one test may take [default: 7200].", min=1),
    ] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(
            "--runs-dir", help="Where runs are written [default: ./runs].", file_okay=False
        ),
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="dell-trt harness setting, key=value or Scenario.key=value (repeatable), "
            "e.g. --set Offline.batch_size=1024 --set use_graphs=false.",
            show_default=False,
        ),
    ] = None,
    calibration_list: Annotated[
        Path | None,
        typer.Option(
            "--calibration-list",
            help="dell-trt on real ImageNet: the official cal_image_list_option_1.txt "
            "(500 names, sha256-checked).",
            dir_okay=False,
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(
            "--min-agreement",
            help="dell-trt: top-1 agreement with FP32 every engine must reach [default: 0.99].",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    harness_profile: Annotated[
        str | None,
        typer.Option(
            "--harness-profile",
            help="dell-trt: use this named settings profile instead of the one matching "
            "the GPUs (e.g. nvidia-h100-sxm, dell-r750xa-a100-pcie-80gb, cpu-twin).",
            show_default=False,
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
            "skip_bad": skip_bad or None,
            "threads": threads,
            "max_batchsize": max_batchsize,
            "test_timeout_s": timeout,
            "set_overrides": tuple(set_values) if set_values else None,
            "harness_profile": harness_profile,
            "calibration_list": calibration_list,
            "min_agreement": min_agreement,
            "runs_dir": runs_dir,
            "wheelhouse": wheelhouse,
        },
    )
    outcome = run_up(spec, lambda: app.engine, app.terminal)
    app.terminal.table(
        results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
    )
    app.terminal.success(f"results in {outcome.manifest.run_dir}")
