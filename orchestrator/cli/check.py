from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import DriverOpt, GpuNameOpt, RunOptions, with_run_options
from orchestrator.submission.layout import Division

CheckTarget = Annotated[
    str,
    typer.Argument(
        help="A submission tree (a folder); a run spec (a TOML file as `up --config` "
        "takes, with --backend); or a BACKEND: then the run `mlorch up BACKEND` would start "
        "with the same options is checked.",
        show_default=False,
    ),
]
SpecBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="The backend a run spec TOML is for (the BACKEND of `mlorch up`).",
        show_default=False,
    ),
]
DivisionOpt = Annotated[
    Division,
    typer.Option("--division", help="The division to judge a spec for.", case_sensitive=False),
]
OfficialOpt = Annotated[
    Path | None,
    typer.Option(
        "--official",
        help="A checkout of mlcommons/inference: also run its submission checker (v6.1) "
        "on the tree.",
        file_okay=False,
        show_default=False,
    ),
]
OfficialTimeoutOpt = Annotated[
    int,
    typer.Option("--official-timeout", help="Seconds the official checker may take.", min=1),
]


@with_run_options(omit=("telemetry_hz", "no_tuned"))
def check(
    ctx: typer.Context,
    options: RunOptions,  # every run option, from with_run_options
    target: CheckTarget,
    backend: SpecBackendOpt = None,
    division: DivisionOpt = Division.CLOSED,
    official: OfficialOpt = None,
    official_timeout: OfficialTimeoutOpt = 600,
    driver: DriverOpt = None,
    gpu: GpuNameOpt = None,
) -> None:
    """Preflight: the rules a run would break, or what a submission tree lacks.

    With a BACKEND and `up`'s options (nothing runs): quick profile, model md5, dataset size,
    the user.conf it would write, compliance, modes and scenarios, and the estimated duration.
    With a tree folder: files, system fields, seeds, durations and counts from the detail logs,
    dataset size, truncation, compliance verdicts, each named with its path; --official also
    runs the MLCommons checker. Exit status 12 when anything is wrong."""
    from orchestrator.cli.tables import check_lines, official_lines, wrap_lines
    from orchestrator.errors import ConfigError, PreflightFailed
    from orchestrator.submission.official import run_official_checker
    from orchestrator.submission.preflight import check_spec
    from orchestrator.submission.tree_check import check_tree

    app: Application = ctx.obj
    tree = Path(target)
    if tree.is_dir():
        report = check_tree(tree)
    else:
        if official is not None:
            raise ConfigError("--official checks a tree: pass the tree's folder", key="official")
        target, config = _spec_source(target, backend, options.config)
        spec = app.spec(
            target, options.device, base_image=options.base_image, quick=options.quick,
            config=config, overrides=options.overrides(telemetry_hz=None, use_tuned=None),
        )  # fmt: skip
        report = check_spec(spec, division.value, config)
        if driver is not None or gpu is not None:
            _plan_driver(app, spec, driver, gpu)
    width = app.terminal.out.width
    for line in check_lines(report, width):
        app.terminal.data(line)
    for note in report.notes:
        app.terminal.info("\n".join(wrap_lines(note, width - 2)))
    verdict = None
    if official is not None:
        with app.terminal.status(f"running the MLCommons checker of {official}"):
            verdict = run_official_checker(official, tree, timeout_s=official_timeout)
        for line in official_lines(verdict, tree, width):
            app.terminal.data(line)
    failed_official = verdict is not None and not verdict.passed
    if report.ok and not failed_official:
        app.terminal.success(f"{report.target}: no problem found")
        return
    parts = [f"{len(report.problems)} problem(s)"] if report.problems else []
    if failed_official:
        parts.append("the MLCommons checker refuses the tree")
    raise PreflightFailed(f"check failed: {' and '.join(parts)} (listed above)")


def _plan_driver(app: Application, spec: object, driver: str | None, gpu: str | None) -> None:
    """`--driver VERSION`: how a host with that driver would run the spec's GPU image; a driver
    no stack serves is exit 10 here, as on the host itself."""
    from contract.dell_trt.settings import PROFILES
    from orchestrator.config import Device, RunSpec
    from orchestrator.errors import ConfigError
    from orchestrator.host.driver import plan_offline

    assert isinstance(spec, RunSpec)
    if spec.device is not Device.CUDA or driver is None:
        raise ConfigError(
            "--driver (and --gpu) plan a cuda run",
            key="driver",
            hint="mlorch check BACKEND --device cuda --driver 570.172.08",
        )
    profiles = {profile.name: profile for profile in PROFILES}
    chosen = profiles.get(spec.harness_profile or "")
    gpu_name = gpu or (chosen.source if chosen is not None else None)
    plan = plan_offline(driver, gpu_name, spec.base_image)
    app.terminal.info(plan.sentence())
    if spec.base_image is None and plan.stack != "cuda13":
        app.terminal.warn(f"the run would build on {plan.base.ref} (the {plan.stack} stack)")


def _spec_source(target: str, backend: str | None, config: Path | None) -> tuple[str, Path | None]:
    """(backend, config file) of `mlorch check TARGET`: a TOML file is the run spec itself."""
    from orchestrator.errors import ConfigError

    path = Path(target)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"run spec not found: {path}", key="target")
        if config is not None:
            raise ConfigError("pass the run spec once: as TARGET or as --config", key="config")
        if backend is None:
            raise ConfigError(
                f"{path} is a run spec: name its backend",
                key="backend",
                hint=f"mlorch check {path} --backend reference (or dell-trt)",
            )
        return backend, path
    if "/" in target or target.startswith("."):  # a path, not a backend name
        raise ConfigError(
            f"no such tree or run spec: {path}",
            key="target",
            hint="pass a submission tree folder, a run spec .toml, or a backend name",
        )
    if backend is not None and backend != target:
        raise ConfigError(f"--backend {backend} and BACKEND {target} differ", key="backend")
    return target, config
