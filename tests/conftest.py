"""Shared fixtures: a persistent test cache and the synthetic assets (generated once)."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture
def golden() -> Path:
    return GOLDEN
