from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import OptionalBackendsArg, RunOptions, with_run_options
from orchestrator.cli.tables import results_legend, results_list, results_table
from orchestrator.errors import ConfigError

ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="RUN",
        help="Finish an interrupted or failed run (its id or folder) with its own settings: "
        "the tests it completed are kept, the rest run. `mlorch runs` marks these runs ↻.",
        show_default=False,
    ),
]


@with_run_options()
def up(
    ctx: typer.Context,
    options: RunOptions,  # every run option, from with_run_options
    backends: OptionalBackendsArg = None,
    resume: ResumeOpt = None,
) -> None:
    """Build the BACKEND image and run its LoadGen scenarios, one test per container.

    Several backends (`mlorch up reference dell-trt`) run one after another with the same
    assets, profile and flags (--set and --harness-profile go to the backends that have harness
    settings), then a comparison report is written to RUNS_DIR/compare-<timestamp>/ as
    `mlorch compare` writes it. A failing backend does not stop the others; after the report
    the exit code is the first failure's (0 when every backend completed)."""
    from orchestrator.assets import check_asset_args
    from orchestrator.running.up import up as run_up

    app: Application = ctx.obj
    if resume is not None:
        _resume(app, resume, backends or [], options)
        return
    if not backends:
        raise ConfigError(
            "name a backend to run", key="backend",
            hint="`mlorch up reference`, `mlorch up dell-trt`, or `mlorch up --resume RUN`",
        )  # fmt: skip
    overrides = options.overrides()
    if len(backends) > 1:
        _several(app, backends, options, overrides)
        return
    spec = app.spec(
        backends[0], options.device, base_image=options.base_image, quick=options.quick,
        config=options.config, overrides=overrides,
    )  # fmt: skip
    check_asset_args(spec)  # a bad path or pairing leaves no failed run folder behind
    outcome = run_up(spec, lambda: app.engine, app.terminal)
    app.terminal.table(
        results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
    )
    app.terminal.success(f"results in {outcome.manifest.run_dir}")


def _resume(app: Application, run: str, backends: list[str], options: RunOptions) -> None:
    """`up --resume RUN`: the run's own spec; other run options would change it, so they are
    refused rather than ignored."""
    from orchestrator.results.manifest import resolve_run
    from orchestrator.running.resume import prepare_resume
    from orchestrator.running.up import up as run_up

    given = options.given("runs_dir")
    if given:
        raise ConfigError(
            f"--resume takes the run's own settings; {', '.join(given)} would change them",
            key="resume", hint="drop those options, or start a new run with them",
        )  # fmt: skip
    run_dir = resolve_run(run, options.runs_dir or Path("runs"))
    resumption = prepare_resume(run_dir)
    if backends and backends != [resumption.spec.backend]:
        raise ConfigError(
            f"run {resumption.manifest.run_id} is a {resumption.spec.backend} run, not "
            f"{' '.join(backends)}", key="resume", hint="name no backend with --resume",
        )  # fmt: skip
    outcome = run_up(resumption.spec, lambda: app.engine, app.terminal, resume=resumption)
    app.terminal.table(
        results_table(outcome), narrow=results_list(outcome), legend=results_legend(outcome)
    )
    app.terminal.success(f"results in {outcome.manifest.run_dir}")


# dell-trt's own options: `up A B` passes them to the backends with harness settings
# (and the reference's, application.REFERENCE_ONLY, to the others).
HARNESS_ONLY = (
    "set_overrides",
    "harness_profile",
    "calibration_list",
    "calibration",
    "min_agreement",
)


def _several(
    app: Application, backends: list[str], options: RunOptions, overrides: dict[str, Any]
) -> None:
    """Every spec validated before the first backend starts; then run, compare, report."""
    from orchestrator.assets import check_asset_args
    from orchestrator.cli.application import REFERENCE_ONLY
    from orchestrator.images.catalog import get_backend
    from orchestrator.report.terminal import render_terminal
    from orchestrator.running.several import run_several

    with_harness = {name for name in backends if get_backend(name).harness_profiles}
    mixed = 0 < len(with_harness) < len(set(backends))
    resolved = app.resolve_device(options.device)
    specs = []
    for name in backends:
        # with several backends each option goes to the backends it is for
        drop = (tuple(REFERENCE_ONLY) if name in with_harness else HARNESS_ONLY) if mixed else ()
        specs.append(
            app.spec(
                name,
                resolved,
                base_image=options.base_image,
                quick=options.quick,
                config=options.config,
                overrides=overrides,
                drop=drop,
            )
        )
    for spec in specs:  # before the first backend starts
        check_asset_args(spec)
    outcome = run_several(specs, lambda: app.engine, app.terminal)
    if outcome.comparison is not None and outcome.files is not None:
        for table in render_terminal(outcome.comparison, detailed=False):
            app.terminal.table(table)
        app.terminal.success(f"comparison: {outcome.files.html}")
    outcome.raise_for_failures()
