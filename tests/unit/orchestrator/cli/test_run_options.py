"""The run options, declared once: every command that takes them parses them the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli.options import RUN_OPTIONS, RunOptions, with_run_options
from orchestrator.config import Scenario


def _app(omit: tuple[str, ...] = ()) -> tuple[typer.Typer, list[RunOptions]]:
    seen: list[RunOptions] = []
    app = typer.Typer()

    @app.command()
    @with_run_options(omit=omit)
    def command(options: RunOptions, name: str) -> None:
        seen.append(options)
        typer.echo(name)

    return app, seen


def test_the_options_arrive_as_one_object() -> None:
    app, seen = _app()
    result = CliRunner().invoke(
        app, ["x", "--quick", "-s", "Offline", "-s", "Server", "--set", "batch_size=4",
              "--runs-dir", "r", "--no-tuned"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    options = seen[0]
    assert options.quick
    assert options.scenario == [Scenario.OFFLINE, Scenario.SERVER]
    overrides = options.overrides()
    assert overrides["scenarios"] == (Scenario.OFFLINE, Scenario.SERVER)
    assert overrides["set_overrides"] == ("batch_size=4",)
    assert overrides["runs_dir"] == Path("r")
    assert overrides["use_tuned"] is False
    assert options.overrides(use_tuned=None)["use_tuned"] is None  # a command decides itself


def test_an_omitted_option_is_not_offered() -> None:
    app, _ = _app(omit=("telemetry_hz",))
    result = CliRunner().invoke(app, ["x", "--telemetry-hz", "5"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_every_run_option_is_a_field() -> None:
    assert set(RUN_OPTIONS) == set(RunOptions.__dataclass_fields__)


def test_omitting_an_unknown_option_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown run options"):
        with_run_options(omit=("colour",))
