from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import BackendArg, RunOptions, with_run_options

SweepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        help="A harness setting to try at several values, KEY=V1,V2,... (repeatable; every "
        "combination is tuned and the best per scenario kept), e.g. "
        "--sweep Server.batch_size=1,2,4,8.",
        show_default=False,
    ),
]
BudgetOpt = Annotated[
    str,
    typer.Option(
        "--budget",
        help="Time the whole search may take, preparation included (90s, 10m, 1h); it stops "
        "there with the best bracket so far.",
    ),
]


@with_run_options(omit=("mode", "skip_bad", "build_timeout", "telemetry_hz", "calibration_list",
                         "calibration", "min_agreement", "compliance", "no_tuned",
                         "system_id"))  # fmt: skip
def tune(
    ctx: typer.Context,
    options: RunOptions,  # every run option, from with_run_options
    backend: BackendArg,
    budget: BudgetOpt = "10m",
    sweep: SweepOpt = None,
) -> None:
    """Find, with real LoadGen runs, each scenario's setting that decides its figure.

    Server: the highest target QPS that is VALID at the latency bound (ResNet50: 15 ms p99),
    bracketed to 5 % and the top value confirmed by a second run. Offline, SingleStream,
    MultiStream: the expected rate or latency that sizes a VALID run. Probes are short
    (--quick: 2 s each, else 30 s) and live under RUNS_DIR/<tune-id>/probes/. Writes tuned.toml
    (for `up --config`) and tune.json (every probe); `up` then uses the tuned values for the same
    host, image and settings by itself (`up --no-tuned` ignores them)."""
    from orchestrator.assets import check_asset_args
    from orchestrator.running.tune import SweepPoint, parse_budget, sweep_points
    from orchestrator.running.tune import tune as run_tune

    app: Application = ctx.obj
    budget_s = parse_budget(budget)
    combinations = sweep_points(sweep or [])
    fixed = {"modes": None, "telemetry_hz": 0.0, "compliance": False, "use_tuned": None}
    points = []
    for combination in combinations:  # every point validated before anything runs
        given = options.overrides(
            **fixed, set_overrides=(*(options.set_values or ()), *combination) or None
        )
        spec = app.spec(
            backend, options.device, base_image=options.base_image, quick=options.quick,
            config=options.config, overrides=given,
        )  # fmt: skip
        check_asset_args(spec)
        points.append(SweepPoint(combination, spec))
    outcome = run_tune(
        points, lambda: app.engine, app.terminal, budget_s=budget_s, quick=options.quick
    )
    for item in outcome.scenarios:
        unit = "qps" if item.key.endswith("qps") else "ms"
        if item.value is not None:
            line = f"{item.scenario.value}: {item.key} = {item.value:g} {unit}"
            if outcome.points > 1:
                line += f" at {' '.join(item.overrides)}"
            if item.bracket and item.bracket[1] is not None:
                line += f" (lowest INVALID {item.bracket[1]:g})"
            app.terminal.success(f"{line}, {len(item.probes)} probes")
        else:
            why = item.note or item.stopped_by
            app.terminal.warn(f"{item.scenario.value}: nothing tuned ({why})")
    app.terminal.success(
        f"tuned values in {outcome.tuned_toml}; every probe in {outcome.tune_json}"
    )
    if not outcome.found_any:
        raise typer.Exit(1)
