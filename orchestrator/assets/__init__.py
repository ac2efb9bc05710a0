"""Model and dataset resolution: real assets when given, the synthetic stand-in otherwise.

Real assets are validated on the host before anything is built. The synthetic pair is generated
inside the backend image (the host runs no ML code), once per (images, seed), and then validated
like real assets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from backends.common.layout import (
    SYNTHETIC_DATASET,
    SYNTHETIC_MARKER,
    SYNTHETIC_MODEL,
    VAL_MAP,
    read_val_map,
    synthetic_root,
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
    available: int  # images listed in val_map.txt
    count: int  # images this run uses
    synthetic: bool


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


def dataset_size(dataset: Path) -> int:
    """Validate the ImageNet layout and return how many images val_map.txt lists."""
    if not dataset.is_dir():
        raise AssetError(f"dataset folder not found: {dataset}", hint="pass --dataset DIR")
    if not (dataset / VAL_MAP).is_file():
        raise AssetError(
            f"{dataset} has no {VAL_MAP}",
            hint="ImageNet layout: DIR/val_map.txt with '<relative path> <label>' lines",
        )
    try:
        entries = read_val_map(dataset)
    except ValueError as exc:
        raise AssetError(str(exc), hint="fix the val_map.txt line named above") from exc
    if not entries:
        raise AssetError(
            f"dataset {dataset} is empty ({VAL_MAP} lists no image)",
            hint="point --dataset at a populated ImageNet validation folder",
        )
    missing = [e.relpath for e in entries[:1] + entries[-1:] if not (dataset / e.relpath).is_file()]
    if missing:
        raise AssetError(
            f"dataset {dataset}: image {missing[0]} listed in {VAL_MAP} is missing",
            hint="the val_map paths are relative to the dataset folder",
        )
    return len(entries)


def plan_assets(spec: RunSpec, terminal: Terminal) -> ResolvedAssets | SyntheticRequest:
    """Validate real assets now; for the synthetic stand-in, say what must exist."""
    if (spec.model is None) != (spec.dataset is None):
        raise ConfigError(
            "--model and --dataset go together",
            hint="pass both for real assets, or neither for the synthetic stand-in",
        )
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
    available = dataset_size(dataset.resolve())
    return ResolvedAssets(
        model=model,
        dataset=dataset.resolve(),
        available=available,
        count=run_count(spec, available, dataset),
        synthetic=synthetic,
    )


def run_count(spec: RunSpec, available: int, dataset: Path) -> int:
    """How many of the `available` images a run uses: --count, else all (capped by --quick)."""
    count = spec.dataset_count or available
    if spec.quick_run and spec.dataset_count is None:
        count = min(available, spec.quick.max_dataset_count)
    if count > available:
        raise ConfigError(
            f"--count {count} exceeds the {available} images of {dataset}", key="dataset_count"
        )
    return count


def planned_count(spec: RunSpec, planned: ResolvedAssets | SyntheticRequest) -> int:
    """The image count of a run before any asset is generated (the synthetic set is known by its
    size), so the plan can be shown before the long steps."""
    if isinstance(planned, ResolvedAssets):
        return planned.count
    return run_count(spec, planned.images, planned.dataset)
