"""Damaged datasets: the up-front check, its one summary, and the filtered list of `--skip-bad`.

The checks themselves are the standard-library ones in contract.dataset_check; this
module turns their findings into an error, a manifest record or a filtered val_map.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from contract.dataset_check import (
    UNDECODABLE,
    DatasetReport,
    ListedImage,
    Problem,
    check_dataset,
    count_by_kind,
    filtered_val_map,
    summary_counts,
    summary_details,
)
from contract.layout import VAL_MAP
from contract.locks import atomic_write_text
from contract.protocol import read_bad_image
from orchestrator.errors import AssetError, DamagedDataset
from orchestrator.paths import cache_dir


def inspect_dataset(dataset: Path) -> DatasetReport:
    """Check the ImageNet layout, every val_map line and every listed image's header."""
    if not dataset.is_dir():
        raise AssetError(f"dataset folder not found: {dataset}", hint="pass --dataset DIR")
    if not (dataset / VAL_MAP).is_file():
        raise AssetError(
            f"{dataset} has no {VAL_MAP}",
            hint="ImageNet layout: DIR/val_map.txt with '<relative path> <label>' lines",
        )
    try:
        report = check_dataset(dataset)
    except OSError as exc:
        raise AssetError(f"cannot read {dataset / VAL_MAP}: {exc.strerror or exc}") from exc
    if report.lines == 0:
        raise AssetError(
            f"dataset {dataset} is empty ({VAL_MAP} lists no image)",
            hint="point --dataset at a populated ImageNet validation folder",
        )
    return report


def _plural(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def damaged(
    dataset: Path, problems: Sequence[Problem], among: str, hint: str | None = None
) -> DamagedDataset:
    """One error for all `problems`: a one-line count, the per-kind list as details."""
    return DamagedDataset(
        f"dataset {dataset}: {_plural(len(problems), 'problem')} in {among} "
        f"({summary_counts(problems)})",
        summary_details(problems),
        hint=hint,
    )


def note_line(report: DatasetReport) -> str | None:
    """A warning for accepted oddities (PNG data named .JPEG), or None."""
    if not report.notes:
        return None
    first = report.notes[0]
    more = f" (and {len(report.notes) - 1} more)" if len(report.notes) > 1 else ""
    return (
        f"{_plural(len(report.notes), 'image')} decoded by content, not by name: "
        f"{first.path} is {first.reason}{more}; accepted (OpenCV reads it)"
    )


def write_filtered_val_map(images: Iterable[ListedImage]) -> Path:
    """The usable images as a val_map.txt of their own, content-addressed in the cache.

    It lives outside the dataset (mounted read-only into the containers) and its contents are
    part of the preprocessed cache key, so a filtered run never reuses an unfiltered cache.
    """
    text = filtered_val_map(image.entry for image in images)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_dir() / "val_maps" / f"{digest}.txt"
    if not path.is_file():
        atomic_write_text(path, text)
    return path


def skipped_record(problems: Sequence[Problem]) -> dict[str, Any]:
    """What the manifest says about entries a `--skip-bad` run left out."""
    return {
        "count": len(problems),
        "by_kind": count_by_kind(problems),
        "entries": [
            {"line": p.line, "path": p.path, "kind": p.kind, "reason": p.reason} for p in problems
        ],
    }


def parse_bad_image(line: str) -> tuple[str, str] | None:
    """`mlorch-bad-image <relpath>\\t<reason>` from the prepare container → (relpath, reason)."""
    found = read_bad_image(line)
    if found is None:
        return None
    relpath, reason = found
    return relpath, reason or "cannot be decoded"


def decode_failures(
    failures: Iterable[tuple[str, str]], images: Sequence[ListedImage]
) -> list[Problem]:
    """Late decode failures as problems, with the val_map line of each image when known."""
    lines = {image.entry.relpath: image.line for image in images}
    return [
        Problem(UNDECODABLE, lines.get(relpath), relpath, f"decoding failed: {reason}")
        for relpath, reason in failures
    ]
