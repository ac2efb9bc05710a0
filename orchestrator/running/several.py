"""`mlorch up A B ...`: several backends one after another with the same assets, profile and
flags, then one comparison report of their runs (as `mlorch compare` writes it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import RunSpec
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import BackendsFailed, Interrupted, MlorchError
from orchestrator.report import ReportFiles, default_output, write_report
from orchestrator.report.build import build_comparison
from orchestrator.report.loading import NotStarted, RunSource
from orchestrator.report.model import Comparison


@dataclass(frozen=True)
class SeveralOutcome:
    sources: tuple[RunSource, ...]
    failures: tuple[tuple[str, MlorchError], ...]
    comparison: Comparison | None  # None when no backend got as far as a run folder
    files: ReportFiles | None

    def raise_for_failures(self) -> None:
        """Report the failed backends as one error (exit code: the first failure's)."""
        if self.failures:
            report = str(self.files.html) if self.files else "no run folder was written"
            raise BackendsFailed(list(self.failures), len(self.sources), report)


def _report(sources: Sequence[RunSource], output: Path) -> tuple[Comparison, ReportFiles] | None:
    if not any(isinstance(source, Path) for source in sources):
        return None
    comparison = build_comparison(sources)
    return comparison, write_report(comparison, output)


def run_several(
    specs: Sequence[RunSpec],
    connect: Callable[[], DockerEngine],
    terminal: Terminal,
    output: Path | None = None,
) -> SeveralOutcome:
    """Run each spec in turn; a failing backend is recorded and the next one still runs.

    Ctrl-C stops the series: the comparison of what exists is written, then Interrupted
    propagates (exit 130)."""
    from orchestrator.running.up import up

    sources: list[RunSource] = []
    failures: list[tuple[str, MlorchError]] = []
    folder = output or default_output(specs[0].runs_dir)
    for number, spec in enumerate(specs, 1):
        terminal.step(f"backend {number}/{len(specs)}: {spec.backend} ({spec.device.value})")
        started: list[Path] = []
        try:
            outcome = up(spec, connect, terminal, on_run_dir=started.append)
            sources.append(outcome.manifest.run_dir)
        except Interrupted:
            sources += started
            written = _report(sources, folder)
            if written is not None:
                terminal.info(f"comparison of the runs so far: {written[1].html}")
            raise
        except MlorchError as exc:
            if exc.details:
                terminal.detail(exc.details)
            terminal.error(f"{spec.backend}: {exc.message}", exc.hint)
            failures.append((spec.backend, exc))
            sources.append(
                started[0] if started else NotStarted(spec.backend, spec.device.value, exc.message)
            )
    written = _report(sources, folder)
    comparison, files = written if written is not None else (None, None)
    return SeveralOutcome(tuple(sources), tuple(failures), comparison, files)
