"""Damaged datasets end to end: real dockerd, the real prepare container, real LoadGen.

The usable images include copies of the synthetic dataset (labelled with the synthetic model's
own answers), so a filtered list that drifted from its labels would show as lost accuracy.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.client import DockerEngine
from tests.engine.conftest import mlorch
from tests.support.damaged_dataset import (
    EXPECTED,
    jpeg_bytes,
    make_damaged_dataset,
    picture,
    with_garbage_huffman_table,
)

pytestmark = pytest.mark.engine


def _manifest(runs: Path) -> dict[str, Any]:
    (path,) = runs.glob("*/manifest.json")
    return dict(json.loads(path.read_text()))


def _accuracy(runs: Path, manifest: dict[str, Any]) -> str:
    folder = runs / manifest["run_id"] / "reference" / "Offline" / "accuracy"
    return (folder / "accuracy.txt").read_text().strip()


def test_skip_bad_runs_on_the_usable_images(
    engine: DockerEngine, synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    """13 problems found up front, 1 more (garbage Huffman table) only when decoding: the run
    leaves all 14 out, finishes, and says why it is not submission-valid."""
    model, dataset = synthetic_assets
    # A fresh image folder name: the filtered list (and so its caches) is new on every run.
    images = f"val-{secrets.token_hex(4)}"
    folder = make_damaged_dataset(
        tmp_path / "imagenet", dataset, undecodable_late=True, images=images
    )
    result = mlorch(
        "up", "reference", "--device", "cpu", "--model", str(model), "--dataset",
        str(folder.root), "--skip-bad", "--quick", "-s", "Offline", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    assert "--skip-bad: leaving out 13 dataset entries" in result.stderr
    assert "--skip-bad: leaving out 1 dataset entry (1 undecodable)" in result.stderr
    assert "prepare: 1 image could not be decoded" in result.stderr
    assert "preprocessed 0 images" in result.stderr  # the retry reuses every decoded image

    manifest = _manifest(tmp_path / "runs")
    assert manifest["status"] == "complete"
    assert manifest["submission_valid"] is False
    because = manifest["invalid_because"]
    assert because[0] == "quick: --quick profile: shortened durations and query counts"
    assert "dataset: --skip-bad: 14 damaged dataset entries left out" in because
    # the synthetic model passed with --model: judged by its md5, not by how it came
    assert [line for line in because if line.startswith("model:")] == [
        f"model: model md5 {manifest['assets']['model_md5']} is not an official resnet50_v1.onnx"
    ]
    skipped = manifest["assets"]["skipped"]
    assert skipped["count"] == 14
    assert skipped["by_kind"] == {**EXPECTED, "undecodable": EXPECTED["undecodable"] + 1}
    late = [e for e in skipped["entries"] if e["path"] == f"{images}/bad_huffman.JPEG"]
    assert late == [
        {
            "line": 5,
            "path": f"{images}/bad_huffman.JPEG",
            "kind": "undecodable",
            "reason": "decoding failed: OpenCV cannot decode it",
        }
    ]
    used = len(folder.good)
    assert manifest["assets"]["count"] == used
    # Scored over exactly the images used; every synthetic copy keeps its own label.
    accuracy = _accuracy(tmp_path / "runs", manifest)
    good = int(accuracy.split("good=")[1].split(",")[0])
    assert accuracy.endswith(f"total={used}"), accuracy
    assert good >= folder.copied, accuracy
    # the legend under the table says why it is not submission-valid
    assert "dataset: --skip-bad: 14 damaged dataset entries left out" in result.stdout


def test_decode_failure_in_prepare_is_one_summary_without_traceback(
    engine: DockerEngine, synthetic_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    """Headers fine, data garbage: the prepare container names the file, mlorch refuses (exit 5)
    in the same terms as the up-front check, and no container is left."""
    model, dataset = synthetic_assets
    root = tmp_path / "imagenet"
    images = f"val-{secrets.token_hex(4)}"
    (root / images).mkdir(parents=True)
    lines = []
    for line in (dataset / "val_map.txt").read_text().splitlines()[:4]:
        relpath, label = line.split()
        shutil.copy(dataset / relpath, root / images / Path(relpath).name)
        lines.append(f"{images}/{Path(relpath).name} {label}")
    broken = with_garbage_huffman_table(jpeg_bytes(picture(300, 400)))
    (root / images / "broken.JPEG").write_bytes(broken)
    lines.insert(2, f"{images}/broken.JPEG 5")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")

    result = mlorch(
        "up", "reference", "--device", "cpu", "--model", str(model), "--dataset", str(root),
        "--quick", "-s", "Offline", "-m", "AccuracyOnly", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result.stderr[-4000:]
    assert "Traceback" not in result.stderr  # container lines are streamed here too
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: dataset {root}: 1 problem in the 5 preprocessed images (1 undecodable)"
    ]
    assert (
        f"  line 3: {images}/broken.JPEG — decoding failed: OpenCV cannot decode it"
        in result.stderr.splitlines()
    )
    assert "hint: fix them, or pass --skip-bad" in result.stderr
    assert _manifest(tmp_path / "runs")["status"] == "failed"
    leftover = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=mlorch.role=prepare"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert leftover.stdout.strip() == ""
