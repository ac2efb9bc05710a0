"""The benchmarks' Server search (benchmarks/search.py) against a known ceiling."""

from __future__ import annotations

import pytest

from benchmarks.search import highest_valid


@pytest.mark.parametrize("ceiling", [37.0, 100.0, 1000.0])
def test_finds_the_ceiling_within_five_percent(ceiling: float) -> None:
    seen: list[float] = []

    def measure(qps: float) -> bool:
        seen.append(qps)
        return qps <= ceiling

    best, worst = highest_valid(measure, 100.0, max_runs=20, attempts=1)
    assert best is not None
    assert worst is not None
    assert best <= ceiling < worst
    assert worst / best <= 1.05


def test_a_flaky_level_counts_when_one_attempt_is_valid() -> None:
    answers = iter([False, True, False, False])
    best, worst = highest_valid(lambda _qps: next(answers), 10.0, max_runs=2, attempts=2)
    assert (best, worst) == (10.0, 14.0)


def test_nothing_valid_and_nothing_invalid_are_told_apart() -> None:
    best, worst = highest_valid(lambda _qps: False, 10.0, max_runs=3, attempts=1)
    assert best is None  # stepped down 30 % a run: 10, 7, 4.9
    assert worst == pytest.approx(4.9)
    best, worst = highest_valid(lambda _qps: True, 10.0, max_runs=3, attempts=1)
    assert worst is None  # stepped up 40 % a run: 10, 14, 19.6
    assert best == pytest.approx(19.6)
