"""Model and dataset resolution: real assets when given, the synthetic stand-in otherwise.

Real assets are validated on the host before anything is built: the model's signature, every
val_map line and every listed image's header (orchestrator.assets.dataset). A damaged dataset is
refused with one summary of all its problems, or with `--skip-bad` run without them (then the run
is not submission-valid). The synthetic pair is generated inside the backend image (the host runs
no ML code), once per (images, seed), and then validated like real assets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from contract.dataset_check import ListedImage, Problem, summary_counts
from contract.layout import (
    SYNTHETIC_DATASET,
    SYNTHETIC_MARKER,
    SYNTHETIC_MODEL,
    synthetic_root,
)
from contract.resnet50 import CALIBRATION_LIST, CALIBRATION_LIST_SHA256
from orchestrator.assets.dataset import (
    damaged,
    inspect_dataset,
    note_line,
    write_filtered_val_map,
)
from orchestrator.assets.model import ModelInfo, validate_model
from orchestrator.config import RunSpec
from orchestrator.console import Terminal
from orchestrator.errors import AssetError, ConfigError
from orchestrator.paths import cache_dir


@dataclass(frozen=True)
class ResolvedAssets:
    model: ModelInfo
    dataset: Path
    available: int  # usable images: listed in val_map.txt and not skipped
    count: int  # images this run uses: the first `count` usable ones
    synthetic: bool
    images: tuple[ListedImage, ...] = ()  # the usable images with their val_map line numbers
    val_map: Path | None = None  # the filtered list of a --skip-bad run; None: the dataset's own
    skipped: tuple[Problem, ...] = ()  # lines left out by --skip-bad (then not submission-valid)


@dataclass(frozen=True)
class SyntheticRequest:
    """Synthetic assets a run needs; generated in a container when `root` is not complete."""

    root: Path
    images: int
    seed: int

    @property
    def complete(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).is_file()

    @property
    def model(self) -> Path:
        return self.root / SYNTHETIC_MODEL

    @property
    def dataset(self) -> Path:
        return self.root / SYNTHETIC_DATASET

    def distinct_labels(self) -> int:
        return int(json.loads((self.root / SYNTHETIC_MARKER).read_text())["distinct_labels"])


def synthetic_request(images: int, seed: int) -> SyntheticRequest:
    return SyntheticRequest(synthetic_root(cache_dir(), images, seed), images, seed)


def check_asset_args(spec: RunSpec) -> None:
    """The cheap checks of the asset arguments, made before a run folder or image exists:
    --model and --dataset given together, and each path there (the contents are checked later,
    by `plan_assets`)."""
    if (spec.model is None) != (spec.dataset is None):
        raise ConfigError(
            "--model and --dataset go together",
            hint="pass both for real assets, or neither for the synthetic stand-in",
        )
    if spec.model is not None and not spec.model.is_file():
        raise AssetError(
            f"model not found: {spec.model}",
            hint="pass --model PATH to resnet50_v1.onnx, or run `mlorch assets model`",
        )
    if spec.dataset is not None and not spec.dataset.is_dir():
        raise AssetError(
            f"dataset folder not found: {spec.dataset}",
            hint="pass --dataset DIR: an ImageNet validation folder with val_map.txt",
        )
    if spec.harness is not None and spec.model is not None and spec.calibration_list is None:
        raise ConfigError(  # dell-trt calibrates on it: known now, not after the image build
            "dell-trt on a real dataset needs the official calibration list",
            key="calibration_list",
            hint=f"pass --calibration-list {CALIBRATION_LIST} (MLCommons inference repository, "
            f"calibration/ImageNet/; sha256 {CALIBRATION_LIST_SHA256[:12]}…)",
        )
    if spec.calibration_list is not None and spec.synthetic:
        raise ConfigError(  # recorded but unused otherwise
            "--calibration-list applies to a real dataset; a synthetic run calibrates on a "
            "fixed subset of the synthetic images",
            key="calibration_list",
            hint="drop it, or pass --model and --dataset",
        )
    if spec.calibration_list is not None and not spec.calibration_list.is_file():
        raise AssetError(
            f"calibration list not found: {spec.calibration_list}",
            hint="pass --calibration-list FILE (cal_image_list_option_1.txt), or leave it out",
        )


def plan_assets(spec: RunSpec, terminal: Terminal) -> ResolvedAssets | SyntheticRequest:
    """Validate real assets now; for the synthetic stand-in, say what must exist."""
    check_asset_args(spec)
    if spec.synthetic:
        terminal.warn(
            "no --model/--dataset given: using SYNTHETIC assets (random-weight ResNet50, "
            "generated JPEGs). Accuracy is a plumbing check, not a quality figure."
        )
        return synthetic_request(spec.synthetic_images, spec.synthetic_seed)
    assert spec.model is not None
    assert spec.dataset is not None
    return _resolve(spec, spec.model, spec.dataset, synthetic=False, terminal=terminal)


def resolve_synthetic(
    spec: RunSpec, request: SyntheticRequest, terminal: Terminal
) -> ResolvedAssets:
    """The generated synthetic pair, validated like real assets."""
    if not request.complete:
        raise AssetError(f"synthetic assets in {request.root} are incomplete")
    return _resolve(spec, request.model, request.dataset, synthetic=True, terminal=terminal)


def _resolve(
    spec: RunSpec, model_path: Path, dataset: Path, *, synthetic: bool, terminal: Terminal
) -> ResolvedAssets:
    model = validate_model(model_path.resolve())
    if not synthetic and not model.official:
        terminal.warn(
            f"model md5 {model.md5} is not an official resnet50_v1.onnx: open division only"
        )
    dataset = dataset.resolve()
    report = inspect_dataset(dataset)
    note = note_line(report)
    if note:
        terminal.warn(note)
    problems = report.problems
    if problems and not spec.skip_bad:
        raise damaged(dataset, problems, f"{report.lines} listed images")
    if not report.images:
        raise damaged(
            dataset,
            problems,
            f"{report.lines} listed images",
            hint="every listed image is unusable: there is nothing to run on",
        )
    available = len(report.images)
    count = run_count(spec, available, dataset)
    assets = ResolvedAssets(
        model=model,
        dataset=dataset,
        available=available,
        count=count,
        synthetic=synthetic,
        images=report.images,
    )
    return skip(assets, report.images, problems, count, terminal) if problems else assets


def run_count(spec: RunSpec, available: int, dataset: Path) -> int:
    """How many of the `available` images a run uses: --count, else all (capped by --quick)."""
    count = spec.dataset_count or available
    if spec.quick_run and spec.dataset_count is None:
        count = min(available, spec.quick.max_dataset_count)
    if count > available:
        raise ConfigError(
            f"--count {count} exceeds the {available} usable images of {dataset}",
            key="dataset_count",
        )
    return count


def planned_count(spec: RunSpec, planned: ResolvedAssets | SyntheticRequest) -> int:
    """The image count of a run before any asset is generated (the synthetic set is known by its
    size), so the plan can be shown before the long steps."""
    if isinstance(planned, ResolvedAssets):
        return planned.count
    return run_count(spec, planned.images, planned.dataset)


def skip(
    assets: ResolvedAssets,
    images: tuple[ListedImage, ...],
    problems: tuple[Problem, ...],
    count: int,
    terminal: Terminal,
) -> ResolvedAssets:
    """`assets` reduced to `images` (`problems` being what was left out), run on `count`.

    The remaining list becomes a val_map of its own (outside the dataset), so the preprocessed
    cache is keyed by what the run really uses and accuracy is scored over exactly those images.
    """
    skipped = (*assets.skipped, *problems)
    entries = "entry" if len(problems) == 1 else "entries"
    terminal.warn(
        f"--skip-bad: leaving out {len(problems)} dataset {entries} ({summary_counts(problems)}); "
        f"running on {count} of {len(images)} usable images; NOT submission-valid"
    )
    return replace(
        assets,
        available=len(images),
        count=count,
        images=images,
        val_map=write_filtered_val_map(images),
        skipped=skipped,
    )
