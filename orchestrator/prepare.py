"""Preparation steps that run in the backend image before any LoadGen test: the synthetic assets
and the preprocessed dataset. Each is cached on the host and reused when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from backends.common.layout import BAD_IMAGES_EXIT, cache_is_complete, cache_key, sample_file
from backends.common.resnet50 import SAMPLE_ELEMENTS
from orchestrator.assets import ResolvedAssets, SyntheticRequest, skip
from orchestrator.assets.dataset import damaged, decode_failures, parse_bad_image
from orchestrator.catalog import BackendDef
from orchestrator.console import Terminal
from orchestrator.containers import Identity, prepare_spec, synthetic_spec
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import run_to_completion
from orchestrator.errors import ContainerFailed
from orchestrator.hostinfo import MIN_FREE_DISK_GIB, check_disk
from orchestrator.paths import cache_dir

PREPARE_TIMEOUT_S = 3600
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
) -> None:
    """Generate the synthetic model and dataset in the backend image, once per (images, seed)."""
    if request.complete:
        return
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
                spec,
                timeout_s=SYNTHETIC_TIMEOUT_S,
                log_file=request.root.parent / f"{request.root.name}.log",
                on_line=line_printer(terminal, "synthetic", advance),
                what="synthetic asset generation",
            )
    finally:
        identity.reclaim(request.root)
    terminal.success(
        f"synthetic assets in {request.root} ({request.distinct_labels()} distinct labels)"
    )


def ensure_preprocessed(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    assets: ResolvedAssets,
    identity: Identity,
    terminal: Terminal,
    *,
    skip_bad: bool = False,
) -> tuple[ResolvedAssets, Path]:
    """Preprocess the dataset once per (format, recipe, val_map, count); later runs reuse it.

    Images the header check let through but OpenCV cannot decode end in the same summary as the
    up-front problems (DamagedDataset, exit 5). With `skip_bad` they are left out instead: the run
    keeps the images already preprocessed (linked into the cache of the shorter list, so nothing
    is decoded twice) and uses that many fewer. Returns the assets the run uses and the cache.
    """
    failures: list[tuple[str, str]] = []
    try:
        cache = _preprocess(engine, backend, image, run_id, assets, identity, terminal, failures)
        return assets, cache
    except ContainerFailed as exc:
        if exc.exit_status != BAD_IMAGES_EXIT or not failures:
            raise
    problems = tuple(decode_failures(failures, assets.images))
    if not skip_bad:
        raise damaged(assets.dataset, problems, f"the {assets.count} preprocessed images")
    bad = {relpath for relpath, _ in failures}
    if len(bad) >= assets.count:
        hint = "no image of the run could be decoded: there is nothing to run on"
        raise damaged(assets.dataset, problems, f"the {assets.count} preprocessed images", hint)
    kept = tuple(i for i in assets.images if i.entry.relpath not in bad)
    reduced = skip(assets, kept, problems, assets.count - len(bad), terminal)
    _link_samples(_cache_of(assets, backend), assets, _cache_of(reduced, backend), reduced)
    return reduced, _preprocess(engine, backend, image, run_id, reduced, identity, terminal, [])


def _cache_of(assets: ResolvedAssets, backend: BackendDef) -> Path:
    key = cache_key(assets.dataset, assets.count, backend.input_format, assets.val_map)
    return cache_dir() / "preprocessed" / key


def _link_samples(
    source: Path, source_assets: ResolvedAssets, target: Path, target_assets: ResolvedAssets
) -> None:
    """Seed `target` with the samples `source` already holds for the same images."""
    index_of = {
        image.entry.relpath: index
        for index, image in enumerate(source_assets.images[: source_assets.count])
    }
    target.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(target_assets.images[: target_assets.count]):
        old = index_of.get(image.entry.relpath)
        if old is None or not sample_file(source, old).is_file():
            continue
        new = sample_file(target, index)
        if new.exists():
            continue
        try:
            os.link(sample_file(source, old), new)
        except OSError:
            shutil.copyfile(sample_file(source, old), new)


def _preprocess(
    engine: DockerEngine,
    backend: BackendDef,
    image: str,
    run_id: str,
    assets: ResolvedAssets,
    identity: Identity,
    terminal: Terminal,
    failures: list[tuple[str, str]],
) -> Path:
    """One prepare container over `assets`; images it cannot decode are added to `failures`."""
    fmt = backend.input_format
    cache = _cache_of(assets, backend)
    if cache_is_complete(cache, assets.count):
        terminal.success(
            f"preprocessed cache {cache.name} is complete ({assets.count} images, {fmt})"
        )
        return cache
    # fp32: ~0.6 MB per image (50 000 images: ~30 GB); int8: 150 KB per image.
    need = assets.count * (SAMPLE_ELEMENTS * BYTES_PER_ELEMENT[fmt] + 128) / (1 << 30)
    check_disk(cache.parent, need_gib=need + MIN_FREE_DISK_GIB)
    cache.mkdir(parents=True, exist_ok=True)
    identity.lend(cache)
    user = identity.container_user
    spec = prepare_spec(
        backend, image, run_id, assets.dataset, cache, assets.count, user, fmt, assets.val_map
    )
    try:
        with terminal.progress(
            f"preprocessing {assets.count} images ({fmt}, in the SUT image)", assets.count
        ) as advance:
            printer = line_printer(terminal, "prepare", advance)

            def on_line(line: str) -> None:
                failure = parse_bad_image(line)
                if failure is None:
                    printer(line)
                else:
                    failures.append(failure)

            run_to_completion(
                engine,
                spec,
                timeout_s=PREPARE_TIMEOUT_S,
                log_file=cache / "prepare.log",
                on_line=on_line,
                what="preprocessing",
            )
    finally:
        identity.reclaim(cache)
    return cache
