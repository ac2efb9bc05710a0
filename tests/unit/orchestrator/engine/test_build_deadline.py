"""Engine-free: the image build streams its log and is bounded by one overall deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.errors import BuildFailed, EngineWentAway
from tests.support.fake_docker import CannedAPI, fake_client


def _api(events: int, pause_s: float) -> CannedAPI:
    api = CannedAPI([], [])
    api.build_events = [{"stream": f"Step {n}/{events} : RUN make\n"} for n in range(1, events + 1)]
    api.build_pause_s = pause_s
    return api


def test_build_streams_lines_and_returns_the_image(tmp_path: Path) -> None:
    api = _api(3, 0.0)
    lines: list[str] = []
    image_id = DockerEngine(fake_client(api)).build(tmp_path, "img:1", {}, lines.append, 30)
    assert image_id == "sha256:" + "b" * 64
    assert lines == [f"Step {n}/3 : RUN make" for n in (1, 2, 3)]


@pytest.mark.parametrize("pause_s", [0.2, 30.0], ids=["chatty", "silent"])
def test_build_over_its_deadline_is_stopped(tmp_path: Path, pause_s: float) -> None:
    """A build printing steadily and one stuck in a silent step both end at the deadline,
    not when the engine next speaks (the per-read HTTP timeout alone never ends a chatty one)."""
    api = _api(1000, pause_s)
    started = time.monotonic()
    with pytest.raises(BuildFailed) as info:
        DockerEngine(fake_client(api)).build(tmp_path, "img:1", {}, lambda _line: None, 2.0)
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 6
    assert "did not finish within its deadline of 2 s" in info.value.message
    assert "--build-timeout" in (info.value.hint or "")
    assert info.value.exit_code == 4
    if pause_s < 1:
        assert "Step 1/1000" in info.value.build_log  # the tail shows where it was


def _engine_stops_mid_build(api: CannedAPI, after: int) -> None:
    """The build stream breaks after `after` steps as dockerd's socket goes, and the engine
    answers no more."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    events = list(api.build_events)

    def build(**kwargs: Any) -> Iterator[dict[str, Any]]:
        api.calls.append(("build", kwargs))
        yield from events[:after]
        api.engine_up = False
        raise RequestsConnectionError("('Connection aborted.', ConnectionResetError(104))")

    api.build = build  # type: ignore[method-assign]


@pytest.fixture
def breaking_build(monkeypatch: pytest.MonkeyPatch) -> CannedAPI:
    """A five-step build whose stream breaks after step 2 with the engine gone."""
    import orchestrator.engine.client as client_module

    monkeypatch.setattr(client_module, "ENGINE_SETTLE_S", 0.5)
    api = _api(5, 0.0)
    _engine_stops_mid_build(api, 2)
    return api


def test_the_engine_stopping_mid_build_is_engine_went_away(
    tmp_path: Path, breaking_build: CannedAPI
) -> None:
    api = breaking_build
    lines: list[str] = []
    with pytest.raises(EngineWentAway) as gone:
        DockerEngine(fake_client(api)).build(tmp_path, "img:1", {}, lines.append, 30)
    assert gone.value.exit_code == 3
    assert "stopped answering (building img:1)" in gone.value.message
    assert lines == ["Step 1/5 : RUN make", "Step 2/5 : RUN make"]


def test_a_broken_build_stream_with_the_engine_up_is_a_failed_build(
    tmp_path: Path, breaking_build: CannedAPI
) -> None:
    api = breaking_build
    real = api.build

    def build_then_recover(**kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from real(**kwargs)
        finally:
            api.engine_up = True  # a transport hiccup: the engine still answers

    api.build = build_then_recover  # type: ignore[method-assign]
    with pytest.raises(BuildFailed) as failed:
        DockerEngine(fake_client(api)).build(tmp_path, "img:1", {}, lambda _line: None, 30)
    assert failed.value.exit_code == 4
    assert "Step 2/5" in failed.value.build_log
