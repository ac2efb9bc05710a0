"""The cache users under their per-key locks: a second mlorch waits, says so once, and reuses
what the first one made instead of making it again (no container is started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.layout import CACHE_MANIFEST, SYNTHETIC_MARKER, cache_key
from orchestrator import cachelock
from orchestrator.assets import ResolvedAssets, synthetic_request
from orchestrator.assets.model import ModelInfo
from orchestrator.assets.prepare import Preparer, ensure_preprocessed, ensure_synthetic
from orchestrator.cachelock import cache_lock, lock_path_for
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import WaitTimeout
from orchestrator.images.build import PROBE_VERSION, BaseImage, image_freeze, probe_platform
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity
from tests.support.fake_docker import CannedAPI, fake_client

WAITING = "waiting for another mlorch to finish"


# Another mlorch: holds the key's lock while it fills the cache entry, then releases it.
FILL_THEN_RELEASE = """
import sys, time
from pathlib import Path
from contract.locks import atomic_write_text, exclusive
lock, ready, target, content = sys.argv[1:]
with exclusive(Path(lock)):
    Path(ready).write_text("held")
    time.sleep(1.0)
    atomic_write_text(Path(target), content)
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MLORCH_CACHE", str(root))
    return root


@contextmanager
def _other_mlorch(cache: Path, kind: str, key: str, target: Path, content: str) -> Iterator[None]:
    ready = cache.parent / "ready"
    lock = cache / "locks" / lock_path_for(kind, key)
    holder = subprocess.Popen(
        [sys.executable, "-c", FILL_THEN_RELEASE, str(lock), str(ready), str(target), content]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline, "the other mlorch never took the lock"
            assert holder.poll() is None, "the other mlorch failed"
            time.sleep(0.05)
        yield
    finally:
        holder.wait(30)


def _engine() -> tuple[DockerEngine, CannedAPI]:
    api = CannedAPI([], [])  # any container run would fail: there are no states to report
    return DockerEngine(fake_client(api)), api


@pytest.mark.subprocess
def test_probe_waits_and_reuses(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = BaseImage("mlorch/base:bookworm", "sha256:" + "a" * 64, fallback=True)
    key = base.image_id.replace(":", "_")
    probe = {"python": "3.11", "glibc": "2.36", "machine": "x86_64"}
    facts = {**probe, "cuda": None, "tensorrt": None}
    target = cache / "probes" / f"{key}.v{PROBE_VERSION}.json"
    engine, api = _engine()
    with _other_mlorch(cache, "probe", key, target, json.dumps(facts)):
        platform = probe_platform(engine, base, Terminal())
    assert platform.__dict__ == probe
    assert api.calls == []
    assert capsys.readouterr().err.count(WAITING) == 1


@pytest.mark.subprocess
def test_freeze_waits_and_reuses(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = cache / "freeze" / "mlorch_reference-cpu_0123.txt"
    engine, api = _engine()
    with _other_mlorch(cache, "freeze", "mlorch_reference-cpu_0123", target, "numpy==2\n"):
        lines = image_freeze(engine, "mlorch/reference-cpu:0123", Terminal())
    assert lines == ["numpy==2"]
    assert api.calls == []
    assert WAITING in capsys.readouterr().err


@pytest.mark.subprocess
def test_synthetic_waits_and_reuses(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = synthetic_request(8, 3)
    marker = json.dumps({"distinct_labels": 5})
    engine, api = _engine()
    identity = Identity.current()
    backend = get_backend("reference")
    with _other_mlorch(
        cache, "synthetic", request.root.name, request.root / SYNTHETIC_MARKER, marker
    ):
        ensure_synthetic(Preparer(engine, backend, "img:1", "run", identity, Terminal()), request)
    assert api.calls == []
    err = capsys.readouterr().err
    assert f"{WAITING} generating the synthetic assets (8 images, seed 3)" in err
    assert "5 distinct labels" in err


@pytest.mark.subprocess
def test_preprocessing_waits_and_reuses(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "imagenet"
    dataset.mkdir()
    (dataset / "val_map.txt").write_text("val/a.JPEG 1\nval/b.JPEG 2\n")
    assets = ResolvedAssets(
        model=ModelInfo(tmp_path / "m.onnx", "0" * 32, official=False, opset=11),
        dataset=dataset,
        available=2,
        count=2,
        synthetic=False,
    )
    key = cache_key(dataset, 2, "fp32")
    target = cache / "preprocessed" / key / CACHE_MANIFEST
    engine, api = _engine()
    backend = get_backend("reference")
    with _other_mlorch(cache, "preprocessed", key, target, json.dumps({"count": 2})):
        prep = Preparer(engine, backend, "img:1", "run", Identity.current(), Terminal())
        _, found = ensure_preprocessed(prep, assets)
    assert found == target.parent
    assert api.calls == []
    err = capsys.readouterr().err
    assert f"{WAITING} preprocessing 2 images (fp32)" in err
    assert "is complete" in err


@pytest.mark.subprocess
def test_a_lock_held_too_long_is_a_wait_timeout(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cachelock, "MARGIN_S", 0.0)
    target = cache / "never"
    with (
        _other_mlorch(cache, "build", "img:1", target, "x"),
        pytest.raises(WaitTimeout) as info,
        cache_lock("build", "img:1", "building img:1", Terminal(), 0.2),
    ):
        pass
    assert "another mlorch did not finish building img:1 within 0 s" in info.value.message
    assert info.value.exit_code == 7


@pytest.mark.subprocess
def test_build_contexts_of_dead_processes_are_removed(tmp_path: Path) -> None:
    from orchestrator.images.build import remove_stale_contexts

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    stale = tmp_path / f"context-{dead.stdout.strip()}-abc"
    live = tmp_path / f"context-{os.getpid()}-def"
    for folder in (stale, live):
        (folder / "wheelhouse").mkdir(parents=True)
    remove_stale_contexts(tmp_path)
    assert not stale.exists()
    assert live.is_dir()
