"""Shared fixtures: a persistent test cache and the synthetic assets (generated once); the
fast tier's guard."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"
TEST_CACHE = Path(os.environ.get("MLORCH_TEST_CACHE", Path.home() / ".cache" / "mlorch-tests"))
# Set for the whole session (module-scoped fixtures and subprocesses included): tests never touch
# the user's ~/.cache/mlorch.
os.environ["MLORCH_CACHE"] = str(TEST_CACHE)


@pytest.fixture(scope="session")
def test_cache() -> Path:
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return TEST_CACHE


@pytest.fixture(scope="session")
def synthetic_assets(test_cache: Path) -> tuple[Path, Path]:
    """(model, dataset) of the default synthetic assets (64 images, seed 0)."""
    from backends.common.synthetic import load_existing, make_synthetic_assets, synthetic_root

    root = synthetic_root(test_cache, 64, 0)
    assets = load_existing(root) or make_synthetic_assets(root, 64, 0)
    return assets.model, assets.dataset


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the synthetic model are heavy: generating it (once) takes seconds."""
    for item in items:
        if "synthetic_assets" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.heavy)


@pytest.fixture
def golden() -> Path:
    return GOLDEN


# The fast tier (`./scripts/test.sh --fast`) deselects the marked tiers; this guard makes its
# promise hold: an unmarked test that starts a process (a CLI subprocess, a browser, a compiler, a
# type checker) or opens a network connection fails there, naming the marker it needs.
FAST_TIER = os.environ.get("MLORCH_FAST_TIER") == "1"


@pytest.fixture(autouse=True)
def _fast_tier_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not FAST_TIER:
        yield
        return

    def no_process(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the fast tier starts no process: mark this test `subprocess`")

    def no_network(self: Any, address: Any) -> None:
        # AF_UNIX (a local docker socket) and loopback servers a test starts are not the network
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError("the fast tier uses no network: mark this test `network`")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    platform.platform()  # the standard library asks `uname -p` once and caches it
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    yield
