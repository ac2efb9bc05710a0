"""Self-sizing: the rules from a measured pass to LoadGen's values, proven against LoadGen's own
query arithmetic over simulated hosts from 1 to 1 000 000 samples/s; the host-side sources,
cache and keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from contract.sizing import (
    MULTI_STREAM_SAMPLES,
    SERVER_EARLY_STOPPING_QUERIES,
    TUNING_KEY,
    Measurement,
    loadgen_value,
    tuning_value,
)
from orchestrator.config import (
    DEFAULT_TUNING,
    Device,
    Mode,
    Profile,
    QuickLimits,
    RunSpec,
    Scenario,
)
from orchestrator.results.loadgen_log import TestResult as LoadGenResult
from orchestrator.results.rules import RULES
from orchestrator.running.sizing import (
    RunSizing,
    SizingCache,
    SizingSource,
    Tuned,
    TunedStore,
    measurement_of,
    outran_sizing,
    outrun_value,
    sizing_key,
)
from orchestrator.running.userconf import render_user_conf
from tests.support.specs import HOST, harness_record, run_spec

RATES = [10.0**exponent for exponent in range(7)]  # 1/s .. 1 000 000/s
# How much faster or slower the LoadGen test runs than the measured pass (warm caches, a
# neighbour's load, clock boost): sizing must hold over this whole range.
DRIFT = (0.6, 0.8, 1.0, 1.2, 1.35)
LATENCY_DRIFT = (1 / 3.5, 0.5, 1.0, 2.0, 5.0)  # test latency / pass latency


def _limits(profile: Profile) -> tuple[float, dict[Scenario, int]]:
    """(min duration s, min query count per scenario) of a profile, as user.conf sets them."""
    if profile is Profile.QUICK:
        quick = QuickLimits()
        return quick.min_duration_ms / 1000, {s: quick.min_query_count(s) for s in Scenario}
    return 600.0, {s: RULES[s].min_query_count for s in Scenario}


def _offline_seconds(expected_qps: float, real_rate: float, profile: Profile) -> float:
    """LoadGen Offline: one query of max(min_query_count, 1.1 × min_duration × qps) samples."""
    duration, counts = _limits(profile)
    value = loadgen_value("Offline", expected_qps, profile is Profile.QUICK)
    samples = max(counts[Scenario.OFFLINE], int(1.1 * duration * value))
    return samples / real_rate


def _runs_out(scenario: Scenario, expected_ms: float, real_ms: float, profile: Profile) -> bool:
    """LoadGen SingleStream/MultiStream generate queries for twice the minimum duration at the
    expected latency; a SUT faster than that issues them all before the minimum duration."""
    duration, counts = _limits(profile)
    minimum = counts[scenario]
    generated = max(minimum, math.ceil(2 * duration / (expected_ms / 1000)))
    needed = max(minimum, math.ceil(duration / (real_ms / 1000)))
    return generated < needed


def _latency_measurement(scenario: str, latency_ms: float) -> Measurement:
    samples = MULTI_STREAM_SAMPLES if scenario == "MultiStream" else 1
    return Measurement(scenario, samples * 10, 10, latency_ms / 100, samples * 1000 / latency_ms,
                       latency_ms=latency_ms, latency_p90_ms=latency_ms * 1.1)  # fmt: skip


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("rate", RATES)
def test_offline_sized_from_a_measurement_lasts_its_minimum_duration(
    profile: Profile, rate: float
) -> None:
    measured = Measurement("Offline", 64, 1, 64 / rate, rate)
    expected = tuning_value(measured)
    duration, counts = _limits(profile)
    for drift in DRIFT:
        assert _offline_seconds(expected, rate * drift, profile) >= duration, (rate, drift)
    # and not needlessly long: at the measured rate, under 3 minimum durations (quick: 6),
    # unless the rules' minimum sample count alone takes longer
    limit = 3 * duration * (2 if profile is Profile.QUICK else 1)
    assert _offline_seconds(expected, rate, profile) <= max(limit, counts[Scenario.OFFLINE] / rate)


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("scenario", [Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM])
@pytest.mark.parametrize("rate", RATES)
def test_latency_sized_from_a_measurement_never_runs_out_of_queries(
    profile: Profile, scenario: Scenario, rate: float
) -> None:
    samples = MULTI_STREAM_SAMPLES if scenario is Scenario.MULTI_STREAM else 1
    latency_ms = 1000 * samples / rate
    expected_ms = tuning_value(_latency_measurement(scenario.value, latency_ms))
    for drift in LATENCY_DRIFT:
        assert not _runs_out(scenario, expected_ms, latency_ms * drift, profile), (rate, drift)


@pytest.mark.parametrize("rate", RATES)
def test_the_old_guesses_fail_where_measurement_does_not(rate: float) -> None:
    """What a fixed guess did: the CPU defaults (20 qps, 50 ms) break on hosts far from them."""
    guess = DEFAULT_TUNING[Device.CPU]
    broken = _offline_seconds(guess.offline_expected_qps, rate, Profile.QUICK) < 1.5 or _runs_out(
        Scenario.SINGLE_STREAM, guess.single_stream_expected_latency_ms, 1000 / rate, Profile.QUICK
    )
    assert broken == (rate >= 100)  # 10/s and slower ran long enough; faster hosts broke


def test_server_starts_at_half_the_burst_rate_and_knows_the_bound() -> None:
    fast = Measurement("Server", 100, 100, 1.0, 400.0, latency_ms=4.0, latency_p90_ms=5.0)
    slow = Measurement("Server", 20, 20, 1.0, 30.0, latency_ms=40.0, latency_p90_ms=48.0)
    assert tuning_value(fast) == 200.0
    assert fast.server_feasible
    assert not slow.server_feasible
    # one slow query of a handful (its "p90") does not make a fast median infeasible
    hiccup = Measurement("Server", 6, 6, 0.1, 88.0, latency_ms=12.5, latency_p90_ms=37.9)
    assert hiccup.server_feasible


def test_loadgen_value_adds_the_quick_offline_headroom_only() -> None:
    assert loadgen_value("Offline", 100.0, quick=True) == 200.0
    assert loadgen_value("Offline", 100.0, quick=False) == 100.0
    assert loadgen_value("SingleStream", 5.0, quick=True) == 5.0


@pytest.mark.parametrize(
    "data",
    [
        {"scenario": "Offline", "samples": 1, "queries": 1, "seconds": 1, "samples_per_second": 0},
        {"scenario": "Bogus", "samples": 1, "queries": 1, "seconds": 1, "samples_per_second": 1},
        {"scenario": "SingleStream", "samples": 1, "queries": 1, "seconds": 1,
         "samples_per_second": 1},  # a latency scenario without a latency
        {"scenario": "Offline"},
    ],
)  # fmt: skip
def test_damaged_measurements_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Measurement.from_dict(data)


def test_measurement_round_trips() -> None:
    m = _latency_measurement("MultiStream", 80.0)
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


# --- the host side: sources, cache, keys ---------------------------------------------------------


def _keys(spec: RunSpec, image: str = "sha256:aa") -> dict[Scenario, str]:
    return {s: sizing_key(spec, s, HOST, image, "md5") for s in spec.scenarios}


def _record(measurement: Measurement) -> dict[str, object]:
    return {"measurement": measurement.to_dict()}


def test_first_run_measures_then_the_second_measures_nothing(tmp_path: Path) -> None:
    spec = run_spec()
    cache = SizingCache(tmp_path)
    first = RunSizing(spec, cache, _keys(spec))
    assert {e.source for e in first.by_scenario.values()} == {SizingSource.PROFILE}
    assert first.request(Scenario.OFFLINE, Mode.PERFORMANCE) == "quick"
    assert first.request(Scenario.OFFLINE, Mode.ACCURACY) is None  # accuracy needs no sizing

    entry = first.measured(Scenario.OFFLINE, _record(Measurement("Offline", 64, 1, 0.5, 128.0)))
    assert entry.source is SizingSource.MEASURED
    assert first.spec.tuning.offline_expected_qps == 160.0  # 128 × 1.25
    assert first.request(Scenario.OFFLINE, Mode.PERFORMANCE) is None  # later tests use it

    second = RunSizing(spec, cache, _keys(spec))
    offline = second.by_scenario[Scenario.OFFLINE]
    assert offline.source is SizingSource.CACHED
    assert offline.value == 160.0
    assert second.request(Scenario.OFFLINE, Mode.PERFORMANCE) is None
    assert second.request(Scenario.SINGLE_STREAM, Mode.PERFORMANCE) == "quick"  # not measured


def test_user_values_are_never_measured_or_replaced(tmp_path: Path) -> None:
    tuning = DEFAULT_TUNING[Device.CPU].model_copy(update={"offline_expected_qps": 7.0})
    spec = run_spec(tuning=tuning, tuning_given=("offline_expected_qps",))
    cache = SizingCache(tmp_path)
    cache.put(_keys(spec)[Scenario.OFFLINE], Measurement("Offline", 64, 1, 0.1, 640.0), "then")
    sizing = RunSizing(spec, cache, _keys(spec))
    offline = sizing.by_scenario[Scenario.OFFLINE]
    assert (offline.source, offline.value) == (SizingSource.USER, 7.0)
    assert sizing.request(Scenario.OFFLINE, Mode.PERFORMANCE) is None
    assert sizing.spec.tuning.offline_expected_qps == 7.0


def test_unknown_given_tuning_key_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tuning key"):
        run_spec(tuning_given=("offline_qps",))


@pytest.mark.parametrize(
    "change",
    [
        {"threads": 1},
        {"max_batchsize": 8},
        {"memory": "4g"},
        {"device": Device.CUDA},
        {"harness": harness_record(Offline={"batch_size": 16})},
    ],
)
def test_a_changed_setting_re_measures(tmp_path: Path, change: dict[str, object]) -> None:
    spec = run_spec()
    changed = run_spec(**change)
    assert _keys(spec)[Scenario.OFFLINE] != _keys(changed)[Scenario.OFFLINE]
    assert _keys(spec) != _keys(spec, image="sha256:bb")
    other_host = sizing_key(
        spec, Scenario.OFFLINE, {**HOST, "cpu_model": "Xeon"}, "sha256:aa", "md5"
    )
    assert other_host != _keys(spec)[Scenario.OFFLINE]


def test_another_scenarios_harness_settings_do_not_re_measure() -> None:
    one = run_spec(harness=harness_record(Server={"batch_size": 1}))
    two = run_spec(harness=harness_record(Server={"batch_size": 2}))
    assert _keys(one)[Scenario.OFFLINE] == _keys(two)[Scenario.OFFLINE]
    assert _keys(one)[Scenario.SERVER] != _keys(two)[Scenario.SERVER]


def test_a_damaged_cache_entry_is_measured_again(tmp_path: Path) -> None:
    spec = run_spec()
    keys = _keys(spec)
    folder = tmp_path / "sizing"
    folder.mkdir()
    (folder / f"{keys[Scenario.OFFLINE]}.json").write_text("{not json")
    sizing = RunSizing(spec, SizingCache(tmp_path), keys)
    assert sizing.by_scenario[Scenario.OFFLINE].source is SizingSource.PROFILE


def test_server_infeasible_is_said_in_words(tmp_path: Path) -> None:
    spec = run_spec()
    sizing = RunSizing(spec, SizingCache(tmp_path), _keys(spec))
    slow = Measurement("Server", 20, 20, 1.0, 30.0, latency_ms=40.0, latency_p90_ms=48.0)
    entry = sizing.measured(Scenario.SERVER, _record(slow))
    why = entry.server_infeasible()
    assert why is not None
    assert "one sample alone takes 40.0 ms (median of the measured pass)" in why
    assert "15 ms" in why


def test_record_names_every_scenario_and_its_source(tmp_path: Path) -> None:
    spec = run_spec()
    sizing = RunSizing(spec, SizingCache(tmp_path), _keys(spec))
    record = sizing.record()
    assert set(record) == {s.value for s in Scenario}
    assert {r.key for r in record.values()} == set(TUNING_KEY.values())
    assert all(r.source == "profile guess" for r in record.values())


# --- a test that outran its sizing: re-sized from its own run, tried once more -------------------


def _result(scenario: str, **fields: object) -> LoadGenResult:
    values: dict[str, object] = {
        "scenario": scenario, "mode": "PerformanceOnly", "loadgen_version": "6.0.17",
        "valid": False, "metric": "m", "value": None, "unit": "", "early_stopping_ms": None,
        "mean_latency_ms": None, "min_duration_ms": 1500, "duration_s": None, "samples": None,
        "errors": (), "warnings": (),
    }  # fmt: skip
    values.update(fields)
    return LoadGenResult(**values)  # type: ignore[arg-type]


RAN_OUT_TEXT = (
    "error_runtime: Ran out of generated queries to issue before the minimum query count and "
    "test duration were reached."
)
EARLY_OFFLINE = _result("Offline", value=300.0, samples=150, unmet=("min duration",))
RAN_OUT = _result(
    "SingleStream", samples=40, mean_latency_ms=4.0,
    errors=(RAN_OUT_TEXT,),
)  # fmt: skip


@pytest.mark.parametrize(
    ("result", "outran"),
    [
        (EARLY_OFFLINE, True),
        (RAN_OUT, True),
        (_result("MultiStream", samples=9, mean_latency_ms=30.0, unmet=("min queries",)), True),
        (_result("Offline", value=300.0, samples=150, valid=True), False),
        (_result("Offline", value=300.0, samples=150, unmet=("early stopping",)), False),
        (_result("Server", value=20.0, samples=100, unmet=("min duration",)), False),
        (_result("SingleStream", samples=9, mean_latency_ms=3.0, unmet=("early stopping",)), False),
    ],
)
def test_what_outran_its_sizing(result: LoadGenResult, outran: bool) -> None:
    assert outran_sizing(result) is outran


def test_a_run_measures_itself() -> None:
    offline = measurement_of(EARLY_OFFLINE)
    assert offline is not None
    assert (offline.samples_per_second, offline.seconds) == (300.0, 0.5)
    single = measurement_of(RAN_OUT)
    assert single is not None
    assert (single.latency_ms, single.queries, single.samples_per_second) == (4.0, 40, 250.0)
    multi = measurement_of(_result("MultiStream", samples=10, mean_latency_ms=40.0))
    assert multi is not None
    assert (multi.samples, multi.samples_per_second) == (80, 200.0)
    assert measurement_of(_result("Offline")) is None  # a log without the figures
    assert measurement_of(_result("Server", samples=10, mean_latency_ms=4.0)) is None


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("slowdown", [2.0, 10.0, 100.0])
def test_a_stale_offline_value_is_valid_on_the_second_try(
    profile: Profile, rate: float, slowdown: float
) -> None:
    """A rate cached while the host was `slowdown`× slower: the test finishes early, and the
    rate it ran at sizes a second try that lasts its minimum duration."""
    duration, _ = _limits(profile)
    stale = tuning_value(Measurement("Offline", 64, 1, 64 * slowdown / rate, rate / slowdown))
    first = _offline_seconds(stale, rate, profile)
    if first >= duration:
        return  # the rules' minimum sample count alone outlasted the stale rate
    samples = max(1, round(first * rate))
    ran = _result("Offline", value=rate, samples=samples, unmet=("min duration",))
    again = outrun_value(Scenario.OFFLINE, stale, measurement_of(ran))
    assert _offline_seconds(again, rate, profile) >= duration
    assert again >= stale * 1.5


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("scenario", [Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM])
@pytest.mark.parametrize("latency_ms", [0.01, 1.0, 30.0, 1000.0])
@pytest.mark.parametrize("speedup", [4.0, 10.0, 100.0])
def test_a_stale_latency_is_valid_on_the_second_try(
    profile: Profile, scenario: Scenario, latency_ms: float, speedup: float
) -> None:
    stale = tuning_value(_latency_measurement(scenario.value, latency_ms * speedup))
    ran = _result(scenario.value, samples=100, mean_latency_ms=latency_ms, errors=(RAN_OUT_TEXT,))
    again = outrun_value(scenario, stale, measurement_of(ran))
    assert not _runs_out(scenario, again, latency_ms, profile)
    assert again <= stale / 1.5


def test_a_stale_cached_value_is_replaced_once(tmp_path: Path) -> None:
    spec = run_spec()
    keys = _keys(spec)
    cache = SizingCache(tmp_path)
    cache.put(keys[Scenario.OFFLINE], Measurement("Offline", 64, 1, 6.4, 10.0), "under load")
    sizing = RunSizing(spec, cache, keys)
    assert sizing.by_scenario[Scenario.OFFLINE].value == 12.5
    assert sizing.outran(Scenario.OFFLINE, _result("Offline", value=300.0, valid=True)) is None
    entry = sizing.outran(Scenario.OFFLINE, EARLY_OFFLINE)
    assert entry is not None
    assert entry.source is SizingSource.OUTRUN
    assert entry.value == 375.0  # 300 × 1.25
    assert entry.outran
    assert "finished before its minimum duration" in entry.outran
    assert "12.5 qps (cached measurement)" in entry.outran
    assert sizing.spec.tuning.offline_expected_qps == 375.0
    assert sizing.request(Scenario.OFFLINE, Mode.PERFORMANCE) is None  # no second pass
    assert sizing.outran(Scenario.OFFLINE, EARLY_OFFLINE) is None  # one more try, not a loop
    assert sizing.record()["Offline"].outran == entry.outran
    later = RunSizing(spec, cache, keys).by_scenario[Scenario.OFFLINE]
    assert (later.source, later.value) == (SizingSource.CACHED, 375.0)


def test_a_user_value_that_outran_is_left_alone(tmp_path: Path) -> None:
    tuning = DEFAULT_TUNING[Device.CPU].model_copy(update={"offline_expected_qps": 7.0})
    spec = run_spec(tuning=tuning, tuning_given=("offline_expected_qps",))
    sizing = RunSizing(spec, SizingCache(tmp_path), _keys(spec))
    assert sizing.outran(Scenario.OFFLINE, EARLY_OFFLINE) is None
    assert sizing.spec.tuning.offline_expected_qps == 7.0


def test_a_tuned_value_that_outran_is_dropped(tmp_path: Path) -> None:
    spec = run_spec()
    keys = _keys(spec)
    store = TunedStore(tmp_path)
    store.put(keys[Scenario.OFFLINE], Tuned(20.0, "2026-12-01", "tune-1"))
    sizing = RunSizing(spec, SizingCache(tmp_path), keys, store)
    assert sizing.by_scenario[Scenario.OFFLINE].source is SizingSource.TUNED
    entry = sizing.outran(Scenario.OFFLINE, EARLY_OFFLINE)
    assert entry is not None
    assert entry.value == 375.0
    assert store.get(keys[Scenario.OFFLINE]) is None
    later = RunSizing(spec, SizingCache(tmp_path), keys, store).by_scenario[Scenario.OFFLINE]
    assert (later.source, later.value) == (SizingSource.CACHED, 375.0)


def test_a_quick_server_estimate_sizes_quick_runs_only(tmp_path: Path) -> None:
    # A --quick Server pass estimates its rate from the single-sample latency; a full run
    # measures for itself rather than start a 600 s test from that estimate.
    quick = run_spec()
    full = run_spec(profile=Profile.FULL)
    assert _keys(quick)[Scenario.SERVER] == _keys(full)[Scenario.SERVER]  # one cache entry
    cache = SizingCache(tmp_path)
    estimate = Measurement("Server", 2, 2, 0.08, 50.0, latency_ms=40.0, estimated=True)
    cache.put(_keys(quick)[Scenario.SERVER], estimate, "then")
    assert cache.get(_keys(quick)[Scenario.SERVER])[0].estimated  # type: ignore[index]
    cached = RunSizing(quick, cache, _keys(quick)).by_scenario[Scenario.SERVER]
    assert (cached.source, cached.value) == (SizingSource.CACHED, 25.0)
    fresh = RunSizing(full, cache, _keys(full))
    assert fresh.by_scenario[Scenario.SERVER].source is SizingSource.PROFILE
    assert fresh.request(Scenario.SERVER, Mode.PERFORMANCE) == "full"
    measured = RunSizing(quick, SizingCache(tmp_path / "empty"), _keys(quick)).measured(
        Scenario.SERVER, _record(estimate)
    )
    assert measured.describe().endswith("(measured now, estimated from one sample's latency)")


def test_a_pass_profile_other_than_the_runs_is_asked_of_the_container(tmp_path: Path) -> None:
    # tune --quick starts its Server search from a measured rate: its measuring test asks the
    # container for a full pass though the run is quick.
    spec = run_spec()
    plain = RunSizing(spec, SizingCache(tmp_path), _keys(spec))
    assert plain.request(Scenario.SERVER, Mode.PERFORMANCE) == "quick"
    told = RunSizing(spec, SizingCache(tmp_path), _keys(spec), pass_profile=Profile.FULL)
    assert told.request(Scenario.SERVER, Mode.PERFORMANCE) == "full"
    assert told.spec.profile is Profile.QUICK  # the test itself stays quick


def _server_queries(sizing: RunSizing, total_samples: int = 64) -> str:
    text = render_user_conf(sizing.spec, Scenario.SERVER, total_samples)
    return next(line for line in text.splitlines() if "Server.min_query_count" in line)


def test_a_quick_server_test_with_a_tried_target_runs_enough_queries_for_early_stopping(
    tmp_path: Path,
) -> None:
    # A tuned or user-given target was tried: the quick test runs as many queries as tune's
    # probes, so it can be VALID. A measured or estimated start stays a short smoke test.
    spec = run_spec()
    keys = _keys(spec)
    store = TunedStore(tmp_path)
    measured = RunSizing(spec, SizingCache(tmp_path), keys, store)
    assert not measured.server_tried()
    assert _server_queries(measured).endswith("= 16")

    store.put(keys[Scenario.SERVER], Tuned(42.0, "2026-12-07", "tune-1", (42.0, 44.0)))
    tuned = RunSizing(spec, SizingCache(tmp_path), keys, store)
    assert tuned.server_tried()
    assert _server_queries(tuned).endswith(f"= {SERVER_EARLY_STOPPING_QUERIES}")
    assert "Server.target_qps = 42" in render_user_conf(tuned.spec, Scenario.SERVER, 64)
    assert tuned.spec.quick.multi_stream_min_query_count == spec.quick.multi_stream_min_query_count

    tuning = DEFAULT_TUNING[Device.CPU].model_copy(update={"server_target_qps": 30.0})
    given = run_spec(tuning=tuning, tuning_given=("server_target_qps",))
    assert _server_queries(RunSizing(given, SizingCache(tmp_path), _keys(given))).endswith(
        f"= {SERVER_EARLY_STOPPING_QUERIES}"
    )
    # the user's own count wins, and a full run keeps the rules' counts
    own = run_spec(quick=QuickLimits(server_min_query_count=200))
    own_sizing = RunSizing(own, SizingCache(tmp_path), _keys(own), store)
    assert _server_queries(own_sizing).endswith("= 200")
    full = run_spec(profile=Profile.FULL)
    full_sizing = RunSizing(full, SizingCache(tmp_path), _keys(full), store)
    assert not full_sizing.server_tried()
    assert "min_query_count" not in render_user_conf(full_sizing.spec, Scenario.SERVER, 64)


def test_a_resumed_quick_run_keeps_the_early_stopping_count(tmp_path: Path) -> None:
    # The spec read back from a manifest has every field set; the count is still raised.
    spec = RunSpec.model_validate_json(run_spec().model_dump_json())
    keys = _keys(spec)
    store = TunedStore(tmp_path)
    store.put(keys[Scenario.SERVER], Tuned(42.0, "2026-12-07", "tune-1"))
    assert RunSizing(spec, SizingCache(tmp_path), keys, store).server_tried()
