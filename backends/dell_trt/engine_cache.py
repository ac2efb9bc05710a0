"""The TensorRT engine cache: one serialized engine per (GPU, TensorRT, model, build options).

Standard library only: the host may import it to name or list cached engines; the container
builds and loads them. An engine is only valid for the GPU model (compute capability) and the
exact TensorRT version that built it, so both are part of the key, together with everything that
changes the plan: the ONNX artifact (by content), the batch size (the profiles' range), the
number of optimization profiles (one per copy stream) and the builder options. CUDA graphs,
inference streams, `start_from_device` and the deque timeout do not change the plan and are
deliberately not in the key.

Layout: `<root>/<key>/engine.plan` and `<root>/<key>/engine.json` (the key's fields, the plan's
size and sha256, the build time). The json is written last, so its presence marks a complete
entry. Builders serialize on `<root>/<key>.lock` (`contract.locks.exclusive`): a second
process asking for the same key waits and then loads what the first one built.

Beside the engines, TensorRT's timing cache (the measured speed of the tactics it tried): one per
GPU model and TensorRT version (`TimingCacheKey`), shared by every model, batch and option set,
as TensorRT keys each entry by the layer and tactic it timed (and refuses a cache of another
device or version). `<root>/timing/<key>.cache` holds TensorRT's serialized cache and
`<root>/timing/<key>.json` names the GPU, its compute capability and the TensorRT, with the
cache's size and sha256; both are read and replaced (atomically) under `<root>/timing/<key>.lock`.
A later build for that GPU and TensorRT starts from it instead of timing those tactics again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contract.digest import file_sha256
from contract.locks import atomic_write_bytes, atomic_write_text, exclusive

# The TensorRT of the pinned base image (nvcr.io/nvidia/tensorrt:26.03-py3). The API conformance
# tests check trt_engine.py against this version's real bindings (and the newest 11.x).
TENSORRT_VERSION = "10.16.0.72"

KEY_SCHEMA = 1  # bump when the meaning of a key field changes
PLAN_FILE = "engine.plan"
META_FILE = "engine.json"
PROFILING_VERBOSITIES = ("none", "layer_names_only", "detailed")
TIMING_FOLDER = "timing"
TIMING_SCHEMA = 1  # bump when the meaning of a timing cache key field changes


def canonical_digest(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a key's fields (sorted keys, no whitespace)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BuilderOptions:
    """TensorRT builder settings that change the serialized engine."""

    optimization_level: int = 3  # TensorRT's default; 0 (fast build) … 5 (slowest, best)
    workspace_bytes: int = 4 << 30
    # "detailed": the engine inspector reports each layer's tactic and data types, which the
    # device facts record (trt_engine.layer_precisions). It sets what layer information the plan
    # keeps (for the inspector and NVTX annotations), not which kernels run.
    profiling_verbosity: str = "detailed"

    def __post_init__(self) -> None:
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be 0..5, got {self.optimization_level}")
        if self.workspace_bytes <= 0:
            raise ValueError(f"workspace_bytes must be positive, got {self.workspace_bytes}")
        if self.profiling_verbosity not in PROFILING_VERBOSITIES:
            raise ValueError(
                f"profiling_verbosity must be one of {', '.join(PROFILING_VERBOSITIES)},"
                f" got {self.profiling_verbosity!r}"
            )


DEFAULT_BUILDER = BuilderOptions()


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on."""

    gpu_name: str
    compute_capability: str  # "9.0"
    tensorrt_version: str
    artifact_sha256: str  # the S8S8 Q/DQ ONNX the engine is built from
    batch_size: int  # every profile covers batches 1..batch_size (opt = batch_size)
    profiles: int  # one optimization profile per copy stream
    builder: BuilderOptions = DEFAULT_BUILDER

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.profiles < 1:
            raise ValueError("batch_size and profiles must be at least 1")
        if len(self.artifact_sha256) != 64:
            raise ValueError("artifact_sha256 must be a sha256 hex digest")

    def fields(self) -> dict[str, Any]:
        return {"schema": KEY_SCHEMA, **asdict(self)}

    def digest(self) -> str:
        return canonical_digest(self.fields())


@dataclass(frozen=True)
class CachedEngine:
    key: str
    plan_path: Path
    meta: dict[str, Any]
    built: bool  # True when this call built it, False when it was found in the cache


class EngineCache:
    """Engines under one root folder, keyed by `EngineKey.digest()`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: EngineKey) -> Path:
        return self.root / key.digest()

    def lookup(self, key: EngineKey) -> CachedEngine | None:
        """The complete entry for `key`, or None (missing, half-written or corrupt)."""
        folder = self.entry(key)
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        plan = folder / PLAN_FILE
        if (
            meta.get("key") != key.digest()
            or not plan.is_file()
            or plan.stat().st_size != meta.get("plan_bytes")
            or file_sha256(plan) != meta.get("plan_sha256")
        ):
            return None
        return CachedEngine(key.digest(), plan, meta, built=False)

    def get_or_build(
        self,
        key: EngineKey,
        build: Callable[[], bytes],
        timeout_s: float = 6 * 3600.0,
        on_wait: Callable[[], None] | None = None,
    ) -> CachedEngine:
        """Return the cached engine for `key`, building it with `build()` only when missing.

        Holding the per-key lock while building means a concurrent caller waits for the build and
        then finds the entry, instead of building the same engine twice.
        """
        found = self.lookup(key)
        if found is not None:
            return found
        digest = key.digest()
        with exclusive(self.root / f"{digest}.lock", timeout_s=timeout_s, on_wait=on_wait):
            found = self.lookup(key)
            if found is not None:
                return found
            started = time.monotonic()
            plan = build()
            if not plan:
                raise ValueError("the engine builder returned an empty plan")
            folder = self.entry(key)
            atomic_write_bytes(folder / PLAN_FILE, plan)
            meta = {
                "key": digest,
                "fields": key.fields(),
                "plan_bytes": len(plan),
                "plan_sha256": hashlib.sha256(plan).hexdigest(),
                "build_seconds": round(time.monotonic() - started, 3),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True))
            return CachedEngine(digest, folder / PLAN_FILE, meta, built=True)


# --- the timing cache ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimingCacheKey:
    """What TensorRT's tactic timings are valid for: one GPU model and one TensorRT version."""

    gpu_name: str
    compute_capability: str  # "9.0"
    tensorrt_version: str

    @classmethod
    def of(cls, key: EngineKey) -> TimingCacheKey:
        """The timing cache every engine of `key`'s GPU and TensorRT shares."""
        return cls(key.gpu_name, key.compute_capability, key.tensorrt_version)

    def fields(self) -> dict[str, Any]:
        return {
            "schema": TIMING_SCHEMA,
            "gpu": self.gpu_name,
            "sm": self.compute_capability,
            "tensorrt": self.tensorrt_version,
        }

    def digest(self) -> str:
        return canonical_digest(self.fields())


@dataclass(frozen=True)
class TimingCachePaths:
    cache: Path  # TensorRT's serialized timing cache
    meta: Path  # the sidecar: the key's fields, the cache's size and sha256
    lock: Path  # writers serialize on it


def timing_cache_paths(root: Path, key: TimingCacheKey) -> TimingCachePaths:
    """`<root>/timing/<digest>.cache`, `.json` and `.lock` for the engine cache at `root`."""
    folder = root / TIMING_FOLDER
    digest = key.digest()
    return TimingCachePaths(
        folder / f"{digest}.cache", folder / f"{digest}.json", folder / f"{digest}.lock"
    )


class TimingCache:
    """One GPU model's and TensorRT version's timing cache beside the engine cache at `root`.

    Only bytes here (no TensorRT): the builder loads what `load()` returns into its config and
    hands what it serialized after the build to `save()`.
    """

    def __init__(self, root: Path, key: TimingCacheKey) -> None:
        self.key = key
        self.paths = timing_cache_paths(root, key)

    def load(self, timeout_s: float = 600.0) -> bytes | None:
        """The stored cache, or None: none yet, or one that is not whole or not this key's (a
        missing or mismatched sidecar, a size or sha256 that does not match). Read under the lock,
        so never between a writer's cache and its sidecar."""
        with exclusive(self.paths.lock, timeout_s=timeout_s):
            return self._read()

    def _read(self) -> bytes | None:
        try:
            meta = json.loads(self.paths.meta.read_text())
            data = self.paths.cache.read_bytes()
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if (
            not isinstance(meta, dict)
            or meta.get("key") != self.key.digest()
            or meta.get("cache_bytes") != len(data)
            or meta.get("cache_sha256") != hashlib.sha256(data).hexdigest()
            or not data
        ):
            return None
        return data

    def save(
        self,
        data: bytes,
        merge: Callable[[bytes], bytes] | None = None,
        timeout_s: float = 600.0,
    ) -> bytes:
        """Store `data` (the cache after a build); returns what was stored.

        Under the lock, when another build stored a cache meanwhile, `merge(stored)` (if given)
        makes the bytes written: this build's timings together with the stored ones, so that
        concurrent builds of different engines lose none of each other's measurements.
        """
        if not data:
            raise ValueError("an empty timing cache")
        with exclusive(self.paths.lock, timeout_s=timeout_s):
            stored = self._read()
            if merge is not None and stored is not None and stored != data:
                data = merge(stored)
                if not data:
                    raise ValueError("merging the timing caches gave an empty one")
            atomic_write_bytes(self.paths.cache, data)
            meta = {
                "key": self.key.digest(),
                "fields": self.key.fields(),
                "cache_bytes": len(data),
                "cache_sha256": hashlib.sha256(data).hexdigest(),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            atomic_write_text(self.paths.meta, json.dumps(meta, indent=2, sort_keys=True))
        return data
