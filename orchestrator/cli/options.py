"""Options shared by up/render/build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.config import Device

BackendArg = Annotated[str, typer.Argument(help="Backend to run: reference.", show_default=False)]
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
