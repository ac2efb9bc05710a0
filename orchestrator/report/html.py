"""The comparison as one self-contained HTML file: inline CSS and inline SVG, nothing fetched,
no script; it opens the same from a USB stick as from a web server."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from orchestrator.report.model import Cell, Comparison, Row, RunSummary, ScenarioSection, SettingRow
from orchestrator.report.svg import PALETTE, colour, render

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --soft:#f3f4f6; --page:#f6f7f9;
  --good:#15803d; --good-bg:#dcfce7; --bad:#b91c1c; --bad-bg:#fee2e2; --warn:#92400e;
  --warn-bg:#fef3c7; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 28px 32px 56px; }
header.top { background: #ffffff; border-bottom: 1px solid var(--line); }
header.top .inner { max-width: 1320px; margin: 0 auto; padding: 26px 32px 22px; }
.eyebrow { text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: var(--muted);
  font-weight: 600; }
h1 { font-size: 28px; margin: 4px 0 6px; letter-spacing: -.01em; }
h2 { font-size: 21px; margin: 0 0 4px; letter-spacing: -.01em; }
h3 { font-size: 15px; margin: 22px 0 8px; color: #374151; }
.sub { color: var(--muted); margin: 0; }
section.block { background: #ffffff; border: 1px solid var(--line); border-radius: 12px;
  padding: 22px 24px; margin: 22px 0; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
.block-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap;
  margin-bottom: 14px; }
.block-head .metric { color: var(--muted); font-size: 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px;
  margin-top: 18px; }
.card { background: #ffffff; border: 1px solid var(--line); border-left: 5px solid var(--c);
  border-radius: 10px; padding: 14px 16px; }
.card .head { display: flex; align-items: center; gap: 8px; font-size: 16px; }
.card .runid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; color: #374151; margin: 6px 0 8px; word-break: break-all; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0;
  font-size: 13px; }
.card dt { color: var(--muted); }
.card dd { margin: 0; }
.card .error { margin-top: 8px; font-size: 13px; color: var(--bad); }
.chip { display: inline-flex; align-items: center; justify-content: center; min-width: 24px;
  height: 24px; padding: 0 6px; border-radius: 12px; color: #ffffff; background: var(--c);
  font-weight: 700; font-size: 13px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; background: var(--c);
  margin-right: 6px; vertical-align: 0; }
.status { font-size: 12px; font-weight: 600; padding: 2px 8px; border-radius: 10px;
  margin-left: auto; }
.status.complete { color: var(--good); background: var(--good-bg); }
.status.failed, .status.not-started { color: var(--bad); background: var(--bad-bg); }
.status.interrupted, .status.running { color: var(--warn); background: var(--warn-bg); }
.notes { margin: 18px 0 0; padding: 0; list-style: none; display: grid; gap: 8px; }
.notes li { background: var(--warn-bg); color: #713f12; border: 1px solid #fde68a;
  border-radius: 8px; padding: 8px 12px; font-size: 14px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 9px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
thead th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  font-weight: 600; border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:hover td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.label { color: #374151; white-space: nowrap; }
tr.group td { background: var(--soft); color: var(--muted); font-size: 12px; font-weight: 700;
  text-transform: uppercase; letter-spacing: .05em; padding: 5px 10px; }
tr.headline td { font-size: 16px; font-weight: 700; }
.missing { color: var(--muted); font-style: italic; }
.tone-bad { color: var(--bad); font-weight: 600; }
.tone-good { color: var(--good); font-weight: 600; }
.tone-warn { color: var(--warn); font-weight: 600; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; padding: 1px 7px;
  border-radius: 9px; margin-left: 6px; vertical-align: 2px; font-style: normal; }
.badge.VALID { color: var(--good); background: var(--good-bg); }
.badge.INVALID { color: var(--bad); background: var(--bad-bg); }
.ratio { display: inline-block; min-width: 56px; padding: 1px 8px; border-radius: 9px;
  font-weight: 700; font-size: 13px; text-align: center; }
.ratio.good { color: var(--good); background: var(--good-bg); }
.ratio.bad { color: var(--bad); background: var(--bad-bg); }
.ratio.plain { color: #374151; background: var(--soft); }
.ratio.missing { color: var(--muted); font-weight: 400; }
.note { display: block; font-size: 12px; color: var(--muted); font-weight: 400;
  font-style: normal; white-space: normal; overflow-wrap: anywhere; max-width: 26ch;
  margin-left: auto; }
/* The figures table takes the width it needs (never more than its card); the plots sit beside
   it when both fit, else below it. Notes wrap, so a table's natural width stays bounded. */
.grid { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.grid > .main { flex: 1 1 auto; min-width: 0; max-width: 100%; }
.grid > .plots { flex: 1 1 320px; max-width: 560px; }
.grid.many > .plots { max-width: none; flex-basis: 100%;
  grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); }
.scroll { overflow-x: auto; }
.plots { display: grid; gap: 14px; align-items: start; }
.plots.wide { grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); margin-top: 14px; }
.plot-frame { border: 1px solid var(--line); border-radius: 10px; padding: 6px; background: #fff; }
svg.plot { display: block; width: 100%; max-width: 640px; height: auto; margin: 0 auto; }
.reasons { margin: 14px 0 0; padding: 0; list-style: none; display: grid; gap: 6px; }
.reasons li { overflow-wrap: anywhere; font-size: 13.5px; padding: 7px 12px; border-radius: 8px;
  background: var(--bad-bg); color: #7f1d1d; border-left: 4px solid var(--c); }
.reasons li.absent { background: var(--soft); color: #374151; }
details { margin-top: 12px; }
summary { cursor: pointer; color: #1d4ed8; font-size: 14px; font-weight: 600; }
.settings td { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; word-break: break-all; }
.settings td.key { font-family: inherit; font-size: 13.5px; color: #374151; word-break: normal;
  white-space: nowrap; }
.settings tr.differs td { background: #fffbeb; }
.empty { color: var(--muted); font-style: italic; font-size: 14px; }
nav.toc { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 14px; }
nav.toc a { font-size: 13px; color: #1d4ed8; text-decoration: none; background: #eff6ff;
  border: 1px solid #dbeafe; padding: 3px 10px; border-radius: 14px; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; margin-top: 30px; }
@media print { body { background: #fff; } section.block { box-shadow: none; } }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _run_vars(run: int) -> str:
    return f'style="--c:{colour(run)}"'


def _cell(cell: Cell, *, headline: bool = False) -> str:
    classes = ["num"]
    if cell.tone == "missing":
        classes.append("missing")
    elif cell.tone != "plain":
        classes.append(f"tone-{cell.tone}")
    title = f' title="{_e(cell.note)}"' if cell.note else ""
    badge = f'<span class="badge {_e(cell.badge)}">{_e(cell.badge)}</span>' if cell.badge else ""
    note = ""
    if cell.note and cell.value is not None and not headline and not cell.badge:
        note = f'<span class="note">{_e(cell.note)}</span>'
    return f'<td class="{" ".join(classes)}"{title}>{_e(cell.text)}{badge}{note}</td>'


def _ratio(cell: Cell | None) -> str:
    if cell is None:
        return '<td class="num"></td>'
    title = f' title="{_e(cell.note)}"' if cell.note else ""
    return f'<td class="num"><span class="ratio {cell.tone}"{title}>{_e(cell.text)}</span></td>'


def _run_header(run: RunSummary, index: int) -> str:
    return (
        f'<th class="num" {_run_vars(index)}><span class="dot"></span>{_e(run.label)} · '
        f"{_e(run.backend)}</th>"
    )


def _table_head(runs: Sequence[RunSummary], first: str, ratios: bool) -> str:
    cells = [f"<th>{_e(first)}</th>"]
    cells += [_run_header(run, index) for index, run in enumerate(runs)]
    if ratios:
        base = runs[0].label
        cells += [f'<th class="num">{_e(run.label)} vs {_e(base)}</th>' for run in runs[1:]]
    return f"<thead><tr>{''.join(cells)}</tr></thead>"


def _rows_table(
    runs: Sequence[RunSummary], rows: Sequence[Row], first: str, headline: str = ""
) -> str:
    ratios = len(runs) > 1
    width = 1 + len(runs) + (len(runs) - 1 if ratios else 0)
    body: list[str] = []
    group = None
    for row in rows:
        if row.group and row.group != group:
            group = row.group
            body.append(f'<tr class="group"><td colspan="{width}">{_e(group)}</td></tr>')
        is_headline = row.key == headline
        cls = ' class="headline"' if is_headline else ""
        cells = [f'<td class="label">{_e(row.label)}</td>']
        cells += [_cell(cell, headline=is_headline) for cell in row.cells]
        if ratios:
            speedups = row.speedups or (None,) * len(runs)
            cells += [_ratio(cell) for cell in speedups[1:]]
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table>{_table_head(runs, first, ratios)}<tbody>{''.join(body)}</tbody></table>"


def _settings_table(runs: Sequence[RunSummary], settings: Sequence[SettingRow]) -> str:
    head = "<th>setting</th>" + "".join(
        f'<th {_run_vars(i)}><span class="dot"></span>{_e(run.label)}</th>'
        for i, run in enumerate(runs)
    )
    body = []
    for setting in settings:
        cls = ' class="differs"' if setting.differs else ""
        values = "".join(f"<td>{_e(value)}</td>" for value in setting.values)
        body.append(f'<tr{cls}><td class="key">{_e(setting.key)}</td>{values}</tr>')
    return (
        f'<table class="settings"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table>"
    )


def _settings_block(runs: Sequence[RunSummary], settings: Sequence[SettingRow], what: str) -> str:
    differing = [s for s in settings if s.differs]
    if not settings:
        return f'<p class="empty">No {what} recorded.</p>'
    if differing:
        top = _settings_table(runs, differing)
    else:
        top = f'<p class="empty">All {len(settings)} {what} are the same in every run.</p>'
    return (
        f"{top}<details><summary>All {len(settings)} {what}</summary>"
        f"{_settings_table(runs, settings)}</details>"
    )


def _card(run: RunSummary, index: int) -> str:
    status = run.status.replace(" ", "-")
    facts = [
        ("path", run.path or "—"),
        ("profile", run.profile),
        ("started", run.started or "—"),
        ("wall time", f"{run.wall_seconds:,.0f} s" if run.wall_seconds is not None else "—"),
        ("host", run.host),
        ("LoadGen", run.loadgen or "—"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    error = f'<div class="error">{_e(run.error)}</div>' if run.error else ""
    return (
        f'<div class="card" {_run_vars(index)}><div class="head"><span class="chip">'
        f"{_e(run.label)}</span><b>{_e(run.backend)}</b><span>· {_e(run.device)}</span>"
        f'<span class="status {_e(status)}">{_e(run.status)}</span></div>'
        f'<div class="runid">{_e(run.run_id)}</div><dl>{rows}</dl>{error}</div>'
    )


def _plot(svg: str) -> str:
    return f'<div class="plot-frame">{svg}</div>'


def _section(comparison: Comparison, section: ScenarioSection) -> str:
    runs = comparison.runs
    side = [p for p in section.plots if p.slug.endswith(("-result", "-latency"))]
    wide = [p for p in section.plots if p not in side]
    reasons = []
    for index, (run, found) in enumerate(zip(runs, section.reasons, strict=True)):
        if not found:
            continue
        absent = section.presence[index].tone != "good"
        cls = ' class="absent"' if absent else ""
        what = "not measured" if absent else "INVALID"
        text = "; ".join(found)
        reasons.append(
            f"<li{cls} {_run_vars(index)}><b>{_e(run.label)} {what}:</b> {_e(text)}</li>"
        )
    reasons_html = f'<ul class="reasons">{"".join(reasons)}</ul>' if reasons else ""
    return (
        f'<section class="block" id="{_e(section.scenario.lower())}">'
        f'<div class="block-head"><h2>{_e(section.scenario)}</h2>'
        f'<span class="metric">result: {_e(section.metric)}</span></div>'
        f'<div class="grid{" many" if len(runs) > 2 else ""}">'
        f'<div class="main"><div class="scroll">'
        f"{_rows_table(runs, section.rows, 'figure', 'result')}</div>"
        f"{reasons_html}</div>"
        f'<div class="plots">{"".join(_plot(render(p)) for p in side)}</div></div>'
        f'<div class="plots wide">{"".join(_plot(render(p)) for p in wide)}</div>'
        f"<h3>Settings of this scenario</h3>"
        f"{_settings_block(runs, section.settings, 'scenario settings')}</section>"
    )


def render_html(comparison: Comparison) -> str:
    """The whole report as one HTML document."""
    runs = comparison.runs
    cards = "".join(_card(run, index) for index, run in enumerate(runs))
    notes = "".join(f"<li>{_e(note)}</li>" for note in comparison.notes)
    notes_html = f'<ul class="notes">{notes}</ul>' if notes else ""
    toc = "".join(
        f'<a href="#{_e(s.scenario.lower())}">{_e(s.scenario)}</a>' for s in comparison.scenarios
    )
    overview = (
        _rows_table(runs, comparison.overview, "scenario · result")
        if comparison.overview
        else '<p class="empty">No scenario in any run.</p>'
    )
    sections = "".join(_section(comparison, s) for s in comparison.scenarios)
    baseline = runs[0].label if runs else "—"
    legend = " ".join(f'<span class="dot" style="--c:{c}"></span>' for c in PALETTE[: len(runs)])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mlorch compare">
<title>{_e(comparison.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header class="top"><div class="inner">
<div class="eyebrow">mlorch · MLPerf Inference ResNet50 · comparison</div>
<h1>{_e(comparison.title)}</h1>
<p class="sub">{legend} {len(runs)} runs · baseline {_e(baseline)} (speed-ups are relative to it;
above 1× is better) · generated {_e(comparison.generated)}</p>
<nav class="toc"><a href="#overview">Overview</a><a href="#differs">What differs</a>{toc}</nav>
<div class="cards">{cards}</div>
{notes_html}
</div></header>
<main>
<section class="block" id="overview"><div class="block-head"><h2>At a glance</h2>
<span class="metric">each scenario's LoadGen result</span></div>{overview}</section>
<section class="block" id="differs"><div class="block-head"><h2>What differs</h2>
<span class="metric">run-level settings: precision, image, versions, host</span></div>
{_settings_block(runs, comparison.settings, "run settings")}</section>
{sections}
<footer>Written by mlorch compare from the runs' manifest.json, LoadGen logs, accuracy.txt,
harness.json, user.conf and telemetry. Hover a figure for its source or the reason it is
missing.</footer>
</main>
</body>
</html>
"""
