"""Thin Typer CLI: parse, call one core function, render. Errors become one line + exit code."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import __version__
from orchestrator.cli.application import Application
from orchestrator.cli.assets import assets_app
from orchestrator.cli.build import build
from orchestrator.cli.campaign import campaign_app
from orchestrator.cli.check import check
from orchestrator.cli.compare import compare
from orchestrator.cli.compose import compose
from orchestrator.cli.doctor import doctor
from orchestrator.cli.down import down
from orchestrator.cli.render import render
from orchestrator.cli.runs import runs
from orchestrator.cli.submit import submit
from orchestrator.cli.tune import tune
from orchestrator.cli.up import up
from orchestrator.cli.wheelhouse import wheelhouse
from orchestrator.console import Terminal
from orchestrator.errors import InternalError, MlorchError, disk_full
from orchestrator.paths import cache_dir

app = typer.Typer(
    name="mlorch",
    help="Containerized MLPerf Inference benchmark orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain literal [brackets]
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        Terminal().data(f"mlorch {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More output (build logs).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Containerized MLPerf Inference benchmark orchestrator."""
    ctx.obj = Application(terminal=Terminal(verbose=verbose, quiet=quiet), debug=debug)


app.command()(up)
app.command()(tune)
app.command()(render)
app.command()(build)
app.command()(down)
app.command()(runs)
app.command()(compare)
app.command()(submit)
app.command()(check)
app.command()(doctor)
app.command()(compose)
app.command()(wheelhouse)
app.add_typer(assets_app, name="assets")
app.add_typer(campaign_app, name="campaign")


def main() -> None:
    """Console-script entry point: the one place errors meet the user.

    mlorch's own errors are one line + hint + their exit code; anything else is an internal error
    (exit 70) whose traceback is saved to a file. `--debug` shows raw tracebacks instead.
    """
    debug = "--debug" in sys.argv
    try:
        app()
    except MlorchError as exc:
        if debug:
            raise
        _report(exc)
    except Exception as exc:
        if debug:
            raise
        full = disk_full(exc) if isinstance(exc, OSError) else None
        _report(full or InternalError.wrap(exc, _crash_file()))


def _crash_file() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cache_dir() / "crashes" / f"{stamp}-{os.getpid()}.txt"


def _report(exc: MlorchError) -> None:
    """The one styled line (plus supporting detail and a hint), then the exit code."""
    terminal = Terminal()
    if exc.details:
        terminal.detail(exc.details)
    terminal.error(exc.message, exc.hint)
    sys.exit(exc.exit_code)
