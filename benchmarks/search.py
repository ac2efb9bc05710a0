"""The Server search both benchmarks use: the highest target QPS LoadGen calls VALID."""

from __future__ import annotations

from collections.abc import Callable


def highest_valid(
    measure: Callable[[float], bool], start_qps: float, max_runs: int, attempts: int
) -> tuple[float | None, float | None]:
    """Step up by 40 % from `start_qps` until a QPS is INVALID (down by 30 % until one is VALID),
    then bisect to about 5 %. `measure(qps)` runs one Server test and says whether it was VALID
    (and prints what it saw).

    A QPS counts as VALID when one of `attempts` runs is: on a shared host a single stall of
    another process' making can push p99 over the bound. Returns (highest VALID, lowest
    INVALID); the first is None when no level was VALID, the second when the search ran out of
    runs before any INVALID one (the ceiling is then higher than the figure)."""
    best: float | None = None
    worst: float | None = None
    qps = start_qps
    for _ in range(max_runs):
        valid = any(measure(qps) for _attempt in range(attempts))
        if valid:
            best = qps
        else:
            worst = qps
        if worst is None:
            qps = qps * 1.4
        elif best is None:
            qps = qps * 0.7
        elif worst / best <= 1.05:
            break
        else:
            qps = (best + worst) / 2
    return best, worst
