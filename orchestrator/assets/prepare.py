"""Preparation steps that run in the backend image before any LoadGen test: the synthetic assets
and the preprocessed dataset. Each is cached on the host, filled under its per-key lock (another
mlorch filling the same entry is waited for) and reused when complete."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contract.accuracy_gate import BATCH_CHECK_AGREEMENT, GateResult, Verdict, judge_record
from contract.dell_trt import recipe
from contract.dell_trt.artifact import guard_files
from contract.digest import file_sha256
from contract.layout import (
    cache_is_complete,
    cache_key,
    sample_file,
    val_map_digest,
)
from contract.protocol import BAD_IMAGES_EXIT, GUARD_PREFIX, read_json_line, read_progress
from contract.resnet50 import (
    CALIBRATION_LIST_SHA256,
    SAMPLE_ELEMENTS,
)
from orchestrator.assets import ResolvedAssets, SyntheticRequest, skip
from orchestrator.assets.dataset import damaged, decode_failures, parse_bad_image
from orchestrator.cachelock import cache_lock
from orchestrator.config import Device, RunSpec
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import ContainerSpec, run_to_completion
from orchestrator.errors import AccuracyGuardFailed, ConfigError, ContainerFailed
from orchestrator.host.facts import check_disk, min_free_disk_gib
from orchestrator.images.catalog import BackendDef
from orchestrator.images.containers import (
    Identity,
    RecipeInputs,
    engines_spec,
    model_spec,
    prepare_spec,
    synthetic_spec,
)
from orchestrator.paths import cache_dir

PREPARE_TIMEOUT_S = 3600  # defaults; `up` passes its --timeout
SYNTHETIC_TIMEOUT_S = 1800
BYTES_PER_ELEMENT = {"fp32": 4, "int8": 1}


def line_printer(
    terminal: Terminal, prefix: str, progress: Callable[[int], None] | None = None
) -> Callable[[str], None]:
    """Container lines to the terminal; `mlorch-progress DONE TODO` / `+N` lines to a bar."""
    last = [0]

    def on_line(line: str) -> None:
        step = read_progress(line, last[0])
        if step is not None:
            last[0] += step
            if progress:
                progress(step)
            return
        terminal.log_line(prefix, line)

    return on_line


@dataclass(frozen=True)
class Preparer:
    """What every preparation container of a run shares: the engine, the backend and its image,
    the run id (container labels), the host identity the containers run as, the terminal, and
    the limits of one step (`up` passes its --timeout and --memory)."""

    engine: DockerEngine
    backend: BackendDef
    image: str
    run_id: str
    identity: Identity
    terminal: Terminal
    timeout_s: float = PREPARE_TIMEOUT_S
    mem_limit: int | None = None

    def run(
        self,
        spec: ContainerSpec,
        *,
        log_file: Path,
        on_line: Callable[[str], None],
        what: str,
        timeout_s: float | None = None,
    ) -> None:
        """One preparation container to completion, under this run's memory limit and within
        `timeout_s` (default: the step limit)."""
        run_to_completion(
            self.engine, replace(spec, mem_limit=self.mem_limit),
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            log_file=log_file, on_line=on_line, what=what,
        )  # fmt: skip


def ensure_synthetic(prep: Preparer, request: SyntheticRequest) -> None:
    """Generate the synthetic model and dataset in the backend image, once per (images, seed)."""
    if request.complete:
        return
    terminal = prep.terminal
    what = f"generating the synthetic assets ({request.images} images, seed {request.seed})"
    with cache_lock("synthetic", request.root.name, what, terminal, prep.timeout_s):
        if not request.complete:  # another mlorch may have made them while we waited
            _generate_synthetic(prep, request)
    terminal.success(
        f"synthetic assets in {request.root} ({request.distinct_labels()} distinct labels)"
    )


def _generate_synthetic(prep: Preparer, request: SyntheticRequest) -> None:
    request.root.mkdir(parents=True, exist_ok=True)
    prep.identity.lend(request.root)
    spec = synthetic_spec(
        prep.backend, prep.image, prep.run_id, request.root, request.images, request.seed,
        prep.identity.container_user,
    )  # fmt: skip
    try:
        with prep.terminal.progress(
            f"generating synthetic assets ({request.images} images, seed {request.seed})",
            request.images,
        ) as advance:
            prep.run(
                spec,
                log_file=request.root.parent / f"{request.root.name}.log",
                on_line=line_printer(prep.terminal, "synthetic", advance),
                what="synthetic asset generation",
            )
    finally:
        prep.identity.reclaim(request.root)


def ensure_preprocessed(
    prep: Preparer, assets: ResolvedAssets, *, skip_bad: bool = False
) -> tuple[ResolvedAssets, Path]:
    """Preprocess the dataset once per (format, recipe, val_map, count); later runs reuse it.

    Images the header check let through but OpenCV cannot decode end in the same summary as the
    up-front problems (DamagedDataset, exit 5). With `skip_bad` they are left out instead: the run
    keeps the images already preprocessed (linked into the cache of the shorter list, so nothing
    is decoded twice) and uses that many fewer. Returns the assets the run uses and the cache.
    """
    failures: list[tuple[str, str]] = []
    try:
        return assets, _preprocessed(prep, assets, failures)
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
    reduced = skip(assets, kept, problems, assets.count - len(bad), prep.terminal)
    backend = prep.backend
    _link_samples(_cache_of(assets, backend), assets, _cache_of(reduced, backend), reduced)
    return reduced, _preprocessed(prep, reduced, [])


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


def _preprocessed(prep: Preparer, assets: ResolvedAssets, failures: list[tuple[str, str]]) -> Path:
    """The cache of `assets`, made under its key's lock when it is not complete."""
    fmt, terminal = prep.backend.input_format, prep.terminal
    cache = _cache_of(assets, prep.backend)
    what = f"preprocessing {assets.count} images ({fmt}) into {cache.name}"
    if not cache_is_complete(cache, assets.count):
        with cache_lock("preprocessed", cache.name, what, terminal, prep.timeout_s):
            if not cache_is_complete(cache, assets.count):
                _preprocess(prep, assets, cache, failures)
                return cache
    terminal.success(f"preprocessed cache {cache.name} is complete ({assets.count} images, {fmt})")
    return cache


def _preprocess(
    prep: Preparer, assets: ResolvedAssets, cache: Path, failures: list[tuple[str, str]]
) -> None:
    """One prepare container over `assets`; images it cannot decode are added to `failures`."""
    fmt, identity = prep.backend.input_format, prep.identity
    # fp32: ~0.6 MB per image (50 000 images: ~30 GB); int8: 150 KB per image.
    need = assets.count * (SAMPLE_ELEMENTS * BYTES_PER_ELEMENT[fmt] + 128) / (1 << 30)
    check_disk(cache.parent, need_gib=need + min_free_disk_gib())
    cache.mkdir(parents=True, exist_ok=True)
    identity.lend(cache)
    spec = prepare_spec(
        prep.backend, prep.image, prep.run_id, assets.dataset, cache, assets.count,
        identity.container_user, fmt, assets.val_map,
    )  # fmt: skip
    try:
        with prep.terminal.progress(
            f"preprocessing {assets.count} images ({fmt}, in the SUT image)", assets.count
        ) as advance:
            printer = line_printer(prep.terminal, "prepare", advance)

            def on_line(line: str) -> None:
                failure = parse_bad_image(line)
                if failure is None:
                    printer(line)
                else:
                    failures.append(failure)

            prep.run(spec, log_file=cache / "prepare.log", on_line=on_line, what="preprocessing")
    finally:
        identity.reclaim(cache)


# --- dell-trt: the prepared model (one calibration, two encodings) and the TensorRT engines ---

MODEL_TIMEOUT_S = 3 * 3600
ENGINES_TIMEOUT_S = 3 * 3600


@dataclass(frozen=True)
class PreparedRecipe:
    inputs: RecipeInputs
    artifact_key: str
    guards: list[dict[str, Any]]  # the CPU model's, then one per TensorRT engine
    fp32_labels: dict[int, int]  # FP32 top-1 of the guard samples (qsl index → label)
    device: Device
    artifact: dict[str, Any]  # the prepared model's artifact.json: calibration, encodings, files

    @property
    def engine(self) -> str:
        return "tensorrt" if self.device is Device.CUDA else "onnxruntime-cpu (twin)"

    @property
    def encoding(self) -> str:
        return recipe.TRT_ENCODING if self.device is Device.CUDA else recipe.CPU_ENCODING

    def record(self) -> dict[str, Any]:
        """For the manifest: what ran, and how its model was made (the cache can be cleared)."""
        encoding = self.encoding.lower()
        encodings = self.artifact.get("encodings") or {}
        files = self.artifact.get("files") or {}
        described = dict(encodings.get(encoding) or {})
        return {
            "engine": self.engine,
            "encoding": self.encoding,
            "model": {
                "source_sha256": self.artifact.get("model_sha256"),
                "calibration": self.artifact.get("calibration"),
                "method": self.artifact.get("method"),
                "calibration_choice": self.artifact.get("calibration_choice"),
                "rewrite_version": self.artifact.get("rewrite_version"),
                "quantizer_version": self.artifact.get("quantizer_version"),
                "encoding": described,
                "sha256": files.get(str(described.get("file", ""))),
            },
            "artifact_key": self.artifact_key,
            "artifacts": str(self.inputs.artifacts),
            "engines": str(self.inputs.engines) if self.inputs.engines else None,
            "guards": self.guards,
        }


def calibration_id(spec: RunSpec, assets: ResolvedAssets) -> tuple[str, Path | None]:
    """What the calibration set is (its images' digest, part of the prepared model's key) and
    the list to mount: the official list on real ImageNet, a fixed subset of synthetic data."""
    from contract.dell_trt.artifact import (
        CalibrationSetError,
        official_calibration_set,
        synthetic_calibration_set,
    )

    if assets.synthetic:
        return synthetic_calibration_set(assets.dataset).sha256, None
    assert spec.calibration_list is not None  # check_asset_args refused the run without it
    path = spec.calibration_list.resolve()
    try:
        return official_calibration_set(assets.dataset, path).sha256, path
    except CalibrationSetError as exc:
        raise ConfigError(
            str(exc),
            key="calibration_list",
            hint=f"the official list has sha256 {CALIBRATION_LIST_SHA256}; its 500 images must "
            "be in the dataset's val_map.txt",
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _judged(guard: dict[str, Any]) -> GateResult:
    """The rule's verdict on a guard record, judged here from its counts (`contract`'s rule)."""
    return judge_record(guard["gate"])


def _check_guard(
    guard: dict[str, Any], minimum: float | None, what: str, terminal: Terminal
) -> None:
    """Refuse a model or engine that clearly misses the accuracy rule (or the agreement asked
    for); warn when the guard images cannot tell."""
    gate = _judged(guard)
    hint = (
        "the quantized model is not trustworthy here: check the calibration set (and its "
        "method); on cuda try --set use_graphs=false or --set builder_optimization_level=0 "
        "(other TensorRT tactics)"
    )
    if gate.verdict is Verdict.FAIL:
        raise AccuracyGuardFailed(f"{what} misses the accuracy rule: {gate.summary()}", hint=hint)
    agreement = gate.counts.agreement
    if minimum is not None and agreement < minimum:
        raise AccuracyGuardFailed(
            f"{what} agrees with FP32 on {100 * agreement:.2f} % of {gate.counts.n} images "
            f"(--min-agreement asks {100 * minimum:.2f} %)",
            hint=hint + "; or lower --min-agreement knowingly",
        )
    batch = guard.get("batch_check")
    if isinstance(batch, dict) and batch.get("samples"):
        agreed = int(batch["agree"]) / int(batch["samples"])
        if agreed < BATCH_CHECK_AGREEMENT:
            raise AccuracyGuardFailed(
                f"{what} answers differently at batch sizes {batch['sizes']}: "
                f"{100 * agreed:.2f} % of {batch['samples']} labels match its full batches",
                hint=hint,
            )
    if gate.verdict is Verdict.UNCERTAIN:
        terminal.warn(
            f"{what}: the {gate.counts.n} guard images cannot tell whether it keeps "
            f"{100 * gate.rule_ratio:.0f} % of FP32's accuracy ({gate.summary()}); the accuracy "
            "run decides (more images: --guard-samples)"
        )


def _has_int8_check(manifest: Path) -> bool:
    """A complete prepared model that also carries the static INT8 check (older ones get it
    from the model step, which keeps their models)."""
    try:
        return "int8_check" in json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False


def _check_int8(artifact: dict[str, Any], device: Device, terminal: Terminal) -> None:
    """TensorRT's model must run every Conv/Gemm in INT8 (a layer left float passes the
    accuracy guard and costs a multiple in speed): refused before any GPU on cuda, named on cpu."""
    report = (artifact.get("int8_check") or {}).get(recipe.TRT_ENCODING)
    if not isinstance(report, dict):
        terminal.info(f"the {recipe.TRT_ENCODING} model predates the static INT8 check")
        return
    if report.get("ok"):
        terminal.info(f"{recipe.TRT_ENCODING} model: {report.get('summary')}")
        return
    names = ", ".join(f"{f['op_type']} {f['node']}" for f in report.get("findings", [])[:5])
    message = f"the {recipe.TRT_ENCODING} model would not run in INT8 on TensorRT: {names}"
    if device is Device.CUDA:
        raise AccuracyGuardFailed(
            message,
            hint="these layers would run in FP32/FP16: check the quantizer's Q/DQ placement",
        )
    terminal.warn(message + " (the CPU twin runs the u8s8 model)")


def _prepare_model(
    prep: Preparer, spec: RunSpec, assets: ResolvedAssets, cal_id: str, cal_list: Path | None,
    samples: int, tag: str, method: str,
) -> tuple[str, Path]:  # fmt: skip
    """(key, folder) of the model prepared with one calibration method, made now unless the
    cache holds it complete (models, static INT8 check, guards on this sample set)."""
    key = recipe.artifact_key(file_sha256(assets.model.path), cal_id, method)
    artifacts = cache_dir() / "models" / key
    guard_file, _ = guard_files(artifacts, tag)
    identity, terminal = prep.identity, prep.terminal
    what = f"preparing the INT8 model {key}"
    with cache_lock("models", key, what, terminal, MODEL_TIMEOUT_S):
        if guard_file.is_file() and _has_int8_check(artifacts / recipe.ARTIFACT_MANIFEST):
            terminal.success(
                f"prepared model {key} ({method}) is complete (guarded on {samples} images)"
            )
            return key, artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        identity.lend(artifacts)
        container = model_spec(
            prep.backend, prep.image, prep.run_id, model=assets.model.path,
            dataset=assets.dataset, count=samples, artifacts=artifacts,
            calibration_list=cal_list, guard_samples=samples, min_agreement=spec.min_agreement,
            user=identity.container_user, val_map=assets.val_map, method=method,
        )  # fmt: skip
        try:
            with terminal.status(
                f"preparing the INT8 model {key} (graph rewrite, {method} calibration, Q/DQ, "
                f"accuracy guards on {samples} images)"
            ):
                prep.run(
                    container, timeout_s=MODEL_TIMEOUT_S,
                    log_file=artifacts / "prepare-model.log",
                    on_line=line_printer(terminal, "model"), what="model preparation",
                )  # fmt: skip
        finally:
            identity.reclaim(artifacts)
    return key, artifacts


def _choose_calibration(
    candidates: dict[str, tuple[str, Path]], tag: str, enforced: str, asked: str
) -> tuple[str, dict[str, Any]]:
    """The method whose `enforced` model scores best on the guard images: accuracy ratio, then
    agreement with FP32, then the published recipes' preference (`CALIBRATION_CHOICES` order)."""
    scores: dict[str, dict[str, Any]] = {}
    for method, (key, artifacts) in candidates.items():
        guard = _read_json(guard_files(artifacts, tag)[0])["encodings"][enforced]
        gate = _judged(guard)
        scores[method] = {
            "key": key,
            "ratio": gate.ratio,
            "agreement": gate.counts.agreement,
            "verdict": str(gate.verdict),
        }
    order = list(candidates)

    def rank(method: str) -> tuple[float, float, int]:
        score = scores[method]
        ratio = score["ratio"] if score["ratio"] is not None else -1.0
        return (round(ratio, 6), round(score["agreement"], 6), -order.index(method))

    chosen = max(candidates, key=rank)
    shown = ", ".join(
        f"{m} {scores[m]['ratio'] or 0:.4f}/{100 * scores[m]['agreement']:.1f} %" for m in order
    )
    why = (
        f"{chosen} (asked: {asked}); {enforced} accuracy ratio / agreement on the guard images: "
        f"{shown}"
    )
    return chosen, {"asked": asked, "chosen": chosen, "candidates": scores, "why": why}


def _model_guards(
    recorded: dict[str, Any], enforced: str, min_agreement: float | None, terminal: Terminal
) -> list[dict[str, Any]]:
    """Both Q/DQ models' guards, the enforced one first and held to the rule."""
    guards = []
    for name in (enforced, *sorted(set(recorded) - {enforced})):
        guard = {"encoding": name, **recorded[name], "enforced": name == enforced}
        terminal.info(f"guard of the {name} model{'' if name == enforced else ' (not used here)'}: "
                      f"{_judged(guard).summary()}")  # fmt: skip
        if name == enforced:
            _check_guard(guard, min_agreement, f"the {name} model", terminal)
        guards.append(guard)
    return guards


def _build_engines(
    prep: Preparer,
    spec: RunSpec,
    artifacts: Path,
    settings_file: Path,
    cache: Path,
    engines_dir: Path,
    samples: int,
    tag: str,
    gpu_access: str | None,
) -> list[dict[str, Any]]:
    """The engines step's container (cuda): builds what the cache lacks; one guard per engine."""
    identity, terminal = prep.identity, prep.terminal
    engines_dir.mkdir(parents=True, exist_ok=True)
    identity.lend(engines_dir)
    found: list[dict[str, Any]] = []

    def on_line(line: str) -> None:
        guard = read_json_line(GUARD_PREFIX, line)  # one per engine the step built
        if guard is not None:
            found.append(guard)
        else:
            terminal.log_line("engines", line)

    container = engines_spec(
        prep.backend, prep.image, prep.run_id, artifacts=artifacts, settings=settings_file,
        cache=cache, engines=engines_dir, scenarios=spec.scenarios, count=samples,
        guard_tag=tag, min_agreement=spec.min_agreement, user=identity.container_user,
        gpu_access=gpu_access or "hook",
    )  # fmt: skip
    try:
        with terminal.status("TensorRT engines (built once per GPU, TensorRT and settings)"):
            prep.run(
                container, timeout_s=ENGINES_TIMEOUT_S,
                log_file=settings_file.parent / "engines.log", on_line=on_line,
                what="engine build",
            )  # fmt: skip
    finally:
        identity.reclaim(engines_dir)
    return found


def ensure_recipe(
    prep: Preparer,
    spec: RunSpec,
    assets: ResolvedAssets,
    cache: Path,
    settings_file: Path,
    gpu_access: str | None,
) -> PreparedRecipe:
    """The model prepared once per key (rewrite, calibration, Q/DQ encodings) and guarded
    against FP32; on cuda the TensorRT engines too, built once per key and guarded.

    `spec.calibration` "auto" prepares the model with each calibration method published INT8
    ResNet50 recipes use (each cached under its own key) and keeps the one whose model this
    device runs scores best on the guard images; the choice and every candidate's score are
    recorded."""
    cal_id, cal_list = calibration_id(spec, assets)
    samples = min(spec.guard_samples, assets.count)
    tag = recipe.guard_tag(val_map_digest(assets.dataset, assets.val_map), samples)
    enforced = recipe.TRT_ENCODING if spec.device is Device.CUDA else recipe.CPU_ENCODING
    asked = str(spec.calibration)
    methods = recipe.CALIBRATION_CHOICES if asked == "auto" else (asked,)
    candidates = {
        method: _prepare_model(prep, spec, assets, cal_id, cal_list, samples, tag, method)
        for method in methods
    }
    method, choice = _choose_calibration(candidates, tag, enforced, asked)
    if len(candidates) > 1:
        prep.terminal.info(f"calibration: {choice['why']}")
    key, artifacts = candidates[method]
    guard_file, labels_file = guard_files(artifacts, tag)
    terminal = prep.terminal
    recorded = _read_json(guard_file)["encodings"]
    # Both Q/DQ models were guarded on the CPU; the one this device runs is held to the rule
    # here, before any GPU (TensorRT's s8s8 on cuda, the twin's u8s8 on cpu), the other recorded.
    artifact = {**_read_json(artifacts / recipe.ARTIFACT_MANIFEST), "calibration_choice": choice}
    _check_int8(artifact, spec.device, terminal)
    guards = _model_guards(recorded, enforced, spec.min_agreement, terminal)
    labels = _read_json(labels_file)
    fp32 = {
        int(i): int(label) for i, label in zip(labels["indices"], labels["labels"], strict=True)
    }
    engines_dir = None
    if spec.device is Device.CUDA:
        engines_dir = cache_dir() / "engines"
        for engine_guard in _build_engines(
            prep, spec, artifacts, settings_file, cache, engines_dir, samples, tag, gpu_access
        ):
            guards.append(engine_guard)
            what = f"engine {engine_guard['engine']}"
            _check_guard(engine_guard, spec.min_agreement, what, terminal)
    return PreparedRecipe(
        RecipeInputs(artifacts, settings_file, engines_dir), key, guards, fp32, spec.device,
        artifact,
    )  # fmt: skip
