"""The one console gateway: status, progress and errors on stderr, data on stdout.

Core code never prints; it calls these methods. Spinners and live progress are switched off
when stderr is not a terminal or when running under CI, so logs stay readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def _interactive(console: Console) -> bool:
    return console.is_terminal and not os.environ.get("CI")


class Terminal:
    """Styled output for one CLI invocation."""

    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.quiet = quiet

    @property
    def interactive(self) -> bool:
        return _interactive(self.err)

    # status lines (stderr)
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[bold cyan]•[/] {escape(message)}")

    def step(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[bold]==>[/] {escape(message)}")

    def success(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[bold green]✓[/] {escape(message)}")

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]![/] {escape(message)}")

    def debug(self, message: str) -> None:
        if self.verbose:
            self.err.print(f"[dim]{escape(message)}[/]")

    def log_line(self, prefix: str, line: str) -> None:
        """One line streamed from a container."""
        if not self.quiet:
            self.err.print(f"[dim]{escape(prefix)} │ {escape(line)}[/]")

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]error:[/] {escape(message)}")
        if hint:
            self.err.print(f"[yellow]hint:[/] {escape(hint)}")

    def detail(self, text: str) -> None:
        """A block of supporting text (log tails) shown under an error."""
        self.err.print(f"[dim]{escape(text)}[/]")

    # data (stdout)
    def data(self, text: str) -> None:
        self.out.print(text, markup=False, highlight=False)

    def table(
        self,
        table: RenderableType,
        narrow: RenderableType | None = None,
        legend: Sequence[RenderableType] = (),
    ) -> None:
        """A table on stdout, wrapped at spaces to the width (80 columns in a pipe); `narrow`
        replaces it when the table's natural width is larger; `legend` lines follow it."""
        if narrow is not None and natural_width(self.out, table) > self.out.width:
            table = narrow
        self.out.print(Group(table, *legend), soft_wrap=False)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while a step runs; a plain line when not interactive."""
        if self.interactive and not self.quiet:
            with self.err.status(escape(message)):
                yield
        else:
            self.step(message)
            yield

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Any]:
        """A progress bar; yields a callable advance(n=1)."""
        if self.interactive and not self.quiet:
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=self.err, transient=True) as progress:
                task = progress.add_task(escape(description), total=total)
                yield lambda n=1: progress.advance(task, n)
        else:
            self.step(description)
            yield lambda n=1: None


def natural_width(console: Console, renderable: RenderableType) -> int:
    """Columns `renderable` takes when nothing in it has to wrap."""
    return Measurement.get(console, console.options.update_width(10_000), renderable).maximum
