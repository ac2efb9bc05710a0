"""Container ownership: only containers of an mlorch that is gone are orphans."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.owner import Owner, OwnerState, owner_state, sort_containers
from tests.support.fake_docker import CannedAPI, fake_client

pytestmark = pytest.mark.subprocess


def _dead_owner() -> Owner:
    """The owner labels a process that has exited would have left."""
    child = subprocess.run(
        [sys.executable, "-c", "from orchestrator.engine.owner import Owner; "
         "o = Owner.current(); print(o.pid, o.started)"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    pid, started = child.stdout.split()
    here = Owner.current()
    return Owner(here.host, int(pid), here.boot_id, started)


def test_labels_round_trip() -> None:
    here = Owner.current()
    assert Owner.from_labels(here.labels()) == here
    assert Owner.from_labels({L.OWNER_PID: "12"}) is None
    assert here.pid == os.getpid()


def test_states() -> None:
    here = Owner.current()
    assert owner_state(here, here) is OwnerState.ALIVE
    assert owner_state(_dead_owner(), here) is OwnerState.GONE
    assert owner_state(None, here) is OwnerState.UNKNOWN
    assert owner_state(replace(here, host="elsewhere"), here) is OwnerState.ELSEWHERE
    # A recycled pid: a live process with this pid, but it started at another time.
    assert owner_state(replace(here, started="1"), here) is OwnerState.GONE
    # A container from before a reboot: its pid may be alive again, its boot is not.
    assert owner_state(replace(here, boot_id="an-earlier-boot"), here) is OwnerState.GONE


def _container(name: str, owner: Owner | None) -> SimpleNamespace:
    labels = {L.TOOL: L.TOOL_VALUE, **(owner.labels() if owner else {})}
    return SimpleNamespace(name=name, labels=labels)


def test_sorting_keeps_live_runs() -> None:
    here = Owner.current()
    containers = [
        _container("live", here),
        _container("orphan", _dead_owner()),
        _container("unowned", None),
        _container("remote", replace(here, host="elsewhere")),
    ]

    def names(items: list) -> list[str]:
        return sorted(item.name for item in items)

    up = sort_containers(containers, force=False, include_unowned=False)
    assert names(up.removable) == ["orphan"]
    down = sort_containers(containers, force=False, include_unowned=True)
    assert names(down.removable) == ["orphan", "unowned"]
    assert names(down.kept) == ["live", "remote"]
    forced = sort_containers(containers, force=True, include_unowned=True)
    assert names(forced.removable) == ["live", "orphan", "remote", "unowned"]


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> CannedAPI:
    dead = _dead_owner()
    api = CannedAPI(
        [],
        [],
        listed={
            "live": {L.TOOL: L.TOOL_VALUE, **Owner.current().labels()},
            "orphan": {L.TOOL: L.TOOL_VALUE, **dead.labels()},
        },
    )
    monkeypatch.setattr(DockerEngine, "connect", classmethod(lambda cls: cls(fake_client(api))))
    return api


def _removed(api: CannedAPI) -> list[str]:
    return [args["id"] for name, args in api.calls if name == "remove"]


def test_down_removes_only_orphans(canned: CannedAPI) -> None:
    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["down"])
    assert result.exit_code == 0, result.output
    assert _removed(canned) == ["orphan"]
    assert "is gone" in result.output
    assert "kept live: its mlorch" in result.output
    assert "--all" in result.output


def test_down_all_removes_live_runs_too(canned: CannedAPI) -> None:
    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["down", "--all"])
    assert result.exit_code == 0, result.output
    assert sorted(_removed(canned)) == ["live", "orphan"]
