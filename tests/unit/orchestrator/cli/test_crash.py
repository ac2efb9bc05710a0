"""Crashes are errors too: an unexpected exception is one line + hint + exit 70, the traceback is
saved (in the run folder for `up`), and the run's manifest says it failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import InternalError


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["mlorch", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def _broken_planner(*_args: object) -> None:
    raise KeyError("dataset_count")  # stands for any bug in a core step


def test_crash_in_up_fails_the_run_and_keeps_the_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("orchestrator.running.up.plan_assets", _broken_planner)
    runs = tmp_path / "runs"
    code = _main(monkeypatch, "up", "reference", "--device", "cpu", "--runs-dir", str(runs))
    assert code == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: unexpected error: KeyError: 'dataset_count'"]
    (run_dir,) = runs.iterdir()
    trace = run_dir / "traceback.txt"
    assert f"hint: the traceback is in {trace}; rerun with --debug" in err
    assert "_broken_planner" in trace.read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "unexpected error: KeyError: 'dataset_count'"
    assert manifest["finished"]


def test_debug_shows_the_crash_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("orchestrator.running.up.plan_assets", _broken_planner)
    monkeypatch.setattr(sys, "argv", ["mlorch", "--debug", "up", "reference", "--device", "cpu",
                                      "--runs-dir", str(tmp_path)])  # fmt: skip
    with pytest.raises(InternalError) as info:
        main()
    assert isinstance(info.value.__cause__, KeyError)


def test_crash_outside_up_is_saved_in_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_runs: Path) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setenv("MLORCH_CACHE", str(tmp_path))
    monkeypatch.setattr("orchestrator.results.manifest.list_runs", broken)
    assert _main(monkeypatch, "runs", "--runs-dir", str(tmp_path)) == 70
    err = capsys.readouterr().err
    assert "error: unexpected error: ZeroDivisionError: division by zero" in err
    (saved,) = (tmp_path / "crashes").iterdir()
    assert f"the traceback is in {saved}" in err
    assert "in broken" in saved.read_text()
