"""Host side of damaged datasets: refusal, `--skip-bad`, the manifest, late decode failures.

The late path runs `ensure_preprocessed` against a canned docker API whose prepare container
reports a bad image and exits 65, as the real one does
(tests/unit/backends/common/test_preprocess.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.layout import (
    cache_key,
    read_val_map,
    sample_file,
)
from contract.protocol import BAD_IMAGE_PREFIX, BAD_IMAGES_EXIT
from orchestrator.assets import ResolvedAssets, plan_assets
from orchestrator.assets.prepare import Preparer, ensure_preprocessed
from orchestrator.config import DEFAULT_TUNING, Device, RunSpec
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import ContainerFailed, DamagedDataset, DiskFull, MlorchError
from orchestrator.images.catalog import BackendDef, get_backend
from orchestrator.images.containers import VAL_MAP_MOUNT, Identity
from orchestrator.paths import cache_dir
from orchestrator.results.manifest import RunManifest
from orchestrator.running.up import _record_assets
from tests.support.damaged_dataset import EXPECTED, DamagedFolder, make_damaged_dataset
from tests.support.fake_docker import RUNNING, CannedAPI, exited, fake_client


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DamagedFolder:
    monkeypatch.setenv("MLORCH_CACHE", str(tmp_path / "cache"))  # filtered lists, caches
    return make_damaged_dataset(tmp_path / "imagenet", undecodable_late=True)


def _spec(model: Path, dataset: Path, **values: object) -> RunSpec:
    return RunSpec(
        backend="reference",
        device=Device.CPU,
        tuning=DEFAULT_TUNING[Device.CPU],
        model=model,
        dataset=dataset,
        **values,  # type: ignore[arg-type]
    )


def _resolve(spec: RunSpec) -> ResolvedAssets:
    assets = plan_assets(spec, Terminal(quiet=True))
    assert isinstance(assets, ResolvedAssets)
    return assets


def test_damaged_dataset_is_refused_with_one_summary(
    synthetic_assets: tuple[Path, Path], folder: DamagedFolder
) -> None:
    model, _ = synthetic_assets
    with pytest.raises(DamagedDataset) as info:
        _resolve(_spec(model, folder.root))
    error = info.value
    assert error.exit_code == 5
    assert error.message == (
        f"dataset {folder.root}: 13 problems in 26 listed images (1 bad line, 3 bad label, "
        "2 escaping path, 1 missing, 1 duplicate, 1 zero-byte, 4 undecodable)"
    )
    assert "\n" not in error.message
    assert error.hint == "fix them, or pass --skip-bad to run without them (not submission-valid)"
    details = error.details.splitlines()
    for kind, number in EXPECTED.items():
        assert f"{kind}: {number}" in details
    assert "  line 18: val/label_1000.JPEG 1000 — label 1000 is outside 0-999" in details


def test_skip_bad_runs_on_a_filtered_list(
    synthetic_assets: tuple[Path, Path], folder: DamagedFolder
) -> None:
    model, _ = synthetic_assets
    assets = _resolve(_spec(model, folder.root, skip_bad=True))
    usable = len(folder.good) + len(folder.late)
    assert (assets.available, assets.count, len(assets.skipped)) == (usable, usable, 13)
    assert assets.val_map is not None
    assert assets.val_map.parent == cache_dir() / "val_maps"
    entries = read_val_map(assets.dataset, assets.val_map)
    assert {e.relpath for e in entries} == {*folder.good, *folder.late}
    # The dataset's own order, labels as listed.
    own = read_val_map_loose(folder.root)
    assert [(e.relpath, str(e.label)) for e in entries] == [
        pair for pair in own if pair[0] in {*folder.good, *folder.late}
    ][: len(entries)]
    assert cache_key(assets.dataset, usable, val_map=assets.val_map) != cache_key(
        assets.dataset, usable
    )
    quick = _resolve(_spec(model, folder.root, skip_bad=True, dataset_count=4))
    assert quick.count == 4


def read_val_map_loose(root: Path) -> list[tuple[str, str]]:
    """(path, label) of every two-field line, damaged or not."""
    pairs = []
    for line in (root / "val_map.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            pairs.append((parts[0], parts[1]))
    return pairs


def test_manifest_records_what_was_skipped(
    synthetic_assets: tuple[Path, Path], folder: DamagedFolder, tmp_path: Path
) -> None:
    model, _ = synthetic_assets
    assets = _resolve(_spec(model, folder.root, skip_bad=True))
    manifest = RunManifest(
        run_id="r", run_dir=tmp_path, mlorch_version="0", spec={}, host={}, submission_valid=True
    )
    _record_assets(manifest, assets)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["submission_valid"] is False
    assert data["invalid_because"] == ["dataset: --skip-bad: 13 damaged dataset entries left out"]
    skipped = data["assets"]["skipped"]
    assert skipped["count"] == 13
    assert skipped["by_kind"] == EXPECTED
    assert {
        "line": 12,
        "path": "val/missing.JPEG",
        "kind": "missing",
        "reason": "no such file",
    } in (skipped["entries"])
    assert data["assets"]["val_map"] == str(assets.val_map)


def test_a_clean_dataset_is_not_filtered(synthetic_assets: tuple[Path, Path]) -> None:
    model, dataset = synthetic_assets
    assets = _resolve(_spec(model, dataset, skip_bad=True))
    assert assets.val_map is None
    assert assets.skipped == ()
    assert assets.count == 64


def _prepare_engine(exit_code: int, lines: list[str]) -> tuple[CannedAPI, DockerEngine]:
    log = "".join(f"{line}\n" for line in lines).encode()
    # Each container: one inspection when created, then the state it ends in.
    api = CannedAPI([RUNNING, exited(exit_code), RUNNING, exited(0)], [log])
    return api, DockerEngine(fake_client(api))


def _preparer(engine: DockerEngine, backend: BackendDef) -> Preparer:
    identity = Identity("1000:1000", 1000, 1000, handover=False)
    return Preparer(engine, backend, "img", "run", identity, Terminal(quiet=True))


def test_late_decode_failures_are_refused_in_the_same_terms(
    synthetic_assets: tuple[Path, Path], folder: DamagedFolder
) -> None:
    model, _ = synthetic_assets
    assets = _resolve(_spec(model, folder.root, skip_bad=True))
    line = f"{BAD_IMAGE_PREFIX} val/bad_huffman.JPEG\tOpenCV cannot decode it"
    _, engine = _prepare_engine(BAD_IMAGES_EXIT, ["prepare: starting", line])
    with pytest.raises(DamagedDataset) as info:
        ensure_preprocessed(_preparer(engine, get_backend("reference")), assets)
    assert info.value.message == (
        f"dataset {folder.root}: 1 problem in the 13 preprocessed images (1 undecodable)"
    )
    assert info.value.details.splitlines() == [
        "undecodable: 1",
        "  line 5: val/bad_huffman.JPEG — decoding failed: OpenCV cannot decode it",
    ]


def test_late_decode_failures_are_skipped_without_decoding_twice(
    synthetic_assets: tuple[Path, Path], folder: DamagedFolder
) -> None:
    model, _ = synthetic_assets
    backend = get_backend("reference")
    assets = _resolve(_spec(model, folder.root, skip_bad=True))
    first = cache_dir() / "preprocessed" / cache_key(assets.dataset, assets.count, "fp32",
                                                     assets.val_map)  # fmt: skip
    first.mkdir(parents=True)
    bad_index = [i.entry.relpath for i in assets.images].index("val/bad_huffman.JPEG")
    for index in range(assets.count):  # what the failed prepare left: every good sample
        if index != bad_index:
            sample_file(first, index).write_bytes(f"sample {index}".encode())
    line = f"{BAD_IMAGE_PREFIX} val/bad_huffman.JPEG\tOpenCV cannot decode it"
    api, engine = _prepare_engine(BAD_IMAGES_EXIT, [line])
    reduced, cache = ensure_preprocessed(_preparer(engine, backend), assets, skip_bad=True)
    assert reduced.count == assets.count - 1
    assert [p.path for p in reduced.skipped][-1] == "val/bad_huffman.JPEG"
    assert len(reduced.skipped) == 14
    assert "val/bad_huffman.JPEG" not in reduced.val_map.read_text()  # type: ignore[union-attr]
    assert cache == cache_dir() / "preprocessed" / cache_key(
        reduced.dataset, reduced.count, "fp32", reduced.val_map
    )
    # The second container finds every sample already there, renumbered, and decodes nothing.
    for index in range(reduced.count):
        old = index if index < bad_index else index + 1
        assert sample_file(cache, index).read_bytes() == f"sample {old}".encode()
        assert sample_file(cache, index).stat().st_ino == sample_file(first, old).stat().st_ino
    creates = [kwargs for name, kwargs in api.calls if name == "create"]
    assert len(creates) == 2
    assert creates[1]["command"][-2:] == ["--val-map", VAL_MAP_MOUNT]
    assert creates[1]["command"][creates[1]["command"].index("--count") + 1] == str(reduced.count)


@pytest.mark.parametrize(
    ("said", "error", "code", "message"),
    [
        ("[Errno 5] Input/output error", ContainerFailed, 6, "exited with status 1"),
        # ENOSPC, while the cache folder has room here: the container's own space filled
        ("[Errno 28] No space left on device", DiskFull, 9, "inside the container: its /tmp"),
    ],
)
def test_other_prepare_failures_are_not_damaged_data(
    synthetic_assets: tuple[Path, Path],
    folder: DamagedFolder,
    said: str,
    error: type[MlorchError],
    code: int,
    message: str,
) -> None:
    model, _ = synthetic_assets
    assets = _resolve(_spec(model, folder.root, skip_bad=True))
    _, engine = _prepare_engine(1, [f"prepare failed: {said}"])
    with pytest.raises(error) as info:
        ensure_preprocessed(_preparer(engine, get_backend("reference")), assets, skip_bad=True)
    assert info.value.exit_code == code
    assert message in info.value.message
