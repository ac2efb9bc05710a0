"""Model and dataset resolution: real assets when given, the synthetic stand-in otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def dataset_size(dataset: Path) -> int:
    """Validate the ImageNet layout and return how many images val_map.txt lists."""
    from backends.common.imagenet import VAL_MAP, read_val_map

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


def ensure_synthetic(images: int, seed: int, terminal: Terminal) -> tuple[Path, Path]:
    """The synthetic model and dataset for (images, seed), generated once and cached."""
    from orchestrator.assets.synthetic import load_existing, make_synthetic_assets, synthetic_root

    root = synthetic_root(cache_dir(), images, seed)
    existing = load_existing(root)
    if existing is None:
        with terminal.progress(
            f"generating synthetic assets ({images} images, seed {seed})", images
        ) as advance:
            existing = make_synthetic_assets(root, images, seed, advance)
        terminal.success(f"synthetic assets in {root} ({existing.distinct_labels} distinct labels)")
    return existing.model, existing.dataset


def resolve_assets(spec: RunSpec, terminal: Terminal) -> ResolvedAssets:
    """Validate the run's model and dataset, generating the synthetic pair when none is given."""
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
        model_path, dataset = ensure_synthetic(spec.synthetic_images, spec.synthetic_seed, terminal)
    else:
        assert spec.model is not None
        assert spec.dataset is not None
        model_path, dataset = spec.model, spec.dataset
    model = validate_model(model_path.resolve())
    if not spec.synthetic and not model.official:
        terminal.warn(
            f"model md5 {model.md5} is not an official resnet50_v1.onnx: open division only"
        )
    available = dataset_size(dataset.resolve())
    count = spec.dataset_count or available
    if spec.quick_run and spec.dataset_count is None:
        count = min(available, spec.quick.max_dataset_count)
    if count > available:
        raise ConfigError(
            f"--count {count} exceeds the {available} images of {dataset}", key="dataset_count"
        )
    return ResolvedAssets(
        model=model,
        dataset=dataset.resolve(),
        available=available,
        count=count,
        synthetic=spec.synthetic,
    )
