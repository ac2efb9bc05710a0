"""`mlorch tune`: per scenario, the setting that decides its headline figure, found with real
LoadGen runs in the backend's container.

- Server: the highest target QPS LoadGen calls VALID (latency bound and early stopping). The
  search starts from the measured sizing, doubles or halves until it has a VALID and an INVALID
  target, bisects (geometrically) until they are within 5 %, and runs the highest VALID one a
  second time: a shared host stalls now and then, and a value only stands when two runs say so.
- Offline, SingleStream, MultiStream: the expected rate or latency that sizes a VALID run (the
  measurement's value, checked by a run; an Offline run that finished early raises it).

Every probe is one LoadGen test in its own container under `runs/<tune-id>/probes/`. The search
stops at its budget with the best bracket so far. The result goes to `tuned.toml` (a config
file `up --config` takes), `tune.json` (every probe and the brackets), and the tuned-values
store that `up` reads for the same host, image and settings (unless `--no-tuned`).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from contract.sizing import (
    SERVER_EARLY_STOPPING_QUERIES,
    SERVER_LATENCY_BOUND_MS,
    TUNING_KEY,
    Measurement,
    loadgen_value,
    significant,
)
from orchestrator.config import Mode, Profile, QuickLimits, RunSpec, Scenario
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import ConfigError, Interrupted, MlorchError
from orchestrator.host.facts import check_disk
from orchestrator.host.gpu import GpuAccess
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity
from orchestrator.paths import cache_dir
from orchestrator.results.loadgen_log import DETAIL, TestResult, parse_detail_text
from orchestrator.results.manifest import ProbeRecord as Probe
from orchestrator.results.manifest import RunManifest, TestRecord, utc_now
from orchestrator.results.rules import RULES
from orchestrator.running.plan import OFFLINE_QUERY_MARGIN, human_duration
from orchestrator.running.sizing import (
    RunSizing,
    SizingSource,
    Tuned,
    TunedStore,
    outrun_value,
)
from orchestrator.running.up import (
    RunContext,
    cuda_preflight,
    new_run,
    prepare_run,
    run_test,
    signals_as_interrupt,
)

TOLERANCE = 0.05  # the bracket's width: lowest INVALID / highest VALID
GROWTH = 2.0  # the step while only VALID (or only INVALID) targets are known
MIN_TARGET_QPS = 0.01  # below this nothing is VALID: the search gives up
MAX_TARGET_QPS = 1e8
# Probe length: --quick for a lab's first look, otherwise long enough for p99 to settle.
PROBE_DURATION_MS = {True: 2_000, False: 30_000}
OTHER_SCENARIO_TRIES = 3  # runs to find a VALID sizing for Offline / SingleStream / MultiStream
TUNED_TOML = "tuned.toml"
TUNE_JSON = "tune.json"


@dataclass
class ServerSearch:
    """The highest VALID target QPS, bracketed to `tolerance`, the top value confirmed.

    Pure: the caller runs the probe that `next_probe()` names and `record()`s its verdict.
    Results that contradict each other (a VALID above an INVALID: a stall) are settled by the
    newest run: a VALID drops the INVALID targets at or below it, an INVALID the VALID ones at or
    above it."""

    start: float
    tolerance: float = TOLERANCE
    valid: set[float] = field(default_factory=set)
    invalid: set[float] = field(default_factory=set)
    confirmed: set[float] = field(default_factory=set)

    @property
    def bracket(self) -> tuple[float | None, float | None]:
        """(highest VALID, lowest INVALID) so far."""
        return (
            max(self.valid) if self.valid else None,
            min(self.invalid) if self.invalid else None,
        )

    def next_probe(self) -> tuple[float, bool] | None:
        """(target QPS, whether it confirms the top VALID one), or None when the search is done."""
        low, high = self.bracket
        if low is None and high is None:
            return significant(self.start), False
        if high is None:
            assert low is not None
            return (significant(low * GROWTH), False) if low * GROWTH <= MAX_TARGET_QPS else None
        if low is None:
            lower = high / GROWTH
            return (significant(lower), False) if lower >= MIN_TARGET_QPS else None
        if high / low > 1 + self.tolerance:
            middle = significant(math.sqrt(low * high))
            if low < middle < high:
                return middle, False
        if low not in self.confirmed:
            return low, True
        return None

    def record(self, target: float, valid: bool, confirming: bool = False) -> None:
        if valid:
            self.valid.add(target)
            self.invalid = {value for value in self.invalid if value > target}
            if confirming:
                self.confirmed.add(target)
        else:
            self.invalid.add(target)
            self.valid = {value for value in self.valid if value < target}
            self.confirmed.discard(target)

    @property
    def answer(self) -> float | None:
        """The confirmed highest VALID target, None until there is one."""
        low, _ = self.bracket
        return low if low is not None and low in self.confirmed else None


def parse_budget(text: str) -> float:
    """Seconds of a budget written as 90s, 10m, 1.5h or a bare number of seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale is not None else raw
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise ConfigError(
            f"--budget {text!r} is not a duration", key="budget", hint="write it as 90s, 10m or 1h"
        ) from None
    if not seconds > 0:
        raise ConfigError(f"--budget {text!r} must be positive", key="budget", hint="e.g. 10m")
    return seconds


@dataclass(frozen=True)
class SweepPoint:
    """One combination of swept harness settings (`--set` overrides) and the spec it gives."""

    overrides: tuple[str, ...]
    spec: RunSpec

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "as configured"


def sweep_points(sweeps: list[str]) -> list[tuple[str, ...]]:
    """Every combination of `KEY=V1,V2,...` sweeps as `--set` overrides (the one empty
    combination without sweeps)."""
    axes: list[list[str]] = []
    for sweep in sweeps:
        key, sep, values = sweep.partition("=")
        choices = [value.strip() for value in values.split(",") if value.strip()]
        if not sep or not key.strip() or not choices:
            raise ConfigError(
                f"--sweep {sweep!r} is not KEY=V1,V2,...", key="sweep",
                hint="e.g. --sweep Server.batch_size=1,2,4,8",
            )  # fmt: skip
        if key.strip() in {axis[0].partition("=")[0] for axis in axes}:
            raise ConfigError(f"--sweep {key.strip()} is given twice", key="sweep",
                              hint="give each key once with all its values")  # fmt: skip
        axes.append([f"{key.strip()}={choice}" for choice in choices])
    return [tuple(point) for point in itertools.product(*axes)]


@dataclass
class ScenarioTune:
    """What tuning one scenario found (at one sweep point)."""

    scenario: Scenario
    key: str
    value: float | None = None  # the tuned value (tuning units); None when nothing was VALID
    bracket: tuple[float | None, float | None] | None = None  # Server
    start: float | None = None
    start_source: str | None = None
    stopped_by: str = "done"  # done | budget | no VALID target | infeasible
    note: str | None = None
    probes: list[Probe] = field(default_factory=list)
    overrides: tuple[str, ...] = ()  # the sweep point's `--set` overrides

    def better_than(self, other: ScenarioTune | None) -> bool:
        """A found value beats none; a higher rate or a shorter latency beats another."""
        if self.value is None:
            return False
        if other is None or other.value is None:
            return True
        return self.value > other.value if self.key.endswith("qps") else self.value < other.value

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenario"] = self.scenario.value
        data["bracket"] = list(self.bracket) if self.bracket else None
        data["probes"] = [probe.model_dump(mode="json") for probe in self.probes]
        return data


@dataclass
class TuneOutcome:
    run_dir: Path
    scenarios: list[ScenarioTune]  # the best point's, per scenario
    tuned_toml: Path
    tune_json: Path
    points: int = 1

    @property
    def found_any(self) -> bool:
        return any(s.value is not None for s in self.scenarios)


def probe_spec(
    spec: RunSpec, scenario: Scenario, value: float, quick: bool, *, given: bool = True
) -> RunSpec:
    """The spec of one probe: the value under test given (so nothing re-measures; `given=False`
    for the measuring run), probe-length durations, and enough Server queries for early
    stopping."""
    key = TUNING_KEY[scenario.value]
    tuning = spec.tuning.model_copy(update={key: value})
    limits = spec.quick.model_copy(
        update={
            "min_duration_ms": PROBE_DURATION_MS[quick],
            "server_min_query_count": max(
                SERVER_EARLY_STOPPING_QUERIES, spec.quick.server_min_query_count
            ),
        }
    )
    keys = tuple(sorted({*spec.tuning_given, key})) if given else spec.tuning_given
    return spec.model_copy(
        update={"tuning": tuning, "tuning_given": keys, "quick": limits, "profile": Profile.QUICK}
    )


def probe_seconds(spec: RunSpec, scenario: Scenario) -> float:
    """LoadGen time a probe of `spec` will take (its estimate; container start not included)."""
    limits: QuickLimits = spec.quick
    duration = limits.min_duration_ms / 1000
    count = limits.min_query_count(scenario) * RULES[scenario].samples_per_query
    key = TUNING_KEY[scenario.value]
    value = float(getattr(spec.tuning, key))
    if scenario is Scenario.OFFLINE:
        qps = loadgen_value(scenario.value, value, True)
        return max(duration, max(count, qps * duration * OFFLINE_QUERY_MARGIN) / value)
    if scenario is Scenario.SERVER:
        return max(duration, count / value)
    return max(duration, count * value / 1000 / RULES[scenario].samples_per_query)


def tune(
    points: list[SweepPoint],
    connect: Callable[[], DockerEngine],
    terminal: Terminal,
    *,
    budget_s: float,
    quick: bool,
) -> TuneOutcome:
    """Tune every scenario at every sweep point within `budget_s` seconds (preparation
    included); per scenario the best point's value is the answer."""
    started = time.monotonic()
    spec = points[0].spec
    backend = get_backend(spec.backend)
    check_disk(spec.runs_dir)
    gpu_access: GpuAccess | None = None
    cuda_plan = None
    if spec.device.value == "cuda":
        moved, gpu_access, cuda_plan = cuda_preflight(connect, backend, spec, terminal)
        if moved.base_image != spec.base_image:  # every point builds on the stack that runs
            update = {"base_image": moved.base_image}
            points = [replace(p, spec=p.spec.model_copy(update=update)) for p in points]
            spec = points[0].spec
    manifest = new_run(spec, f"{backend.name}-tune")
    manifest.kind = "tune"
    if cuda_plan is not None:
        manifest.cuda = cuda_plan.record()
    run_id, run_dir = manifest.run_id, manifest.run_dir
    identity = Identity.current()
    manifest.invalid_because.append("tune: a search of short runs, not a result to submit")
    manifest.write()
    terminal.step(f"tune {run_id} → {run_dir}")
    tried: list[ScenarioTune] = []
    try:
        with signals_as_interrupt():
            for number, point in enumerate(points, 1):
                plan = TunePlan(points, number, budget_s, started + budget_s, quick)
                _tune_point(point, plan, connect, terminal, manifest, identity, gpu_access, tried)
        manifest.status = "complete"
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        raise Interrupted(
            "interrupted; containers removed, the probes so far kept",
            hint=f"see {run_dir / TUNE_JSON}",
        ) from None
    except MlorchError as exc:
        manifest.status, manifest.error = "failed", exc.message
        raise
    finally:
        manifest.finished = utc_now()
        manifest.wall_seconds = round(time.monotonic() - started, 2)
        manifest.write()
        best = best_per_scenario(tried, spec.scenarios)
        tune_json = _write_tune_json(run_dir, spec, tried, best, budget_s, started)
        tuned_toml = _write_tuned_toml(run_dir, best)
        identity.reclaim(run_dir)
    return TuneOutcome(run_dir, best, tuned_toml, tune_json, len(points))


@dataclass(frozen=True)
class TunePlan:
    """Where one sweep point stands in the whole tune."""

    points: list[SweepPoint]
    number: int  # this point's, from 1
    budget_s: float
    deadline: float  # monotonic
    quick: bool


def _tune_point(
    point: SweepPoint,
    plan: TunePlan,
    connect: Callable[[], DockerEngine],
    terminal: Terminal,
    manifest: RunManifest,
    identity: Identity,
    gpu_access: GpuAccess | None,
    tried: list[ScenarioTune],
) -> None:
    """Prepare the point's run (image, assets, recipe) and tune each of its scenarios; the
    manifest is written after each; what was tried accumulates in `tried`."""
    several = len(plan.points) > 1
    if several:
        terminal.step(f"sweep point {plan.number}/{len(plan.points)}: {point.label}")
    scenarios = ", ".join(s.value for s in point.spec.scenarios)
    ctx = prepare_run(
        point.spec, connect, terminal, manifest, identity, gpu_access,
        lambda count: terminal.info(
            f"plan: tune {scenarios} on {count} images at {len(plan.points)} point(s) within "
            f"{human_duration(plan.budget_s)}"
        ),
    )  # fmt: skip
    found = [
        ScenarioTune(s, TUNING_KEY[s.value], overrides=point.overrides)
        for s in point.spec.scenarios
    ]
    tried += found
    prefix = f"p{plan.number}-" if several else ""
    for item in found:
        _tune_scenario(ctx, item, plan.quick, plan.deadline, prefix)
        manifest.probes = [p for s in tried for p in s.probes]
        manifest.sizing = ctx.sizing.record() if ctx.sizing is not None else {}
        manifest.write()
    _store_tuned(ctx, manifest.run_id, found)


def best_per_scenario(
    tried: list[ScenarioTune], scenarios: tuple[Scenario, ...]
) -> list[ScenarioTune]:
    """Per scenario, the sweep point whose value is best (the first one when none was found)."""
    best: list[ScenarioTune] = []
    for scenario in scenarios:
        mine = [item for item in tried if item.scenario is scenario]
        if not mine:
            continue
        chosen = mine[0]
        for item in mine[1:]:
            if item.better_than(chosen):
                chosen = item
        best.append(chosen)
    return best


def _sizing(ctx: RunContext) -> RunSizing:
    """The run's sizing: tune's runs always size themselves (prepare_run sets it)."""
    if ctx.sizing is None:
        raise RuntimeError("tune needs a self-sizing run, and this one has no sizing")
    return ctx.sizing


def _store_tuned(ctx: RunContext, run_id: str, scenarios: list[ScenarioTune]) -> None:
    """What was found, for `up` to use on the same host, image and settings."""
    store = TunedStore(cache_dir())
    sizing = _sizing(ctx)
    for item in scenarios:
        if item.value is not None:
            key = sizing.keys[item.scenario]
            measurement = sizing.by_scenario[item.scenario].measurement
            store.put(key, Tuned(item.value, utc_now(), run_id, item.bracket, measurement))


def _tune_scenario(
    ctx: RunContext, item: ScenarioTune, quick: bool, deadline: float, prefix: str = ""
) -> None:
    """Search one scenario; the start comes from the run's sizing (measured now if nothing was
    known), each probe is a real LoadGen test."""

    terminal: Terminal = ctx.terminal
    run_sizing = _sizing(ctx)
    entry = run_sizing.by_scenario[item.scenario]
    if entry.source is SizingSource.PROFILE:  # measure first: one short, self-sizing test
        terminal.info(f"tune {item.scenario.value}: measuring where to start")
        spec = probe_spec(ctx.spec, item.scenario, entry.value, quick, given=False)
        # A quick Server pass only estimates the rate; the search starts from a measured one.
        full_pass = Profile.FULL if item.scenario is Scenario.SERVER else None
        sizing = RunSizing(spec, run_sizing.cache, run_sizing.keys, pass_profile=full_pass)
        measure_ctx = replace(ctx, spec=spec, sizing=sizing)
        folder = f"{prefix}{item.scenario.value}-measure"
        run_test(measure_ctx, item.scenario, Mode.PERFORMANCE, probe=folder)
        entry = sizing.by_scenario[item.scenario]
        run_sizing.by_scenario[item.scenario] = entry
    item.start, item.start_source = entry.value, entry.source.value
    if item.scenario is Scenario.SERVER:
        why = entry.server_infeasible()
        if why is not None:
            item.stopped_by, item.note = "infeasible", why
            terminal.warn(f"tune Server: {why}; no target searched")
            return
        _search_server(ctx, item, quick, deadline, run_test, prefix)
    else:
        _size_other(ctx, item, quick, deadline, run_test, prefix)


def _run_probe(
    ctx: RunContext,
    item: ScenarioTune,
    value: float,
    quick: bool,
    confirming: bool,
    deadline: float,
    run_test: Callable[..., tuple[TestResult, TestRecord]],
    prefix: str = "",
) -> Probe | None:
    """One probe, or None when it would not end before the deadline."""
    spec = probe_spec(ctx.spec, item.scenario, value, quick)
    expected = probe_seconds(spec, item.scenario)
    if time.monotonic() + expected > deadline:
        return None
    number = len(item.probes) + 1
    folder = f"{prefix}{item.scenario.value}-{number:02d}"
    probe_ctx = replace(ctx, spec=spec, sizing=None)
    begun = time.monotonic()
    result, record = run_test(probe_ctx, item.scenario, Mode.PERFORMANCE, probe=folder)
    p99 = _p99_ms(ctx.run_dir / record.dir) if item.scenario is Scenario.SERVER else None
    probe = Probe(
        scenario=item.scenario.value, value=value, valid=result.valid is True,
        confirming=confirming, seconds=round(time.monotonic() - begun, 2), folder=record.dir,
        p99_ms=p99, early_stopping_ms=result.early_stopping_ms, result=result.value,
        unmet=list(result.unmet), errors=list(result.errors),
    )  # fmt: skip
    item.probes.append(probe)
    ctx.terminal.info(_probe_line(item, probe, number))
    return probe


def _probe_line(item: ScenarioTune, probe: Probe, number: int) -> str:
    unit = "qps" if item.key.endswith("qps") else "ms"
    verdict = "VALID" if probe.valid else "INVALID"
    if probe.unmet and not probe.valid:
        verdict += f" ({', '.join(probe.unmet)})"
    seen = []
    if probe.p99_ms is not None:
        seen.append(f"p99 {probe.p99_ms:.2f} ms")
    if probe.early_stopping_ms is not None:
        seen.append(f"early-stopping estimate {probe.early_stopping_ms:.2f} ms")
    what = "confirming " if probe.confirming else ""
    details = f", {', '.join(seen)}" if seen else ""
    return (
        f"tune {item.scenario.value} probe {number}: {what}{probe.value:g} {unit} → {verdict}"
        f"{details} ({probe.seconds:.0f} s)"
    )


def _p99_ms(folder: Path) -> float | None:
    try:
        log = parse_detail_text((folder / DETAIL).read_text())
    except OSError:
        return None
    raw = log.get("result_99.00_percentile_latency_ns")
    return float(raw) / 1e6 if isinstance(raw, int | float) else None


def _search_server(
    ctx: RunContext, item: ScenarioTune, quick: bool, deadline: float,
    run_test: Callable[..., tuple[TestResult, TestRecord]], prefix: str = "",
) -> None:  # fmt: skip
    assert item.start is not None
    search = ServerSearch(item.start)
    while (step := search.next_probe()) is not None:
        target, confirming = step
        probe = _run_probe(ctx, item, target, quick, confirming, deadline, run_test, prefix)
        if probe is None:
            item.stopped_by = "budget"
            break
        search.record(target, probe.valid, confirming)
    item.bracket = search.bracket
    item.value = search.answer
    low, high = search.bracket
    if item.stopped_by == "done" and low is None:
        item.stopped_by = "no VALID target"
    if item.value is None and low is not None:
        item.note = f"{low:g} qps was VALID once but not confirmed before the budget ran out"
    elif low is None and high is not None:
        seen = next((p for p in item.probes if p.value == high), None)
        p99 = f" (p99 {seen.p99_ms:.1f} ms there)" if seen and seen.p99_ms else ""
        measurement = _sizing(ctx).by_scenario[Scenario.SERVER].measurement
        item.note = f"no VALID target down to {high:g} qps{p99}" + _server_room(
            measurement, search.next_probe() if item.stopped_by == "budget" else None,
            ctx.spec, quick,
        )  # fmt: skip


def _server_room(
    measurement: Measurement | None, step: tuple[float, bool] | None, spec: RunSpec, quick: bool
) -> str:
    """Why the search found nothing, from the measured one-sample latency: how much of the
    latency bound queueing may take, and what the next probe would have cost."""
    text = ""
    if measurement is not None and measurement.latency_ms:
        room = SERVER_LATENCY_BOUND_MS - measurement.latency_ms
        text = (
            f"; one sample alone takes {measurement.latency_ms:.1f} ms (median), leaving "
            f"{max(room, 0):.1f} ms of the {SERVER_LATENCY_BOUND_MS:g} ms p99 bound for "
            "waiting behind other samples"
        )
    if step is not None:
        seconds = probe_seconds(probe_spec(spec, Scenario.SERVER, step[0], quick), Scenario.SERVER)
        text += (
            f"; the next probe ({step[0]:g} qps) needs {human_duration(seconds)} of LoadGen "
            "time: a larger --budget searches lower"
        )
    return text


def _size_other(
    ctx: RunContext, item: ScenarioTune, quick: bool, deadline: float,
    run_test: Callable[..., tuple[TestResult, TestRecord]], prefix: str = "",
) -> None:  # fmt: skip
    """A run at the sized value; an Offline run that ended before its minimum duration is sized
    again from the rate it ran at, a latency run that ran out of queries from its latency."""
    assert item.start is not None
    value = item.start
    for _ in range(OTHER_SCENARIO_TRIES):
        probe = _run_probe(ctx, item, value, quick, False, deadline, run_test, prefix)
        if probe is None:
            item.stopped_by = "budget"
            return
        if probe.valid:
            item.value = value
            return
        value = _resized(item.scenario, value, probe)
    item.stopped_by = "no VALID target"


def _resized(scenario: Scenario, value: float, probe: Probe) -> float:
    """The next try's value after a probe that was not VALID: the same rule as `up` applies to a
    test that outran its sizing (Offline from the rate it ran at)."""
    rate = probe.result if scenario is Scenario.OFFLINE else None
    ran = Measurement(scenario.value, 1, 1, 1 / rate, rate) if rate and rate > 0 else None
    return outrun_value(scenario, value, ran)


def _write_tune_json(
    run_dir: Path,
    spec: RunSpec,
    tried: list[ScenarioTune],
    best: list[ScenarioTune],
    budget_s: float,
    started: float,
) -> Path:
    path = run_dir / TUNE_JSON
    path.write_text(
        json.dumps(
            {
                "backend": spec.backend,
                "device": spec.device.value,
                "budget_s": budget_s,
                "seconds": round(time.monotonic() - started, 2),
                "tolerance": TOLERANCE,
                "best": [s.record() for s in best],
                "tried": [s.record() for s in tried],
            },
            indent=2,
        )
        + "\n"
    )
    return path


def _write_tuned_toml(run_dir: Path, scenarios: list[ScenarioTune]) -> Path:
    """A config file `up --config` takes: the best sweep point's harness settings (scoped to
    the scenario they won in) under [run], the tuned values under [run.tuning]."""
    lines = [
        "# mlorch tune: the values found for this host, image and settings",
        "# (use with: mlorch up BACKEND --config tuned.toml)",
    ]
    overrides = [
        override if "." in override.partition("=")[0] else f"{item.scenario.value}.{override}"
        for item in scenarios
        if item.value is not None
        for override in item.overrides
    ]
    if overrides:
        lines += ["[run]", f"set_overrides = {json.dumps(overrides)}"]
    lines.append("[run.tuning]")
    for item in scenarios:
        if item.value is None:
            lines.append(f"# {item.key}: not found ({item.stopped_by})")
            continue
        comment = ""
        if item.bracket:
            low, high = item.bracket
            comment = f"  # highest VALID {low:g}, lowest INVALID {high:g}" if high else ""
        lines.append(f"{item.key} = {item.value:g}{comment}")
    path = run_dir / TUNED_TOML
    path.write_text("\n".join(lines) + "\n")
    return path
