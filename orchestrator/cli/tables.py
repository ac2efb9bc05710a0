"""Rich tables the commands render."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from orchestrator.run import RunOutcome


def results_table(outcome: RunOutcome) -> Table:
    """scenario · mode · metric · value · validity for one run."""
    manifest = outcome.manifest
    spec = manifest.spec
    caption = None
    if spec.get("profile") == "quick":
        caption = "--quick: shortened runs, not submission-valid"
    if manifest.assets.get("synthetic"):
        note = "synthetic assets: accuracy is a plumbing check"
        caption = f"{caption}; {note}" if caption else note
    if manifest.assets.get("skipped"):
        note = f"--skip-bad: {manifest.assets['skipped']['count']} dataset entries left out"
        caption = f"{caption}; {note}" if caption else note
    table = Table(
        title=f"{manifest.run_id} · {spec.get('backend')} · {spec.get('device')}", caption=caption
    )
    table.add_column("scenario")
    table.add_column("mode")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("validity")
    for result in outcome.results:
        if result.mode == "AccuracyOnly":
            verdict = "[cyan]scored[/]"
        elif result.valid:
            verdict = "[green]VALID[/]"
        else:
            why = ", ".join(result.unmet) or "see summary"
            verdict = f"[red]INVALID[/] ({why})"
        mode = "performance" if result.mode == "PerformanceOnly" else "accuracy"
        table.add_row(result.scenario, mode, result.metric, result.display_value, verdict)
    return table
