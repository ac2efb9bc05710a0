from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendsArg,
    BaseImageOpt,
    BuildTimeoutOpt,
    ConfigOpt,
    DeviceOpt,
    QuickOpt,
    WheelhouseOpt,
)
from orchestrator.cli.tables import results_legend, results_list, results_table
from orchestrator.config import Device, Mode, Scenario


def up(
    ctx: typer.Context,
    backends: BackendsArg,
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
    compliance: Annotated[
        bool | None,
        typer.Option(
            "--compliance/--no-compliance",
            help="Run the MLPerf compliance audits TEST01 and TEST04 for each scenario and "
            "verify them [default: on, off with --quick].",
            show_default=False,
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
    """Build the BACKEND image and run its LoadGen scenarios, one test per container.

    Several backends (`mlorch up reference dell-trt`) run one after another with the same
    assets, profile and flags (--set and --harness-profile go to the backends that have harness
    settings), then a comparison report is written to RUNS_DIR/compare-<timestamp>/ as
    `mlorch compare` writes it. A failing backend does not stop the others; after the report
    the exit code is the first failure's (0 when every backend completed)."""
    from orchestrator.run import up as run_up

    app: Application = ctx.obj
    overrides: dict[str, Any] = {
        "scenarios": tuple(scenario) if scenario else None,
        "modes": tuple(mode) if mode else None,
        "model": model,
        "dataset": dataset,
        "dataset_count": count,
        "skip_bad": skip_bad or None,
        "threads": threads,
        "max_batchsize": max_batchsize,
        "test_timeout_s": timeout,
        "build_timeout_s": build_timeout,
        "memory": memory,
        "set_overrides": tuple(set_values) if set_values else None,
        "harness_profile": harness_profile,
        "calibration_list": calibration_list,
        "min_agreement": min_agreement,
        "compliance": compliance,
        "runs_dir": runs_dir,
        "wheelhouse": wheelhouse,
    }
    if len(backends) > 1:
        _campaign(app, backends, device, base_image, quick, config, overrides)
        return
    spec = app.spec(
        backends[0], device, base_image=base_image, quick=quick, config=config, overrides=overrides
    )
    outcome = run_up(spec, lambda: app.engine, app.terminal)
    app.terminal.table(
        results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
    )
    app.terminal.success(f"results in {outcome.manifest.run_dir}")


# dell-trt's own options: a campaign passes them to the backends that have harness settings.
HARNESS_ONLY = ("set_overrides", "harness_profile", "calibration_list", "min_agreement")


def _campaign(
    app: Application,
    backends: list[str],
    device: Device | None,
    base_image: str | None,
    quick: bool,
    config: Path | None,
    overrides: dict[str, Any],
) -> None:
    """Every spec validated before the first backend starts; then run, compare, report."""
    from orchestrator.campaign import run_campaign
    from orchestrator.catalog import get_backend
    from orchestrator.report.terminal import render_terminal

    with_harness = {name for name in backends if get_backend(name).harness_profiles}
    resolved = app.resolve_device(device)
    specs = []
    for name in backends:
        values = dict(overrides)
        if with_harness and name not in with_harness:
            values.update(dict.fromkeys(HARNESS_ONLY))  # dell-trt's settings, not this backend's
        specs.append(
            app.spec(
                name,
                resolved,
                base_image=base_image,
                quick=quick,
                config=config,
                overrides=values,
            )
        )
    outcome = run_campaign(specs, lambda: app.engine, app.terminal)
    if outcome.comparison is not None and outcome.files is not None:
        for table in render_terminal(outcome.comparison, detailed=False):
            app.terminal.table(table)
        app.terminal.success(f"comparison: {outcome.files.html}")
    outcome.raise_for_failures()
