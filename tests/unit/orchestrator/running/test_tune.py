"""`mlorch tune`'s search and records, against simulated SUTs whose Server p99 crosses the bound
at a known QPS (and ones that stall now and then); the tuned values `up` picks up."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from contract.sizing import SERVER_EARLY_STOPPING_QUERIES, Measurement
from orchestrator.config import (
    Mode,
    Profile,
    Scenario,
    load_file_config,
)
from orchestrator.errors import ConfigError
from orchestrator.running.sizing import (
    RunSizing,
    SizingCache,
    SizingSource,
    Tuned,
    TunedStore,
    sizing_key,
)
from orchestrator.running.tune import (
    MAX_TARGET_QPS,
    TOLERANCE,
    Probe,
    ScenarioTune,
    ServerSearch,
    _server_room,
    _write_tuned_toml,
    best_per_scenario,
    parse_budget,
    probe_seconds,
    probe_spec,
    sweep_points,
)
from tests.support.specs import HOST, run_spec


def _search(capacity: float, start: float, stall: float = 0.0, seed: int = 0) -> ServerSearch:
    """Run the search against a SUT that is VALID below `capacity`; with `stall`, a run below
    it is INVALID that often anyway (a neighbour's burst on a shared host)."""
    rng = random.Random(seed)
    search = ServerSearch(start)
    for _ in range(200):
        step = search.next_probe()
        if step is None:
            return search
        target, confirming = step
        valid = target < capacity and rng.random() >= stall
        search.record(target, valid, confirming)
    raise AssertionError("the search did not end")


@pytest.mark.parametrize("capacity", [0.5, 7.0, 15.2, 900.0, 73_000.0, 1_500_000.0])
@pytest.mark.parametrize("start_ratio", [0.01, 0.5, 1.0, 3.0, 100.0])
def test_search_brackets_the_crossing_to_five_percent(capacity: float, start_ratio: float) -> None:
    search = _search(capacity, capacity * start_ratio)
    low, high = search.bracket
    assert low is not None
    assert high is not None
    assert low < capacity <= high
    assert high / low <= 1 + TOLERANCE
    assert search.answer == low  # confirmed by a second run


def test_search_stays_within_a_few_dozen_probes() -> None:
    probes = 0
    search = ServerSearch(10.0)
    while (step := search.next_probe()) is not None:
        probes += 1
        search.record(step[0], step[0] < 7_300.0, step[1])
    assert probes <= 20


def test_noisy_repeats_never_report_an_invalid_target_as_the_answer() -> None:
    """A stall makes a good target INVALID now and then; the answer is still one that was
    VALID twice, and below the true crossing."""
    for seed in range(50):
        search = _search(100.0, 50.0, stall=0.15, seed=seed)
        if search.answer is not None:
            assert search.answer < 100.0
            assert search.answer in search.confirmed


def test_a_failed_confirmation_moves_the_bracket_down() -> None:
    search = ServerSearch(10.0)
    search.record(10.0, True)
    search.record(20.0, False)
    search.record(14.14, True)
    search.record(17.32, False)
    search.record(15.65, True)
    search.record(16.4, False)
    target, confirming = search.next_probe() or (0.0, False)
    assert (target, confirming) == (15.65, True)
    search.record(15.65, False, confirming=True)  # the second run says no
    assert search.bracket == (14.14, 15.65)
    assert search.answer is None


def test_nothing_valid_gives_up_at_the_floor() -> None:
    search = _search(0.0, 5.0)
    assert search.bracket[0] is None
    assert search.answer is None


def test_everything_valid_stops_at_the_ceiling() -> None:
    search = _search(float("inf"), 1e6)
    assert search.bracket == (search.bracket[0], None)
    assert search.bracket[0] is not None
    assert search.bracket[0] * 2 > MAX_TARGET_QPS


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45)]
)
def test_budget_units(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "0", "-5m", "m"])
def test_bad_budget_is_one_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget(text)


def test_a_probe_gives_its_value_and_runs_enough_server_queries() -> None:
    spec = probe_spec(run_spec(profile=Profile.FULL), Scenario.SERVER, 42.0, quick=True)
    assert spec.tuning.server_target_qps == 42.0
    assert "server_target_qps" in spec.tuning_given  # nothing re-measures it
    assert spec.quick_run
    assert spec.quick.server_min_query_count >= SERVER_EARLY_STOPPING_QUERIES
    assert probe_seconds(spec, Scenario.SERVER) == pytest.approx(
        SERVER_EARLY_STOPPING_QUERIES / 42.0
    )
    measuring = probe_spec(
        run_spec(profile=Profile.FULL), Scenario.SERVER, 42.0, quick=True, given=False
    )
    assert "server_target_qps" not in measuring.tuning_given


def test_tuned_toml_is_a_config_up_accepts(tmp_path: Path) -> None:
    server = ScenarioTune(Scenario.SERVER, "server_target_qps", 48.2, (48.2, 50.1))
    server.probes.append(
        Probe(scenario="Server", value=48.2, valid=True, confirming=True, seconds=20.0,
              folder="probes/Server-05")
    )  # fmt: skip
    offline = ScenarioTune(Scenario.OFFLINE, "offline_expected_qps", 160.0)
    missing = ScenarioTune(Scenario.MULTI_STREAM, "multi_stream_expected_latency_ms")
    missing.stopped_by = "budget"
    path = _write_tuned_toml(tmp_path, [server, offline, missing])
    config = load_file_config(path)
    assert config.tuning == {"server_target_qps": 48.2, "offline_expected_qps": 160.0}
    assert "not found (budget)" in path.read_text()


def test_up_takes_tuned_values_unless_told_not_to(tmp_path: Path) -> None:
    spec = run_spec()
    keys = {s: sizing_key(spec, s, HOST, "sha256:aa", "md5") for s in spec.scenarios}
    store = TunedStore(tmp_path)
    cache = SizingCache(tmp_path)
    measured = Measurement("Server", 10, 10, 1.0, 100.0, latency_ms=4.0, latency_p90_ms=5.0)
    store.put(keys[Scenario.SERVER], Tuned(48.2, "2026-12-07", "tune-1", (48.2, 50.1), measured))
    sizing = RunSizing(spec, cache, keys, store)
    server = sizing.by_scenario[Scenario.SERVER]
    assert (server.source, server.value) == (SizingSource.TUNED, 48.2)
    assert "highest VALID 48.2, lowest INVALID 50.1" in server.describe()
    assert sizing.request(Scenario.SERVER, Mode.PERFORMANCE) is None  # nothing to measure
    assert sizing.spec.tuning.server_target_qps == 48.2
    ignored = RunSizing(spec, cache, keys, None)  # --no-tuned
    assert ignored.by_scenario[Scenario.SERVER].source is SizingSource.PROFILE
    given = run_spec(tuning_given=("server_target_qps",))
    assert RunSizing(given, cache, keys, store).by_scenario[Scenario.SERVER].source is (
        SizingSource.USER
    )  # a value the user gives wins over a tuned one


def test_a_damaged_tuned_entry_is_ignored(tmp_path: Path) -> None:
    store = TunedStore(tmp_path)
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "k.json").write_text('{"value": -3, "when": "x", "run_id": "r"}')
    assert store.get("k") is None
    assert store.get("absent") is None


def test_sweeps_expand_to_every_combination() -> None:
    assert sweep_points([]) == [()]
    points = sweep_points(["Server.batch_size=1,2", "Server.deque_timeout_us=0, 500"])
    assert points == [
        ("Server.batch_size=1", "Server.deque_timeout_us=0"),
        ("Server.batch_size=1", "Server.deque_timeout_us=500"),
        ("Server.batch_size=2", "Server.deque_timeout_us=0"),
        ("Server.batch_size=2", "Server.deque_timeout_us=500"),
    ]


@pytest.mark.parametrize("bad", ["batch_size", "batch_size=", "=1,2", "batch_size=,"])
def test_a_malformed_sweep_is_one_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        sweep_points([bad])


def test_a_key_swept_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        sweep_points(["batch_size=1,2", "batch_size=4"])


def test_the_best_point_wins_per_scenario_and_its_settings_go_to_the_config(
    tmp_path: Path,
) -> None:
    def found(scenario: Scenario, key: str, value: float | None, batch: int) -> ScenarioTune:
        return ScenarioTune(scenario, key, value, overrides=(f"batch_size={batch}",))

    tried = [
        found(Scenario.SERVER, "server_target_qps", 40.0, 1),
        found(Scenario.SERVER, "server_target_qps", 55.0, 2),
        found(Scenario.SERVER, "server_target_qps", None, 4),
        found(Scenario.SINGLE_STREAM, "single_stream_expected_latency_ms", 6.0, 1),
        found(Scenario.SINGLE_STREAM, "single_stream_expected_latency_ms", 4.5, 2),
    ]
    best = best_per_scenario(tried, (Scenario.SINGLE_STREAM, Scenario.SERVER))
    assert [(b.scenario, b.value) for b in best] == [
        (Scenario.SINGLE_STREAM, 4.5),  # the shorter latency
        (Scenario.SERVER, 55.0),  # the higher rate
    ]
    config = load_file_config(_write_tuned_toml(tmp_path, best))
    assert config.set_overrides == ("SingleStream.batch_size=2", "Server.batch_size=2")
    assert config.tuning == {"single_stream_expected_latency_ms": 4.5, "server_target_qps": 55.0}


def test_an_empty_server_search_says_how_much_room_the_bound_leaves() -> None:
    # The 2-core twin: one sample takes ~11 ms of the 15 ms bound; the search halved its target
    # until the next probe no longer fit the budget.
    measured = Measurement("Server", 100, 100, 1.1, 90.0, latency_ms=10.9, latency_p90_ms=12.1)
    text = _server_room(measured, (5.6, False), run_spec(), True)
    assert "one sample alone takes 10.9 ms (median), leaving 4.1 ms of the 15 ms p99 bound" in text
    assert "the next probe (5.6 qps) needs 3 min of LoadGen time" in text  # 1024 queries
    assert "a larger --budget searches lower" in text
    assert _server_room(None, None, run_spec(), True) == ""
    slow = Measurement("Server", 10, 10, 0.4, 25.0, latency_ms=40.0, latency_p90_ms=41.0)
    assert "leaving 0.0 ms" in _server_room(slow, None, run_spec(), True)
