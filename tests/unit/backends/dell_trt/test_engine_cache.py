"""The TensorRT engine cache: key stability and sensitivity, no rebuild on a hit, one build when
two processes ask at once, corrupt entries rebuilt; the timing cache beside it: its key and
paths, whole-or-nothing reads, locked atomic writes, merged concurrent saves."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backends.dell_trt.engine_cache import (
    DEFAULT_BUILDER,
    META_FILE,
    PLAN_FILE,
    TIMING_FOLDER,
    BuilderOptions,
    EngineCache,
    EngineKey,
    TimingCache,
    TimingCacheKey,
    timing_cache_paths,
)

KEY = EngineKey(
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    tensorrt_version="10.16.0.72",
    artifact_sha256="ab" * 32,
    batch_size=256,
    profiles=2,
    builder=BuilderOptions(
        optimization_level=3, workspace_bytes=1 << 30, profiling_verbosity="layer_names_only"
    ),
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
        builder=BuilderOptions(
            profiling_verbosity="layer_names_only", workspace_bytes=1 << 30, optimization_level=3
        ),
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


def test_engines_are_built_for_the_engine_inspector_by_default() -> None:
    """Detailed profiling verbosity (each layer's data types, for the device facts) is the
    default: another key than the layer-names-only engines built before."""
    assert DEFAULT_BUILDER.profiling_verbosity == "detailed"
    assert dataclasses.replace(KEY, builder=DEFAULT_BUILDER).builder.profiling_verbosity == (
        "detailed"
    )


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

    def builder(*_args: object, **_kwargs: object) -> bytes:
        builds.append(1)
        return b"plan"

    monkeypatch.setattr(trt_engine, "build_serialized_engine", builder)
    with pytest.raises(trt_engine.TrtError, match="the engines step builds it"):
        trt_engine.cached_engine(cache, onnx, gpu, 8, 2, build=False)  # type: ignore[arg-type]
    assert builds == []
    built = trt_engine.cached_engine(cache, onnx, gpu, 8, 2)  # type: ignore[arg-type]
    found = trt_engine.cached_engine(cache, onnx, gpu, 8, 2, build=False)  # type: ignore[arg-type]
    assert (built.built, found.built, found.key, builds) == (True, False, built.key, [1])


# --- the timing cache ----------------------------------------------------------------------------

TIMING = TimingCacheKey.of(KEY)


def test_timing_cache_key_is_the_gpu_and_the_tensorrt() -> None:
    assert TimingCacheKey("NVIDIA H100 80GB HBM3", "9.0", "10.16.0.72") == TIMING
    # Every engine of this GPU and TensorRT shares it: model, batch, profiles, options aside.
    other_engine = dataclasses.replace(
        KEY, artifact_sha256="cd" * 32, batch_size=8, profiles=1, builder=DEFAULT_BUILDER
    )
    assert TimingCacheKey.of(other_engine) == TIMING
    assert TIMING.digest() == TimingCacheKey.of(other_engine).digest()
    assert TIMING.fields() == {
        "schema": 1,
        "gpu": "NVIDIA H100 80GB HBM3",
        "sm": "9.0",
        "tensorrt": "10.16.0.72",
    }
    # A known value: a change of the recipe (orphaning every stored cache) is noticed.
    assert TIMING.digest() == "6e96959a72b9e4c50a0f5cdfcc74679ce564f9913880cac5155989c272cb9868"
    for change in (
        {"gpu_name": "NVIDIA H200"},
        {"compute_capability": "8.9"},
        {"tensorrt_version": "11.4.0.106"},
    ):
        assert dataclasses.replace(TIMING, **change).digest() != TIMING.digest()


def test_timing_cache_paths_sit_beside_the_engines(tmp_path: Path) -> None:
    paths = timing_cache_paths(tmp_path, TIMING)
    folder = tmp_path / TIMING_FOLDER
    assert TIMING_FOLDER == "timing"
    assert paths.cache == folder / f"{TIMING.digest()}.cache"
    assert paths.meta == folder / f"{TIMING.digest()}.json"
    assert paths.lock == folder / f"{TIMING.digest()}.lock"
    # Never where an engine entry (<root>/<64 hex digits>) could be.
    assert paths.cache.parent != tmp_path


def test_timing_cache_round_trip_with_a_sidecar(tmp_path: Path) -> None:
    cache = TimingCache(tmp_path, TIMING)
    assert cache.load() is None  # nothing stored yet
    assert cache.save(b"tactic timings") == b"tactic timings"
    assert cache.load() == b"tactic timings"
    meta = json.loads(cache.paths.meta.read_text())
    assert meta["key"] == TIMING.digest()
    assert (meta["fields"]["gpu"], meta["fields"]["sm"], meta["fields"]["tensorrt"]) == (
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "10.16.0.72",
    )
    assert meta["cache_bytes"] == len(b"tactic timings")
    # Another GPU or TensorRT finds nothing, and stores its own beside it.
    other = TimingCache(tmp_path, dataclasses.replace(TIMING, tensorrt_version="11.4.0.106"))
    assert other.load() is None
    other.save(b"trt 11 timings")
    assert (cache.load(), other.load()) == (b"tactic timings", b"trt 11 timings")
    # Only the files of the two caches (and their locks), no temporary leftovers.
    names = sorted(path.suffix for path in (tmp_path / TIMING_FOLDER).iterdir())
    assert names == [".cache", ".cache", ".json", ".json", ".lock", ".lock"]


@pytest.mark.parametrize(
    "damage",
    ["truncated cache", "other bytes", "no sidecar", "corrupt sidecar", "sidecar of another key"],
)
def test_a_damaged_timing_cache_reads_as_none(tmp_path: Path, damage: str) -> None:
    cache = TimingCache(tmp_path, TIMING)
    cache.save(b"0123456789")
    paths = cache.paths
    if damage == "truncated cache":
        paths.cache.write_bytes(b"01234")
    elif damage == "other bytes":
        paths.cache.write_bytes(b"abcdefghij")
    elif damage == "no sidecar":
        paths.meta.unlink()
    elif damage == "corrupt sidecar":
        paths.meta.write_text("{not json")
    else:
        meta = json.loads(paths.meta.read_text())
        meta["key"] = "0" * 64
        paths.meta.write_text(json.dumps(meta))
    assert cache.load() is None
    cache.save(b"rebuilt")  # the next build's save repairs it
    assert cache.load() == b"rebuilt"


def test_a_save_merges_what_another_build_stored_meanwhile(tmp_path: Path) -> None:
    cache = TimingCache(tmp_path, TIMING)
    merged_with: list[bytes] = []

    def merging(ours: bytes) -> Callable[[bytes], bytes]:
        def merge(stored: bytes) -> bytes:  # as TensorRT's ITimingCache.combine would
            merged_with.append(stored)
            return ours + b"+" + stored

        return merge

    assert cache.save(b"first", merging(b"first")) == b"first"  # nothing stored: no merge
    assert merged_with == []
    assert cache.save(b"second", merging(b"second")) == b"second+first"
    assert merged_with == [b"first"]
    assert cache.load() == b"second+first"
    # The stored cache is the one this build started from, grown: nothing to merge.
    assert cache.save(b"second+first", merging(b"second+first")) == b"second+first"
    assert merged_with == [b"first"]
    assert cache.save(b"third") == b"third"  # without a merge, the last save wins
    with pytest.raises(ValueError, match="empty"):
        cache.save(b"")
    with pytest.raises(ValueError, match="empty"):
        cache.save(b"fourth", lambda _stored: b"")
    assert cache.load() == b"third"


def test_a_save_holds_the_lock_and_writes_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backends.dell_trt import engine_cache

    events: list[str] = []
    real_exclusive = engine_cache.exclusive
    real_bytes = engine_cache.atomic_write_bytes
    real_text = engine_cache.atomic_write_text

    @contextmanager
    def recording_exclusive(path: Path, timeout_s: float) -> Iterator[None]:
        with real_exclusive(path, timeout_s=timeout_s):
            events.append(f"lock {path.name}")
            yield
            events.append(f"unlock {path.name}")

    def recording_bytes(path: Path, data: bytes) -> None:
        events.append(f"write {path.name}")
        real_bytes(path, data)

    def recording_text(path: Path, text: str) -> None:
        events.append(f"write {path.name}")
        real_text(path, text)

    monkeypatch.setattr(engine_cache, "exclusive", recording_exclusive)
    monkeypatch.setattr(engine_cache, "atomic_write_bytes", recording_bytes)
    monkeypatch.setattr(engine_cache, "atomic_write_text", recording_text)
    cache = TimingCache(tmp_path, TIMING)
    cache.save(b"timings")
    digest = TIMING.digest()
    assert events == [
        f"lock {digest}.lock",
        f"write {digest}.cache",
        f"write {digest}.json",
        f"unlock {digest}.lock",
    ]
    events.clear()
    assert cache.load() == b"timings"  # read under the lock: never between the two writes
    assert events == [f"lock {digest}.lock", f"unlock {digest}.lock"]


def test_an_engine_build_gets_its_gpus_timing_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cached_engine hands the builder the timing cache of the engine's GPU and TensorRT, beside
    the engine cache; a lookup (build=False) never touches it."""
    from types import SimpleNamespace

    from backends.dell_trt import trt_engine

    monkeypatch.setattr(trt_engine, "tensorrt_version", lambda: "10.16.0.72")
    onnx = tmp_path / "s8s8.onnx"
    onnx.write_bytes(b"q/dq model")
    gpu = SimpleNamespace(name="NVIDIA H100 80GB HBM3", sm="9.0")
    cache = EngineCache(tmp_path / "engines")
    given: list[object] = []

    def builder(*_args: object, timing_cache: object = None, **_kwargs: object) -> bytes:
        given.append(timing_cache)
        return b"plan"

    monkeypatch.setattr(trt_engine, "build_serialized_engine", builder)
    trt_engine.cached_engine(cache, onnx, gpu, 8, 2)  # type: ignore[arg-type]
    trt_engine.cached_engine(cache, onnx, gpu, 8, 2, build=False)  # type: ignore[arg-type]
    (timing,) = given
    assert isinstance(timing, TimingCache)
    assert timing.key == TimingCacheKey("NVIDIA H100 80GB HBM3", "9.0", "10.16.0.72")
    assert timing.paths == timing_cache_paths(tmp_path / "engines", timing.key)
