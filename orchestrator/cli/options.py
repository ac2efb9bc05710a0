"""Options shared by up/check/render/build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.config import Device, Mode, Scenario

BackendArg = Annotated[
    str, typer.Argument(help="Backend: reference or dell-trt.", show_default=False)
]
BackendsArg = Annotated[
    list[str],
    typer.Argument(
        help="Backend(s) to run: reference, dell-trt; several run one after another and are "
        "compared.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    Device | None,
    typer.Option(
        "--device",
        help="cpu or cuda [default: cuda when GPUs and the NVIDIA runtime are present]",
        case_sensitive=False,
        show_default=False,
    ),
]
BaseImageOpt = Annotated[
    str | None,
    typer.Option(
        "--base-image",
        help="Base image for the SUT Dockerfile [default: the pinned NGC image; "
        "a local bootstrap when it cannot be pulled].",
        show_default=False,
    ),
]
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Short durations and counts (NOT submission-valid).")
]
ImageQuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick",
        help="Accepted so `up` flags can be reused; the image is the same for both profiles.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with a [run] table (unknown keys are errors).",
        exists=False,
        dir_okay=False,
    ),
]
WheelhouseOpt = Annotated[
    Path | None,
    typer.Option(
        "--wheelhouse",
        help="Use this folder of wheels offline instead of downloading.",
        file_okay=False,
    ),
]
BuildTimeoutOpt = Annotated[
    int | None,
    typer.Option(
        "--build-timeout",
        help="Seconds the whole image build may take [default: 3600].",
        min=1,
        show_default=False,
    ),
]

# `up`'s run options (`check` takes the same, to judge the run `up` would start)
ScenariosOpt = Annotated[
    list[Scenario] | None,
    typer.Option(
        "--scenario",
        "-s",
        help="Scenario to run (repeatable) [default: all four].",
        show_default=False,
    ),
]
ModesOpt = Annotated[
    list[Mode] | None,
    typer.Option(
        "--mode", "-m", help="Mode to run (repeatable) [default: both].", show_default=False
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="resnet50_v1.onnx [default: synthetic].", dir_okay=False),
]
DatasetOpt = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="ImageNet folder with val_map.txt [default: synthetic].",
        file_okay=False,
    ),
]
CountOpt = Annotated[
    int | None, typer.Option("--count", help="Use only the first N images.", min=1)
]
SkipBadOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Run without damaged dataset entries instead of refusing (NOT submission-valid).",
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", help="SUT worker threads [default: CPU count].", min=1),
]
MaxBatchsizeOpt = Annotated[
    int | None, typer.Option("--max-batchsize", help="Largest batch [default: 32].", min=1)
]
TimeoutOpt = Annotated[
    int | None,
    typer.Option(
        "--timeout",
        help="Seconds each container may take: one test, the preprocessing, the synthetic "
        "assets [default: 7200].",
        min=1,
    ),
]
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory",
        help="Memory limit of each container, e.g. 8g or 512m [default: none].",
        show_default=False,
    ),
]
TelemetryHzOpt = Annotated[
    float | None,
    typer.Option(
        "--telemetry-hz",
        help="GPU (NVML) and host samples a second while each test runs; 0: none [default: 10].",
        min=0.0,
        max=100.0,
        show_default=False,
    ),
]
ComplianceOpt = Annotated[
    bool | None,
    typer.Option(
        "--compliance/--no-compliance",
        help="Run the MLPerf compliance audits TEST01 and TEST04 for each scenario and "
        "verify them [default: on, off with --quick].",
        show_default=False,
    ),
]
TunedOpt = Annotated[
    bool,
    typer.Option(
        "--no-tuned",
        help="Ignore what `mlorch tune` found for this host, image and settings.",
        show_default=False,
    ),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where runs are written [default: ./runs].", file_okay=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="dell-trt harness setting, key=value or Scenario.key=value (repeatable), "
        "e.g. --set Offline.batch_size=1024 --set use_graphs=false.",
        show_default=False,
    ),
]
CalibrationListOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration-list",
        help="dell-trt on real ImageNet: the official cal_image_list_option_1.txt "
        "(500 names, sha256-checked).",
        dir_okay=False,
    ),
]
MinAgreementOpt = Annotated[
    float | None,
    typer.Option(
        "--min-agreement",
        help="dell-trt: top-1 agreement with FP32 every engine must reach [default: 0.99].",
        min=0.0,
        max=1.0,
    ),
]
HarnessProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--harness-profile",
        help="dell-trt: use this named settings profile instead of the one matching "
        "the GPUs (e.g. nvidia-h100-sxm, dell-r750xa-a100-pcie-80gb, cpu-twin).",
        show_default=False,
    ),
]


def run_overrides(
    *,
    scenario: list[Scenario] | None,
    mode: list[Mode] | None,
    model: Path | None,
    dataset: Path | None,
    count: int | None,
    skip_bad: bool,
    threads: int | None,
    max_batchsize: int | None,
    timeout: int | None,
    build_timeout: int | None,
    memory: str | None,
    telemetry_hz: float | None,
    runs_dir: Path | None,
    set_values: list[str] | None,
    harness_profile: str | None,
    calibration_list: Path | None,
    min_agreement: float | None,
    wheelhouse: Path | None,
    compliance: bool | None,
    no_tuned: bool = False,
) -> dict[str, Any]:
    """The RunSpec keys the run options set (None: not given, the config file or default).
    `compliance` None: the config file's, else on for the full profile and off for --quick."""
    return {
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
        "telemetry_hz": telemetry_hz,
        "set_overrides": tuple(set_values) if set_values else None,
        "harness_profile": harness_profile,
        "calibration_list": calibration_list,
        "min_agreement": min_agreement,
        "compliance": compliance,
        "runs_dir": runs_dir,
        "wheelhouse": wheelhouse,
        "use_tuned": False if no_tuned else None,
    }
