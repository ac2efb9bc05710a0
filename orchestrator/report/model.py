"""The comparison of several runs as one data model.

Built once from run folders (manifest.json, the LoadGen logs, accuracy.txt, result.json,
harness.json, user.conf, telemetry/) and then only read: the HTML, Markdown and terminal
renderers and the SVG plots all draw from a `Comparison`, so they cannot disagree. Every figure is
formatted here, once; a figure that does not exist is a `Cell` that says why ("not run",
"failed", "no telemetry", "n/a"), never a zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Tone = Literal["plain", "good", "bad", "missing", "warn"]
Better = Literal["higher", "lower"]

SCENARIO_ORDER = ("SingleStream", "MultiStream", "Server", "Offline")
PERFORMANCE, ACCURACY = "PerformanceOnly", "AccuracyOnly"
# The percentiles LoadGen logs, in order; 0 is the minimum.
PERCENTILES = ((0.0, "min"), (50.0, "50.00"), (90.0, "90.00"), (95.0, "95.00"),
               (97.0, "97.00"), (99.0, "99.00"), (99.9, "99.90"))  # fmt: skip
TABLE_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# harness.json keys that are not settings: what this test was, how it went, what it measured
VOLATILE_HARNESS_KEYS = frozenset(
    {"scenario", "mode", "test_seconds", "uid", "gid", "harness_stats", "sizing"}
)
ENERGY = "Power and energy"
GROUPS = ("Result", "Latency", "Accuracy", ENERGY, "Test")
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One figure (or the reason there is none), formatted once for every renderer."""

    text: str
    value: float | None = None  # the unrounded number behind `text`; None when there is none
    note: str = ""  # why it is missing, what makes it INVALID, agree/total ...
    tone: Tone = "plain"
    badge: str = ""  # VALID / INVALID beside a headline figure


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cells: tuple[Cell, ...]  # one per run, in run order
    speedups: tuple[Cell | None, ...] = ()  # one per run (first: None); empty: no ratio applies
    group: str = ""  # the block of the table it belongs to ("Latency", "Accuracy" …)


@dataclass(frozen=True)
class SettingRow:
    key: str
    values: tuple[str, ...]  # one per run; "—" where a run does not have the setting
    # per run: whether it recorded settings here at all (a scenario it did not run has none,
    # and its "—" is no difference)
    recorded: tuple[bool, ...] = ()

    @property
    def differs(self) -> bool:
        recorded = self.recorded or (True,) * len(self.values)
        return len({v for v, seen in zip(self.values, recorded, strict=True) if seen}) > 1


@dataclass(frozen=True)
class LineSeries:
    run: int  # index into Comparison.runs (colour, legend)
    label: str
    points: tuple[tuple[float, float], ...]
    markers: bool = False
    dashed: bool = False
    note: str = ""  # shown in the legend when there are no points ("not run", "no telemetry")


@dataclass(frozen=True)
class Band:
    """A marked x-range: the LoadGen window of one run."""

    run: int
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Bar:
    run: int
    label: str
    value: float | None
    text: str  # the value as the tables show it, or why there is no bar
    badge: str = ""


@dataclass(frozen=True)
class Plot:
    slug: str  # stable file name stem: "offline-latency"
    title: str
    kind: Literal["line", "bars"]
    x_label: str
    y_label: str
    x_scale: Literal["linear", "nines"] = "linear"
    y_scale: Literal["linear", "log"] = "linear"
    lines: tuple[LineSeries, ...] = ()
    bars: tuple[Bar, ...] = ()
    bands: tuple[Band, ...] = ()
    y_max: float | None = None  # fixed top of the y axis (utilisation: 100)
    empty: str = ""  # why nothing can be drawn (the plot then says so)


@dataclass(frozen=True)
class RunSummary:
    label: str  # A, B, C … (column headers, legends)
    run_id: str
    path: str
    backend: str
    device: str
    profile: str
    status: str  # complete | failed | interrupted | running | not started
    error: str | None
    started: str | None
    wall_seconds: float | None
    host: str
    loadgen: str | None
    synthetic: bool | None
    quick: bool

    @property
    def name(self) -> str:
        return f"{self.label} · {self.backend} · {self.device}"


@dataclass(frozen=True)
class ScenarioSection:
    scenario: str
    metric: str  # the scenario's result, e.g. "samples/s" or "p90 latency (ms)"
    presence: tuple[Cell, ...]  # per run: the performance test's state
    rows: tuple[Row, ...]
    reasons: tuple[tuple[str, ...], ...]  # per run: why INVALID / failed / missing
    plots: tuple[Plot, ...]
    settings: tuple[SettingRow, ...]

    @property
    def differing_settings(self) -> tuple[SettingRow, ...]:
        return tuple(s for s in self.settings if s.differs)


@dataclass(frozen=True)
class Comparison:
    title: str
    generated: str
    runs: tuple[RunSummary, ...]
    overview: tuple[Row, ...]  # one row per scenario: its headline result
    settings: tuple[SettingRow, ...]  # run-level settings, all of them
    scenarios: tuple[ScenarioSection, ...]
    notes: tuple[str, ...]

    @property
    def differing_settings(self) -> tuple[SettingRow, ...]:
        return tuple(s for s in self.settings if s.differs)

    def rows(self) -> Iterator[Row]:
        yield from self.overview
        for section in self.scenarios:
            yield from section.rows

    def plots(self) -> Iterator[Plot]:
        for section in self.scenarios:
            yield from section.plots

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# --- formatting (the one place numbers become text) ------------------------------------------

DASH = "—"


def fmt(value: float) -> str:
    """About four significant digits, thousands separated: 90,123 · 623.7 · 2.950 · 0.3912."""
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 10:
        return f"{value:.2f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.3f}"
    return f"{value:.4g}"


def number(
    value: float | None,
    *,
    why: str = "",
    note: str = "",
    badge: str = "",
    integer: bool = False,
    decimals: int | None = None,
) -> Cell:
    """A figure, or DASH with `why` it is missing."""
    if value is None:
        return Cell(DASH, None, why, "missing")
    text = (
        f"{round(value):,}"
        if integer
        else fmt(value)
        if decimals is None
        else (f"{value:,.{decimals}f}")
    )
    return Cell(text, value, note, "plain", badge)


def missing(text: str, note: str = "") -> Cell:
    return Cell(text, None, note, "missing")


def speedup(base: Cell, other: Cell, better: Better) -> Cell:
    """How many times better `other` is than `base` (>1: better, whichever way is better)."""
    if base.value is None or other.value is None:
        return missing(DASH, "a figure is missing")
    numerator, denominator = (
        (other.value, base.value) if better == "higher" else (base.value, other.value)
    )
    if denominator == 0:
        return missing(DASH, "division by zero")
    ratio = numerator / denominator
    tone: Tone = "good" if ratio >= 1.02 else "bad" if ratio <= 0.98 else "plain"
    return Cell(f"{ratio:.2f}×", ratio, f"{better} is better", tone)


def make_row(
    key: str, label: str, cells: Sequence[Cell], better: Better | None = None, group: str = ""
) -> Row:
    speedups: tuple[Cell | None, ...] = ()
    if better is not None and len(cells) > 1:
        speedups = (None, *(speedup(cells[0], cell, better) for cell in cells[1:]))
    return Row(key, label, tuple(cells), speedups, group)
