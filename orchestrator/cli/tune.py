from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.application import Application
from orchestrator.cli.options import (
    BackendArg,
    BaseImageOpt,
    ConfigOpt,
    CountOpt,
    DatasetOpt,
    DeviceOpt,
    HarnessProfileOpt,
    MaxBatchsizeOpt,
    MemoryOpt,
    ModelOpt,
    QuickOpt,
    RunsDirOpt,
    ScenariosOpt,
    SetOpt,
    ThreadsOpt,
    TimeoutOpt,
    WheelhouseOpt,
    run_overrides,
)

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


def tune(
    ctx: typer.Context,
    backend: BackendArg,
    device: DeviceOpt = None,
    base_image: BaseImageOpt = None,
    quick: QuickOpt = False,
    budget: BudgetOpt = "10m",
    config: ConfigOpt = None,
    wheelhouse: WheelhouseOpt = None,
    scenario: ScenariosOpt = None,
    model: ModelOpt = None,
    dataset: DatasetOpt = None,
    count: CountOpt = None,
    threads: ThreadsOpt = None,
    max_batchsize: MaxBatchsizeOpt = None,
    timeout: TimeoutOpt = None,
    memory: MemoryOpt = None,
    runs_dir: RunsDirOpt = None,
    set_values: SetOpt = None,
    harness_profile: HarnessProfileOpt = None,
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
    overrides = run_overrides(
        scenario=scenario, mode=None, model=model, dataset=dataset, count=count, skip_bad=False,
        threads=threads, max_batchsize=max_batchsize, timeout=timeout, build_timeout=None,
        memory=memory, telemetry_hz=0.0, runs_dir=runs_dir, set_values=set_values,
        harness_profile=harness_profile, calibration_list=None, min_agreement=None,
        wheelhouse=wheelhouse, compliance=False,
    )  # fmt: skip
    points = []
    for combination in combinations:  # every point validated before anything runs
        given = {**overrides, "set_overrides": (*(set_values or ()), *combination) or None}
        spec = app.spec(
            backend, device, base_image=base_image, quick=quick, config=config, overrides=given
        )
        check_asset_args(spec)
        points.append(SweepPoint(combination, spec))
    outcome = run_tune(points, lambda: app.engine, app.terminal, budget_s=budget_s, quick=quick)
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
