"""Plots of the comparison as SVG text: no plotting library, no script, no external resource.

`render(plot)` draws one `model.Plot`: line charts (latency by percentile on a "nines" axis,
power and utilisation over time with the LoadGen windows shaded) and horizontal bar charts
(the scenario's result per run). Inline in the HTML report (no xmlns needed there) or as
standalone .svg files next to the Markdown (`standalone=True` adds the SVG namespace).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from orchestrator.report.model import Bar, LineSeries, Plot, fmt

# Colour per run (A, B, C …): distinct on white, readable for the common colour-vision
# deficiencies in pairs (blue/orange first).
PALETTE = (
    "#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#475569",
)  # fmt: skip
INK, MUTED, GRID, AXIS = "#1f2937", "#6b7280", "#e5e7eb", "#9ca3af"
GOOD, BAD = "#15803d", "#b91c1c"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 640
CHAR_W = 6.6  # average advance of a 12-px sans-serif glyph, for layout only
NINES_TICKS = ((0.0, "min"), (50.0, "50"), (90.0, "90"), (99.0, "99"), (99.9, "99.9"))


def colour(run: int) -> str:
    return PALETTE[run % len(PALETTE)]


def _x(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(
    x: float, y: float, text: str, *, size: int = 12, fill: str = INK, anchor: str = "start",
    weight: str = "normal", italic: bool = False, extra: str = "",
) -> str:  # fmt: skip
    style = ' font-style="italic"' if italic else ""
    return (
        f'<text x="{_x(x)}" y="{_x(y)}" font-size="{size}" fill="{fill}" '
        f'text-anchor="{anchor}" font-weight="{weight}"{style}{extra}>{escape(text)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, extra: str = "") -> str:
    return (
        f'<line x1="{_x(x1)}" y1="{_x(y1)}" x2="{_x(x2)}" y2="{_x(y2)}" stroke="{stroke}"{extra}/>'
    )


# --- scales and ticks ------------------------------------------------------------------------


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 step that cuts `span` into about `target` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power:
            return float(multiple * power)
    return float(10 * power)


def linear_ticks(low: float, high: float, target: int = 5) -> tuple[float, float, list[float]]:
    """(axis low, axis high, ticks) with the axis widened to whole steps."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    step = nice_step(high - low, target)
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    count = round((end - start) / step)
    return start, end, [start + i * step for i in range(count + 1)]


def log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """Decades around [low, high]; with few decades also the 2s and 5s."""
    first = math.floor(math.log10(low))
    last = math.ceil(math.log10(high))
    if last == first:
        last += 1
    ticks: list[float] = []
    multiples = (1, 2, 5) if last - first <= 2 else (1,)
    for exponent in range(first, last + 1):
        ticks += [m * 10.0**exponent for m in multiples if m * 10.0**exponent <= 10.0**last]
    return 10.0**first, 10.0**last, ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


def nines(percentile: float) -> float:
    """Position of a percentile on an axis where 90, 99, 99.9 are evenly spaced."""
    return -math.log10(max(1e-6, 1.0 - percentile / 100.0))


@dataclass(frozen=True)
class _Axis:
    low: float
    high: float
    ticks: list[tuple[float, str]]
    transform: Callable[[float], float]  # data → axis units (identity, log10, nines)

    def place(self, value: float, start: float, end: float) -> float:
        a, b = self.transform(self.low), self.transform(self.high)
        return start + (self.transform(value) - a) / (b - a or 1.0) * (end - start)


def _identity(value: float) -> float:
    return value


def _log10(value: float) -> float:
    return math.log10(max(value, 1e-12))


def _value_axis(values: Sequence[float], scale: str, fixed_max: float | None) -> _Axis:
    if scale == "log" and values and min(values) > 0:
        low, high, ticks = log_ticks(min(values), max(values))
        return _Axis(low, high, [(t, tick_label(t)) for t in ticks], _log10)
    top = fixed_max if fixed_max is not None else (max(values) if values else 1.0)
    low, high, ticks = linear_ticks(0.0, top if top > 0 else 1.0)
    return _Axis(low, high, [(t, tick_label(t)) for t in ticks], _identity)


def _x_axis(plot: Plot) -> _Axis:
    if plot.x_scale == "nines":
        return _Axis(0.0, 99.9, [(p, label) for p, label in NINES_TICKS], nines)
    xs = [x for line in plot.lines for x, _ in line.points]
    xs += [edge for band in plot.bands for edge in (band.start, band.end)]
    low, high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    low, high, ticks = linear_ticks(low, high, 6)
    return _Axis(low, high, [(t, tick_label(t)) for t in ticks], _identity)


# --- building blocks -------------------------------------------------------------------------


def _open(height: float, plot: Plot, standalone: bool) -> list[str]:
    namespace = f' xmlns="{SVG_NS}"' if standalone else ""
    return [
        f'<svg{namespace} viewBox="0 0 {WIDTH} {_x(height)}" width="{WIDTH}" '
        f'height="{_x(height)}" role="img" aria-label="{escape(plot.title)}" '
        f'font-family="{escape(FONT)}" class="plot" data-plot="{escape(plot.slug)}">',
        f"<title>{escape(plot.title)}</title>",
        f'<rect width="{WIDTH}" height="{_x(height)}" fill="#ffffff"/>',
        _text(16, 24, plot.title, size=14, weight="600"),
    ]


def _legend(lines: Sequence[LineSeries], top: float) -> tuple[list[str], float]:
    """Legend items flowed left to right; returns the parts and the y below them."""
    parts: list[str] = []
    x, y = 16.0, top
    for line in lines:
        label = line.label + (f" — {line.note}" if line.note and not line.points else "")
        width = 26 + len(label) * CHAR_W + 18
        if x + width > WIDTH - 12 and x > 16:
            x, y = 16.0, y + 18
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        opacity = "" if line.points else ' opacity="0.45"'
        parts.append(
            f'<g{opacity}><line x1="{_x(x)}" y1="{_x(y - 4)}" x2="{_x(x + 20)}" y2="{_x(y - 4)}" '
            f'stroke="{colour(line.run)}" stroke-width="2.5"{dash}/>'
        )
        if line.markers:
            parts.append(
                f'<circle cx="{_x(x + 10)}" cy="{_x(y - 4)}" r="3.2" fill="{colour(line.run)}"/>'
            )
        parts.append(
            _text(x + 26, y, label, fill=INK if line.points else MUTED, italic=not line.points)
            + "</g>"
        )
        x += width
    return parts, y + 14


def _frame_message(parts: list[str], left: float, top: float, right: float, bottom: float,
                   message: str) -> None:  # fmt: skip
    parts.append(
        f'<rect x="{_x(left)}" y="{_x(top)}" width="{_x(right - left)}" '
        f'height="{_x(bottom - top)}" fill="#f9fafb" stroke="{GRID}" stroke-dasharray="4 4"/>'
    )
    parts.append(
        _text(
            (left + right) / 2,
            (top + bottom) / 2 + 4,
            message,
            size=13,
            fill=MUTED,
            anchor="middle",
            italic=True,
        )
    )


# --- line charts -----------------------------------------------------------------------------


def _line_chart(plot: Plot, standalone: bool) -> str:
    values = [v for line in plot.lines for _, v in line.points]
    legend, legend_bottom = _legend(plot.lines, 48)
    if plot.empty or not values:
        height = legend_bottom + 80
        parts = [*_open(height, plot, standalone), *legend]
        _frame_message(parts, 16, legend_bottom + 6, WIDTH - 16, height - 14,
                       plot.empty or "nothing to plot")  # fmt: skip
        parts.append("</svg>")
        return "\n".join(parts)
    height = legend_bottom + 270.0
    parts = _open(height, plot, standalone)
    left, right = 70.0, WIDTH - 20.0
    top, bottom = legend_bottom + 8, height - 48.0
    parts += legend
    y_axis = _value_axis(values, plot.y_scale, plot.y_max)
    x_axis = _x_axis(plot)

    def px(value: float) -> float:
        return x_axis.place(value, left, right)

    def py(value: float) -> float:
        return y_axis.place(value, bottom, top)

    parts += _bands(plot, px, top, bottom)
    for value, label in y_axis.ticks:
        y = py(value)
        parts.append(_line(left, y, right, y, GRID))
        parts.append(_text(left - 8, y + 4, label, size=11, fill=MUTED, anchor="end"))
    for value, label in x_axis.ticks:
        x = px(value)
        parts.append(_line(x, bottom, x, bottom + 5, AXIS))
        if plot.x_scale == "nines":
            parts.append(_line(x, top, x, bottom, GRID))
        parts.append(_text(x, bottom + 18, label, size=11, fill=MUTED, anchor="middle"))
    parts.append(_line(left, bottom, right, bottom, AXIS))
    parts.append(_line(left, top, left, bottom, AXIS))
    parts.append(_text((left + right) / 2, height - 10, plot.x_label, size=12, fill=MUTED,
                       anchor="middle"))  # fmt: skip
    parts.append(
        _text(
            16,
            (top + bottom) / 2,
            plot.y_label,
            size=12,
            fill=MUTED,
            anchor="middle",
            extra=f' transform="rotate(-90 16 {_x((top + bottom) / 2)})"',
        )
    )
    parts += _paths(plot, px, py)
    parts.append("</svg>")
    return "\n".join(parts)


def _bands(plot: Plot, px: Callable[[float], float], top: float, bottom: float) -> list[str]:
    """The shaded spans of the chart (a test's run time), each with its edges and label."""
    parts = []
    for band in plot.bands:
        x1, x2 = px(band.start), px(band.end)
        parts.append(
            f'<rect x="{_x(x1)}" y="{_x(top)}" width="{_x(max(1.0, x2 - x1))}" '
            f'height="{_x(bottom - top)}" fill="{colour(band.run)}" fill-opacity="0.07">'
            f"<title>{escape(band.label)}: {fmt(band.start)}–{fmt(band.end)} s</title></rect>"
        )
        for edge in (x1, x2):
            parts.append(_line(edge, top, edge, bottom, colour(band.run),
                               ' stroke-dasharray="3 3" stroke-opacity="0.7"'))  # fmt: skip
        parts.append(_text(x1 + 4, top + 12 + 13 * band.run, band.label, size=10,
                           fill=colour(band.run)))  # fmt: skip
    return parts


def _paths(plot: Plot, px: Callable[[float], float], py: Callable[[float], float]) -> list[str]:
    """Each line of the chart as a path, with its point markers where it has them."""
    parts = []
    for line in plot.lines:
        if not line.points:
            continue
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{_x(px(x))},{_x(py(y))}"
            for i, (x, y) in enumerate(line.points)
        )
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        parts.append(
            f'<path d="{path}" fill="none" stroke="{colour(line.run)}" stroke-width="2.2" '
            f'stroke-linejoin="round" stroke-linecap="round"{dash}/>'
        )
        if line.markers:
            for x, y in line.points:
                where = "min" if plot.x_scale == "nines" and x == 0 else f"p{x:g}"
                parts.append(
                    f'<circle cx="{_x(px(x))}" cy="{_x(py(y))}" r="3.6" fill="{colour(line.run)}" '
                    f'stroke="#ffffff" stroke-width="1.2"><title>{escape(line.label)} {where}: '
                    f"{fmt(y)} {escape(_unit(plot.y_label))}</title></circle>"
                )
    return parts


def _unit(label: str) -> str:
    """'latency (ms)' → 'ms'."""
    return label[label.rfind("(") + 1 : label.rfind(")")] if "(" in label else ""


# --- bar charts ------------------------------------------------------------------------------


def _bar_chart(plot: Plot, standalone: bool) -> str:
    bars: Sequence[Bar] = plot.bars
    row_h, top = 30.0, 44.0
    label_w = min(220.0, max(len(b.label) for b in bars) * CHAR_W + 24) if bars else 80.0
    left, right = 16.0 + label_w, WIDTH - 150.0
    bottom = top + row_h * max(1, len(bars)) + 6
    height = bottom + 44
    parts = _open(height, plot, standalone)
    values = [b.value for b in bars if b.value is not None]
    if plot.empty or not values:
        _frame_message(parts, 16, top, WIDTH - 16, bottom, plot.empty or "nothing to plot")
        parts.append("</svg>")
        return "\n".join(parts)
    low, high, ticks = linear_ticks(0.0, max(values))

    def px(value: float) -> float:
        return left + (value - low) / (high - low or 1.0) * (right - left)

    for tick in ticks:
        parts.append(_line(px(tick), top, px(tick), bottom, GRID))
        parts.append(_text(px(tick), bottom + 16, tick_label(tick), size=11, fill=MUTED,
                           anchor="middle"))  # fmt: skip
    for index, bar in enumerate(bars):
        y = top + index * row_h + 4
        parts.append(_text(left - 10, y + 15, bar.label, anchor="end"))
        if bar.value is None:
            parts.append(_text(left + 6, y + 15, bar.text, fill=MUTED, italic=True))
            continue
        width = max(1.5, px(bar.value) - left)
        parts.append(
            f'<rect x="{_x(left)}" y="{_x(y)}" width="{_x(width)}" height="{_x(row_h - 10)}" '
            f'rx="3" fill="{colour(bar.run)}" fill-opacity="0.85"><title>{escape(bar.label)}: '
            f"{escape(bar.text)}</title></rect>"
        )
        parts.append(_text(left + width + 6, y + 15, bar.text, weight="600"))
        if bar.badge:
            tone = GOOD if bar.badge == "VALID" else BAD
            offset = left + width + 14 + len(bar.text) * CHAR_W
            parts.append(_text(offset, y + 15, bar.badge, size=10, fill=tone, weight="700"))
    parts.append(_line(left, bottom, right, bottom, AXIS))
    parts.append(_line(left, top, left, bottom, AXIS))
    parts.append(_text((left + right) / 2, height - 10, plot.x_label, size=12, fill=MUTED,
                       anchor="middle"))  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts)


def render(plot: Plot, *, standalone: bool = False) -> str:
    """One plot as SVG text; `standalone` for a .svg file (adds the namespace and XML header)."""
    body = _bar_chart(plot, standalone) if plot.kind == "bars" else _line_chart(plot, standalone)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n") if standalone else body
