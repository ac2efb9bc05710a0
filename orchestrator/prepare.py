"""Preparation steps that run in the backend image before any LoadGen test: the synthetic assets
and the preprocessed dataset. Each is cached on the host, filled under its per-key lock (another
mlorch filling the same entry is waited for) and reused when complete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from backends.common.layout import cache_is_complete, cache_key
from backends.common.resnet50 import SAMPLE_ELEMENTS
from orchestrator.assets import ResolvedAssets, SyntheticRequest
from orchestrator.cachelock import cache_lock
from orchestrator.catalog import BackendDef
from orchestrator.console import Terminal
from orchestrator.containers import Identity, prepare_spec, synthetic_spec
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import run_to_completion
from orchestrator.hostinfo import MIN_FREE_DISK_GIB, check_disk
from orchestrator.paths import cache_dir

PREPARE_TIMEOUT_S = 3600  # defaults; `up` passes its --timeout
SYNTHETIC_TIMEOUT_S = 1800
PROGRESS_PREFIX = "mlorch-progress "
BYTES_PER_ELEMENT = {"fp32": 4, "int8": 1}


def line_printer(
    terminal: Terminal, prefix: str, progress: Callable[[int], None] | None = None
) -> Callable[[str], None]:
    """Container lines to the terminal; `mlorch-progress DONE TODO` / `+N` lines to a bar."""
    last = [0]

    def on_line(line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            token = line.split()[1]
            step = int(token[1:]) if token.startswith("+") else int(token) - last[0]
            last[0] += step
            if progress:
                progress(step)
            return
        terminal.log_line(prefix, line)

    return on_line


def ensure_synthetic(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    request: SyntheticRequest,
    identity: Identity,
    terminal: Terminal,
    *,
    timeout_s: float = SYNTHETIC_TIMEOUT_S,
    mem_limit: int | None = None,
) -> None:
    """Generate the synthetic model and dataset in the backend image, once per (images, seed)."""
    if request.complete:
        return
    what = f"generating the synthetic assets ({request.images} images, seed {request.seed})"
    with cache_lock("synthetic", request.root.name, what, terminal, timeout_s):
        if not request.complete:  # another mlorch may have made them while we waited
            _generate_synthetic(
                engine, backend, image, run_id, request, identity, terminal, timeout_s, mem_limit
            )
    terminal.success(
        f"synthetic assets in {request.root} ({request.distinct_labels()} distinct labels)"
    )


def _generate_synthetic(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    request: SyntheticRequest,
    identity: Identity,
    terminal: Terminal,
    timeout_s: float,
    mem_limit: int | None,
) -> None:
    request.root.mkdir(parents=True, exist_ok=True)
    identity.lend(request.root)
    spec = synthetic_spec(
        backend, image, run_id, request.root, request.images, request.seed, identity.container_user
    )
    try:
        with terminal.progress(
            f"generating synthetic assets ({request.images} images, seed {request.seed})",
            request.images,
        ) as advance:
            run_to_completion(
                engine,
                replace(spec, mem_limit=mem_limit),
                timeout_s=timeout_s,
                log_file=request.root.parent / f"{request.root.name}.log",
                on_line=line_printer(terminal, "synthetic", advance),
                what="synthetic asset generation",
            )
    finally:
        identity.reclaim(request.root)


def ensure_preprocessed(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    assets: ResolvedAssets,
    identity: Identity,
    terminal: Terminal,
    *,
    timeout_s: float = PREPARE_TIMEOUT_S,
    mem_limit: int | None = None,
) -> Path:
    """Preprocess the dataset once per (format, recipe, val_map, count); later runs reuse it."""
    fmt = backend.input_format
    cache = cache_dir() / "preprocessed" / cache_key(assets.dataset, assets.count, fmt)
    what = f"preprocessing {assets.count} images ({fmt}) into {cache.name}"
    if not cache_is_complete(cache, assets.count):
        with cache_lock("preprocessed", cache.name, what, terminal, timeout_s):
            if not cache_is_complete(cache, assets.count):
                _preprocess(
                    engine, backend, image, run_id, assets, cache, identity, terminal,
                    timeout_s, mem_limit,
                )  # fmt: skip
                return cache
    terminal.success(f"preprocessed cache {cache.name} is complete ({assets.count} images, {fmt})")
    return cache


def _preprocess(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    assets: ResolvedAssets,
    cache: Path,
    identity: Identity,
    terminal: Terminal,
    timeout_s: float,
    mem_limit: int | None,
) -> None:
    fmt = backend.input_format
    # fp32: ~0.6 MB per image (50 000 images: ~30 GB); int8: 150 KB per image.
    need = assets.count * (SAMPLE_ELEMENTS * BYTES_PER_ELEMENT[fmt] + 128) / (1 << 30)
    check_disk(cache.parent, need_gib=need + MIN_FREE_DISK_GIB)
    cache.mkdir(parents=True, exist_ok=True)
    identity.lend(cache)
    spec = prepare_spec(
        backend, image, run_id, assets.dataset, cache, assets.count, identity.container_user, fmt
    )
    try:
        with terminal.progress(
            f"preprocessing {assets.count} images ({fmt}, in the SUT image)", assets.count
        ) as advance:
            run_to_completion(
                engine,
                replace(spec, mem_limit=mem_limit),
                timeout_s=timeout_s,
                log_file=cache / "prepare.log",
                on_line=line_printer(terminal, "prepare", advance),
                what="preprocessing",
            )
    finally:
        identity.reclaim(cache)
