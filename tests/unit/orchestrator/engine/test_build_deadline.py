"""Engine-free: the image build streams its log and is bounded by one overall deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.engine.client import DockerEngine
from orchestrator.errors import BuildFailed
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
