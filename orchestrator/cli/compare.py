from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.application import Application

RunsArg = Annotated[
    list[str],
    typer.Argument(
        help="Runs to compare: run ids (under --runs-dir) or run folders; the first is the "
        "baseline of the speed-ups.",
        show_default=False,
    ),
]


def compare(
    ctx: typer.Context,
    runs: RunsArg,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where run ids are looked up.", file_okay=False)
    ] = Path("runs"),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder for report.html, report.md, plots/ and comparison.json "
            "[default: RUNS_DIR/compare-<timestamp>].",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare finished (or failed) runs: one self-contained HTML report, a Markdown twin with
    SVG plots, and the same tables here. Exit 2 names a run that cannot be found."""
    from orchestrator.errors import ConfigError
    from orchestrator.report import default_output, write_report
    from orchestrator.report.build import build_comparison
    from orchestrator.report.terminal import render_terminal
    from orchestrator.results.manifest import resolve_run

    app: Application = ctx.obj
    if len(runs) < 2:
        raise ConfigError(
            "compare needs at least two runs", key="run", hint="`mlorch runs` lists them"
        )
    folders = [resolve_run(run, runs_dir) for run in runs]
    comparison = build_comparison(folders)
    files = write_report(comparison, output or default_output(runs_dir))
    for table in render_terminal(comparison):
        app.terminal.table(table)
    app.terminal.success(f"report: {files.html}")
    app.terminal.info(f"markdown: {files.markdown} (plots in {files.markdown.parent / 'plots'})")
