"""The TensorRT engine cache: key stability and sensitivity, no rebuild on a hit, one build when
two processes ask at once, corrupt entries rebuilt."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from pathlib import Path

import pytest

from backends.dell_trt.engine_cache import (
    META_FILE,
    PLAN_FILE,
    BuilderOptions,
    EngineCache,
    EngineKey,
)

KEY = EngineKey(
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    tensorrt_version="10.16.0.72",
    artifact_sha256="ab" * 32,
    batch_size=256,
    profiles=2,
    builder=BuilderOptions(optimization_level=3, workspace_bytes=1 << 30),
)


def test_key_is_stable_and_canonical() -> None:
    # Recomputed from equal fields in another order: same digest, and a known value so that an
    # accidental change of the key recipe (which would orphan every cached engine) is noticed.
    again = EngineKey(
        profiles=2,
        batch_size=256,
        artifact_sha256="ab" * 32,
        tensorrt_version="10.16.0.72",
        compute_capability="9.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        builder=BuilderOptions(workspace_bytes=1 << 30, optimization_level=3),
    )
    assert again.digest() == KEY.digest()
    assert KEY.digest() == "7043e08ff07830f17ae1ea785bd9dada1540ce74bf18eedb81e5065946acab4e"


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "NVIDIA H200"},
        {"compute_capability": "8.9"},
        {"tensorrt_version": "11.4.0.106"},
        {"artifact_sha256": "cd" * 32},
        {"batch_size": 128},
        {"profiles": 3},
        {"builder": BuilderOptions(optimization_level=5, workspace_bytes=1 << 30)},
        {"builder": BuilderOptions(optimization_level=3, workspace_bytes=2 << 30)},
        {
            "builder": BuilderOptions(
                optimization_level=3, workspace_bytes=1 << 30, profiling_verbosity="detailed"
            )
        },
    ],
)
def test_every_field_changes_the_key(change: dict[str, object]) -> None:
    assert dataclasses.replace(KEY, **change).digest() != KEY.digest()  # type: ignore[arg-type]


def test_invalid_keys_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="optimization_level"):
        BuilderOptions(optimization_level=7)
    with pytest.raises(ValueError, match="profiling_verbosity"):
        BuilderOptions(profiling_verbosity="loud")
    with pytest.raises(ValueError, match="sha256"):
        dataclasses.replace(KEY, artifact_sha256="abc")
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(KEY, batch_size=0)


def test_hit_never_rebuilds(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"plan-bytes"

    first = cache.get_or_build(KEY, build)
    second = cache.get_or_build(KEY, build)
    assert builds == [1]
    assert first.built
    assert not second.built
    assert second.plan_path == tmp_path / KEY.digest() / PLAN_FILE
    assert second.plan_path.read_bytes() == b"plan-bytes"
    meta = json.loads((tmp_path / KEY.digest() / META_FILE).read_text())
    assert meta["fields"]["batch_size"] == 256
    assert meta["fields"]["builder"]["optimization_level"] == 3
    # Another key is another engine.
    other = cache.get_or_build(dataclasses.replace(KEY, profiles=3), build)
    assert other.built
    assert builds == [1, 1]


def test_a_truncated_plan_is_rebuilt(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    entry = cache.get_or_build(KEY, lambda: b"0123456789")
    entry.plan_path.write_bytes(b"01234")  # e.g. a disk that filled up
    assert cache.lookup(KEY) is None
    rebuilt = cache.get_or_build(KEY, lambda: b"0123456789")
    assert rebuilt.built
    assert rebuilt.plan_path.read_bytes() == b"0123456789"


def test_a_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def broken() -> bytes:
        raise RuntimeError("builder failed")

    with pytest.raises(RuntimeError, match="builder failed"):
        cache.get_or_build(KEY, broken)
    assert cache.lookup(KEY) is None
    with pytest.raises(ValueError, match="empty plan"):
        cache.get_or_build(KEY, lambda: b"")
    assert cache.get_or_build(KEY, lambda: b"ok").built


def _build_in_process(root: str, log: str, started: str) -> None:
    def build() -> bytes:
        with open(log, "a") as handle:
            handle.write("build\n")
        Path(started).write_text("building")
        time.sleep(1.0)  # long enough for the other process to queue on the lock
        return b"the-plan"

    EngineCache(Path(root)).get_or_build(KEY, build)


@pytest.mark.subprocess
def test_two_processes_build_once(tmp_path: Path) -> None:
    log, started = tmp_path / "builds.log", tmp_path / "started"
    spawn = multiprocessing.get_context("spawn")
    first = spawn.Process(target=_build_in_process, args=(str(tmp_path), str(log), str(started)))
    first.start()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the first builder never started"
        time.sleep(0.02)
    second = spawn.Process(target=_build_in_process, args=(str(tmp_path), str(log), str(started)))
    second.start()
    for process in (first, second):
        process.join(60)
        assert process.exitcode == 0
    assert log.read_text() == "build\n"
    found = EngineCache(tmp_path).lookup(KEY)
    assert found is not None
    assert found.plan_path.read_bytes() == b"the-plan"


def test_a_test_container_only_reads_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build=False (the LoadGen tests' path): a missing engine is one clear TrtError, never a
    build attempt in a container whose engine cache is mounted read-only."""
    from types import SimpleNamespace

    from backends.dell_trt import trt_engine

    monkeypatch.setattr(trt_engine, "tensorrt_version", lambda: "10.16.0.72")
    onnx = tmp_path / "s8s8.onnx"
    onnx.write_bytes(b"q/dq model")
    gpu = SimpleNamespace(name="NVIDIA H100 80GB HBM3", sm="9.0")
    cache = EngineCache(tmp_path / "engines")
    builds: list[int] = []

    def builder(*_args: object) -> bytes:
        builds.append(1)
        return b"plan"

    monkeypatch.setattr(trt_engine, "build_serialized_engine", builder)
    with pytest.raises(trt_engine.TrtError, match="the engines step builds it"):
        trt_engine.cached_engine(cache, onnx, gpu, 8, 2, build=False)  # type: ignore[arg-type]
    assert builds == []
    built = trt_engine.cached_engine(cache, onnx, gpu, 8, 2)  # type: ignore[arg-type]
    found = trt_engine.cached_engine(cache, onnx, gpu, 8, 2, build=False)  # type: ignore[arg-type]
    assert (built.built, found.built, found.key, builds) == (True, False, built.key, [1])
