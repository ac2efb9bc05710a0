"""The rules a run is held to, as LoadGen 6.0.17 embeds them (round v6.1, ResNet50), and the
user.conf format LoadGen reads: what plans, user.conf rendering and validity checks share."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Scenario


@dataclass(frozen=True)
class RuleLimits:
    min_duration_ms: int
    min_query_count: int
    samples_per_query: int


# ResNet50, v6.1 (LoadGen's embedded mlperf.conf).
RULES: dict[Scenario, RuleLimits] = {
    Scenario.SINGLE_STREAM: RuleLimits(600_000, 100, 1),
    Scenario.MULTI_STREAM: RuleLimits(600_000, 662, 8),
    Scenario.SERVER: RuleLimits(600_000, 100, 1),
    Scenario.OFFLINE: RuleLimits(600_000, 24_576, 1),
}


@dataclass(frozen=True)
class UserConfEntry:
    model: str  # or "*"
    scenario: str  # or "*"
    key: str
    value: str


def parse_user_conf(text: str) -> list[UserConfEntry]:
    """The `model.scenario.key = value` lines of a user.conf (comments and blank lines skipped;
    a line LoadGen would not read either is skipped too)."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        name, sep, value = line.partition("=")
        parts = name.strip().split(".")
        if not sep or len(parts) != 3 or not all(parts):
            continue
        entries.append(UserConfEntry(parts[0], parts[1], parts[2], value.strip()))
    return entries
