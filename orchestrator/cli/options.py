"""Options shared by the commands: the run options (`up`, `tune`, `check`) declared once, and
the others several commands take."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer

from orchestrator.config import Calibration, Device, Mode, Scenario

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
OptionalBackendsArg = Annotated[
    list[str] | None,
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
SystemIdOpt = Annotated[
    str | None,
    typer.Option(
        "--system-id",
        help="The system's id in a submission tree (a campaign sets it per node and backend) "
        "[default: host name, accelerators and backend].",
        show_default=False,
    ),
]
DriverOpt = Annotated[
    str | None,
    typer.Option(
        "--driver",
        help="cuda: plan for a host with this NVIDIA driver (e.g. 535.183.01) instead of this "
        "one: the stack, its base and CUDA, and how the driver runs it.",
        show_default=False,
    ),
]
GpuNameOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help="With --driver: the GPU as NVML names it (e.g. 'NVIDIA GeForce RTX 4090'); "
        "decides whether forward compatibility can serve it [default: a data-center GPU].",
        show_default=False,
    ),
]
CalibrationOpt = Annotated[
    Calibration | None,
    typer.Option(
        "--calibration",
        help="dell-trt: INT8 calibration method: auto (prepare entropy, percentile and minmax, "
        "keep the best on the guard images), entropy, percentile or minmax [default: auto].",
        show_default=False,
    ),
]
MinAgreementOpt = Annotated[
    float | None,
    typer.Option(
        "--min-agreement",
        help="dell-trt: also require this top-1 agreement with FP32 of every quantized model "
        "and engine (the accuracy rule's 99 % ratio always applies) [default: not required].",
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


@dataclass(frozen=True)
class RunOptions:
    """The options of a run, as `up`, `tune` and `check` take them (`with_run_options`)."""

    device: Device | None = None
    base_image: str | None = None
    quick: bool = False
    config: Path | None = None
    wheelhouse: Path | None = None
    scenario: list[Scenario] | None = None
    mode: list[Mode] | None = None
    model: Path | None = None
    dataset: Path | None = None
    count: int | None = None
    skip_bad: bool = False
    threads: int | None = None
    max_batchsize: int | None = None
    timeout: int | None = None
    build_timeout: int | None = None
    memory: str | None = None
    telemetry_hz: float | None = None
    runs_dir: Path | None = None
    set_values: list[str] | None = None
    calibration_list: Path | None = None
    calibration: Calibration | None = None
    min_agreement: float | None = None
    harness_profile: str | None = None
    compliance: bool | None = None
    no_tuned: bool = False
    system_id: str | None = None

    def given(self, *allowed: str) -> list[str]:
        """The flags given on the command line (values other than their defaults), but those
        named in `allowed`, as the user typed them (`--quick`, `--set`)."""
        flags = []
        for item in fields(self):
            if item.name in allowed or getattr(self, item.name) == item.default:
                continue
            flags.append(_flag(item.name))
        return flags

    def overrides(self, **fixed: Any) -> dict[str, Any]:
        """The RunSpec keys the options set (None: not given, the config file's or the
        default); `fixed` replaces what a command decides itself. `compliance` None: the config
        file's, else on for the full profile and off for --quick."""
        values = {
            "scenarios": tuple(self.scenario) if self.scenario else None,
            "modes": tuple(self.mode) if self.mode else None,
            "model": self.model,
            "dataset": self.dataset,
            "dataset_count": self.count,
            "skip_bad": self.skip_bad or None,
            "threads": self.threads,
            "max_batchsize": self.max_batchsize,
            "test_timeout_s": self.timeout,
            "build_timeout_s": self.build_timeout,
            "memory": self.memory,
            "telemetry_hz": self.telemetry_hz,
            "set_overrides": tuple(self.set_values) if self.set_values else None,
            "harness_profile": self.harness_profile,
            "calibration_list": self.calibration_list,
            "calibration": self.calibration,
            "min_agreement": self.min_agreement,
            "compliance": self.compliance,
            "runs_dir": self.runs_dir,
            "wheelhouse": self.wheelhouse,
            "use_tuned": False if self.no_tuned else None,
            "system_id": self.system_id,
        }
        return {**values, **fixed}


# Each run option: its annotation (name, help, checks) and its default.
RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "device": (DeviceOpt, None),
    "base_image": (BaseImageOpt, None),
    "quick": (QuickOpt, False),
    "config": (ConfigOpt, None),
    "wheelhouse": (WheelhouseOpt, None),
    "scenario": (ScenariosOpt, None),
    "mode": (ModesOpt, None),
    "model": (ModelOpt, None),
    "dataset": (DatasetOpt, None),
    "count": (CountOpt, None),
    "skip_bad": (SkipBadOpt, False),
    "threads": (ThreadsOpt, None),
    "max_batchsize": (MaxBatchsizeOpt, None),
    "timeout": (TimeoutOpt, None),
    "build_timeout": (BuildTimeoutOpt, None),
    "memory": (MemoryOpt, None),
    "telemetry_hz": (TelemetryHzOpt, None),
    "runs_dir": (RunsDirOpt, None),
    "set_values": (SetOpt, None),
    "calibration_list": (CalibrationListOpt, None),
    "calibration": (CalibrationOpt, None),
    "min_agreement": (MinAgreementOpt, None),
    "harness_profile": (HarnessProfileOpt, None),
    "compliance": (ComplianceOpt, None),
    "no_tuned": (TunedOpt, False),
    "system_id": (SystemIdOpt, None),
}

Command = TypeVar("Command", bound=Callable[..., Any])


def with_run_options(*, omit: tuple[str, ...] = ()) -> Callable[[Command], Command]:
    """Give a command every run option (but those in `omit`) as CLI options, handed to it as
    one `options: RunOptions` argument: `up`, `tune` and `check` declare them once, here."""
    unknown = set(omit) - set(RUN_OPTIONS)
    if unknown:
        raise ValueError(f"unknown run options {sorted(unknown)}")

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=value)
            for name, (kind, value) in RUN_OPTIONS.items()
            if name not in omit
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in RUN_OPTIONS if name in kwargs}
            return command(*args, options=RunOptions(**given), **kwargs)

        parameters = [*own, *added]
        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return cast(Command, run)

    return decorate


def _flag(name: str) -> str:
    """The long flag of run option `name` as its typer.Option declares it."""
    kind = RUN_OPTIONS[name][0]
    for meta in getattr(kind, "__metadata__", ()):
        long = [d for d in getattr(meta, "param_decls", ()) if d.startswith("--")]
        if long:
            return str(long[0])
    return "--" + name.replace("_", "-")
