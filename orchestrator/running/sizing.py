"""Self-sizing on the host: where each scenario's expected rate or latency comes from.

Per scenario of a run, in order: the value the user gave (`[run.tuning]` in the config file) is
used as given; else what `mlorch tune` found for exactly this host, image, backend, device,
model and settings (unless `--no-tuned`); else a measurement cached for that same key; else the
scenario's first performance test measures the SUT right before its LoadGen test (`--sizing`,
backends.common.probe) and sizes itself, and the host caches what it measured for every later
test and run. The profile's guess only stands until then (and sizes the plan's first estimate).
The rules from a measurement to a value live in contract.sizing, which the containers apply too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from contract.locks import atomic_write_text
from contract.sizing import (
    MULTI_STREAM_SAMPLES,
    SERVER_EARLY_STOPPING_QUERIES,
    SERVER_LATENCY_BOUND_MS,
    TUNING_KEY,
    Measurement,
    significant,
    tuning_value,
)
from orchestrator.config import Mode, Profile, QuickLimits, RunSpec, Scenario, Tuning
from orchestrator.results.loadgen_log import TestResult
from orchestrator.results.manifest import SizingRecord, utc_now

DEFAULT_QUICK = QuickLimits()
SIZING_VERSION = 1  # part of every cache key: a change of the rules re-measures
CACHE_FOLDER = "sizing"
TUNED_FOLDER = "tuned"


class SizingSource(StrEnum):
    USER = "user"  # [run.tuning] in the config file: never replaced
    TUNED = "tuned"  # what `mlorch tune` found for this key (`--no-tuned` ignores it)
    CACHED = "cached measurement"
    MEASURED = "measured now"
    # A test ran faster than its sizing (Offline under its minimum duration, a latency scenario
    # out of queries): what its own LoadGen run measured sizes the second try and later runs.
    OUTRUN = "measured by its own run"
    PROFILE = "profile guess"  # until the scenario's first performance test measures


# A test that outran its sizing grows (Offline) or shrinks (latency) its value at least this much
# for the second try, whatever its own run measured.
OUTRUN_STEP = 1.5
# LoadGen's words when a latency scenario issued every query it generated before its minimum.
RAN_OUT = "ran out of generated queries"


class ScenarioSizing(SizingRecord):
    """One scenario's sizing value (tuning units: qps or ms) and where it came from: the
    manifest's SizingRecord, plus the scenario it sizes and its source, typed."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario = Field(exclude=True)  # the manifest keys its records by scenario
    source: SizingSource

    @classmethod
    def of(
        cls, scenario: Scenario, value: float, source: SizingSource, cache_key: str,
        measurement: Measurement | None = None, measured_at: str | None = None,
        bracket: tuple[float | None, float | None] | None = None, outran: str | None = None,
    ) -> ScenarioSizing:  # fmt: skip
        return cls(
            scenario=scenario, key=TUNING_KEY[scenario.value], value=value, source=source,
            cache_key=cache_key, measurement=measurement, measured_at=measured_at,
            bracket=bracket, outran=outran,
        )  # fmt: skip

    def record(self) -> SizingRecord:
        """The manifest's record of it."""
        return SizingRecord.model_validate(self.model_dump())

    def describe(self) -> str:
        unit = "qps" if self.key.endswith("qps") else "ms"
        what = f"{self.scenario.value} {self.key} = {self.value:g} {unit}"
        if self.source is SizingSource.PROFILE:
            return f"{what} (profile guess), measured before its first performance test"
        if self.source is SizingSource.CACHED:
            return f"{what} (cached measurement of {self.measured_at})"
        if self.source is SizingSource.TUNED:
            return f"{what} (tuned {self.measured_at}{_bracket_text(self.bracket)})"
        if self.source is SizingSource.OUTRUN and self.outran:
            return f"{what} ({self.source.value}: {self.outran})"
        if self.measurement is not None and self.measurement.estimated:
            # a --quick Server pass: workers ÷ the single-sample latency, no burst
            return f"{what} ({self.source.value}, estimated from one sample's latency)"
        return f"{what} ({self.source.value})"

    def server_infeasible(self) -> str | None:
        """Why no Server target can be VALID here, in words, when one sample alone is over
        the latency bound; None otherwise or when that is not known."""
        m = self.measurement
        if self.scenario is not Scenario.SERVER or m is None or m.server_feasible:
            return None
        return (
            f"Server cannot be VALID on this host with these settings: one sample alone takes "
            f"{m.latency_ms:.1f} ms (median of the measured pass), over the "
            f"{SERVER_LATENCY_BOUND_MS:g} ms p99 bound"
        )


def _bracket_text(bracket: tuple[float | None, float | None] | None) -> str:
    if not bracket:
        return ""
    valid, invalid = bracket
    shown = [
        f"highest VALID {valid:g}" if valid else "",
        f"lowest INVALID {invalid:g}" if invalid else "",
    ]
    return "; " + ", ".join(text for text in shown if text) if any(shown) else ""


def sizing_key(spec: RunSpec, scenario: Scenario, host: dict[str, Any], image_id: str,
               model_digest: str) -> str:  # fmt: skip
    """What a measurement depends on: the host (CPU, cores, GPUs), the image, the backend and
    device, the model that runs, and every setting of the scenario's SUT."""
    facts = {
        "version": SIZING_VERSION,
        "host": [host.get("hostname"), host.get("cpu_model"), host.get("cpu_count")],
        "gpus": [gpu.get("name") for gpu in host.get("gpus") or ()],
        "image": image_id,
        "backend": spec.backend,
        "device": spec.device.value,
        "scenario": scenario.value,
        "model": model_digest,
        "threads": spec.threads,
        "max_batchsize": spec.max_batchsize,
        "harness": spec.harness.scenario(scenario.value) if spec.harness else None,
        "harness_gpus": spec.harness.gpus if spec.harness else None,
        "memory": spec.memory,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


class _KeyedJson:
    """One small JSON object per key in a folder of the cache, written atomically (concurrent
    runs read a whole file or none)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, key: str) -> dict[str, Any] | None:
        """The object stored for `key`; None when absent, not JSON or not an object."""
        try:
            data = json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, key: str, data: dict[str, Any]) -> None:
        atomic_write_text(self.folder / f"{key}.json", json.dumps(data))

    def forget(self, key: str) -> None:
        (self.folder / f"{key}.json").unlink(missing_ok=True)


class SizingCache:
    """Measurements by key, under <cache>/sizing/."""

    def __init__(self, root: Path) -> None:
        self.files = _KeyedJson(root / CACHE_FOLDER)

    def get(self, key: str) -> tuple[Measurement, str] | None:
        """(measurement, when) for `key`; None when absent or unreadable (re-measured)."""
        data = self.files.read(key)
        if data is None:
            return None
        try:
            return Measurement.from_dict(data["measurement"]), str(data["measured_at"])
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, measurement: Measurement, when: str) -> None:
        self.files.write(key, {"measured_at": when, "measurement": measurement.to_dict()})

    def forget(self, key: str) -> None:
        self.files.forget(key)


@dataclass(frozen=True)
class Tuned:
    """What `mlorch tune` found for one key: the value (tuning units), when, the Server bracket
    (highest VALID, lowest INVALID target QPS), the tune run, and the measurement it started
    from (if any)."""

    value: float
    when: str
    run_id: str
    bracket: tuple[float | None, float | None] | None = None
    measurement: Measurement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "when": self.when,
            "run_id": self.run_id,
            "bracket": list(self.bracket) if self.bracket else None,
            "measurement": self.measurement.to_dict() if self.measurement else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tuned:
        bracket = data.get("bracket")
        measurement = data.get("measurement")
        value = float(data["value"])
        if not value > 0:
            raise ValueError("a tuned value must be positive")
        return cls(
            value,
            str(data["when"]),
            str(data["run_id"]),
            (bracket[0], bracket[1]) if bracket else None,
            Measurement.from_dict(measurement) if measurement else None,
        )


class TunedStore:
    """`mlorch tune`'s results by key, under <cache>/tuned/."""

    def __init__(self, root: Path) -> None:
        self.files = _KeyedJson(root / TUNED_FOLDER)

    def get(self, key: str) -> Tuned | None:
        """What tune found for `key`; None when absent or unreadable."""
        data = self.files.read(key)
        if data is None:
            return None
        try:
            return Tuned.from_dict(data)
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def put(self, key: str, tuned: Tuned) -> None:
        self.files.write(key, tuned.to_dict())

    def forget(self, key: str) -> None:
        self.files.forget(key)


class RunSizing:
    """The sizing of one run's scenarios, updated as its tests measure."""

    def __init__(
        self,
        spec: RunSpec,
        cache: SizingCache,
        keys: dict[Scenario, str],
        tuned: TunedStore | None = None,
        pass_profile: Profile | None = None,
    ) -> None:
        self.base = spec
        # The measured pass's profile when it is not the run's: tune's start needs a measured
        # Server rate even in a --quick tune (a quick pass only estimates it).
        self.pass_profile = pass_profile
        self.cache = cache
        self.tuned = tuned
        self.keys = dict(keys)
        self.retried: set[Scenario] = set()
        self.by_scenario: dict[Scenario, ScenarioSizing] = {}
        given = set(spec.tuning_given)
        for scenario, key in keys.items():
            tuning_key = TUNING_KEY[scenario.value]
            value = float(getattr(spec.tuning, tuning_key))
            found = None if tuning_key in given or tuned is None else tuned.get(key)
            cached = None if tuning_key in given else cache.get(key)
            if cached is not None and cached[0].estimated and not spec.quick_run:
                cached = None  # a --quick pass's estimate: a full run measures for itself
            if tuning_key in given:
                entry = ScenarioSizing.of(scenario, value, SizingSource.USER, key)
            elif found is not None:
                entry = ScenarioSizing.of(
                    scenario, found.value, SizingSource.TUNED, key,
                    found.measurement or (cached[0] if cached else None), found.when,
                    found.bracket,
                )  # fmt: skip
            elif cached is not None:
                measurement, when = cached
                entry = ScenarioSizing.of(
                    scenario, tuning_value(measurement), SizingSource.CACHED, key,
                    measurement, when,
                )  # fmt: skip
            else:
                entry = ScenarioSizing.of(scenario, value, SizingSource.PROFILE, key)
            self.by_scenario[scenario] = entry

    @property
    def spec(self) -> RunSpec:
        """The run's spec with the tuning as sized so far (what user.conf and estimates use)."""
        values = self.base.tuning.model_dump()
        for entry in self.by_scenario.values():
            values[entry.key] = entry.value
        update: dict[str, object] = {"tuning": Tuning.model_validate(values)}
        if self.server_tried():  # the default count, raised to the early-stopping one
            update["quick"] = self.base.quick.model_copy(
                update={"server_min_query_count": SERVER_EARLY_STOPPING_QUERIES}
            )
        return self.base.model_copy(update=update)

    def server_tried(self) -> bool:
        """Whether a --quick run's Server target was tried by a search (tuned) or is the user's:
        its test then runs enough queries for early stopping to call it VALID, as tune's probes
        did. A measured or estimated start keeps the short count (a smoke test), and so does a
        count the user set in [run.quick] (any but the default, which survives a manifest's
        round trip where `model_fields_set` would not)."""
        entry = self.by_scenario.get(Scenario.SERVER)
        return (
            self.base.quick_run
            and entry is not None
            and entry.source in (SizingSource.TUNED, SizingSource.USER)
            and self.base.quick.server_min_query_count == DEFAULT_QUICK.server_min_query_count
        )

    def request(self, scenario: Scenario, mode: Mode) -> str | None:
        """The container's `--sizing` for this test: its profile when the test must measure
        (a performance test of a scenario nothing has sized yet), else None."""
        entry = self.by_scenario.get(scenario)
        if mode is not Mode.PERFORMANCE or entry is None:
            return None
        if entry.source is not SizingSource.PROFILE:
            return None
        return (self.pass_profile or self.base.profile).value

    def measured(self, scenario: Scenario, sizing_record: dict[str, Any]) -> ScenarioSizing:
        """Take what a test measured (its harness.json `sizing`), cache it, size later tests."""
        measurement = Measurement.from_dict(sizing_record["measurement"])
        old = self.by_scenario[scenario]
        when = utc_now()
        entry = ScenarioSizing.of(
            scenario, tuning_value(measurement), SizingSource.MEASURED, old.cache_key,
            measurement, when,
        )  # fmt: skip
        self.cache.put(old.cache_key, measurement, when)
        self.by_scenario[scenario] = entry
        return entry

    def record(self) -> dict[str, SizingRecord]:
        return {scenario.value: entry.record() for scenario, entry in self.by_scenario.items()}

    def outran(self, scenario: Scenario, result: TestResult) -> ScenarioSizing | None:
        """After a performance test that ran faster than its sizing: the scenario re-sized from
        what that run measured, cached in place of the value that was wrong (a tuned value that
        was wrong is dropped), for one more try. None when there is nothing to retry: the test
        did not outrun its sizing, the value is the user's, or this run tried once already."""
        entry = self.by_scenario.get(scenario)
        if entry is None or entry.source is SizingSource.USER or scenario in self.retried:
            return None
        if not outran_sizing(result):
            return None
        self.retried.add(scenario)
        measurement = measurement_of(result)
        value = outrun_value(scenario, entry.value, measurement)
        what = _outrun_words(entry, result)
        if self.tuned is not None and entry.source is SizingSource.TUNED:
            self.tuned.forget(entry.cache_key)
        if measurement is not None:
            self.cache.put(entry.cache_key, measurement, utc_now())
        else:  # nothing to size later runs from: they measure again
            self.cache.forget(entry.cache_key)
        new = ScenarioSizing.of(
            scenario, value, SizingSource.OUTRUN, entry.cache_key, measurement, utc_now(),
            outran=what,
        )  # fmt: skip
        self.by_scenario[scenario] = new
        return new


def outran_sizing(result: TestResult) -> bool:
    """Whether a performance test broke because the SUT was faster than its sizing said:
    Offline under its minimum duration, SingleStream/MultiStream out of generated queries."""
    if result.valid is not False or result.scenario == Scenario.SERVER.value:
        return False
    if any(RAN_OUT in error.lower() for error in result.errors):
        return True
    return "min duration" in result.unmet or "min queries" in result.unmet


def measurement_of(result: TestResult) -> Measurement | None:
    """A sizing measurement from a LoadGen performance run itself: Offline's samples per second;
    for SingleStream and MultiStream the mean latency of the queries it ran. None for Server or
    when its log lacks the figures."""
    if result.scenario == Scenario.OFFLINE.value:
        rate, samples = result.value, result.samples
        if not rate or rate <= 0 or not samples:
            return None
        return Measurement(result.scenario, samples, 1, samples / rate, rate)
    latency, queries = result.mean_latency_ms, result.samples  # samples: its query count
    if result.scenario == Scenario.SERVER.value or not latency or latency <= 0 or not queries:
        return None
    per_query = MULTI_STREAM_SAMPLES if result.scenario == Scenario.MULTI_STREAM.value else 1
    seconds = queries * latency / 1000
    return Measurement(
        result.scenario, queries * per_query, queries, seconds, queries * per_query / seconds,
        latency_ms=latency, latency_p90_ms=result.percentile_ms,
    )  # fmt: skip


def outrun_value(scenario: Scenario, value: float, measurement: Measurement | None) -> float:
    """The value for another try after a run outran `value`: what the run measured sizes it,
    and it moves at least OUTRUN_STEP the right way (Offline: more samples per second;
    SingleStream, MultiStream: a shorter expected latency, so more queries)."""
    measured = tuning_value(measurement) if measurement is not None else None
    if scenario is Scenario.OFFLINE:
        return significant(max(value * OUTRUN_STEP, measured or 0.0))
    stepped = value / OUTRUN_STEP
    return significant(min(stepped, measured) if measured else stepped)


def _outrun_words(entry: ScenarioSizing, result: TestResult) -> str:
    unit = "qps" if entry.key.endswith("qps") else "ms"
    if result.scenario == Scenario.OFFLINE.value:
        ran = f"ran {result.value:g} samples/s" if result.value else "ran faster"
        broke = "finished before its minimum duration"
    else:
        latency = result.mean_latency_ms
        ran = f"mean latency {latency:.2f} ms" if latency else "ran faster"
        broke = "ran out of queries"
    return f"the test sized by {entry.value:g} {unit} ({entry.source.value}) {broke}: {ran}"
