"""Which FP32 guard stops a dell-trt run: the CPU model's on the twin, each TensorRT engine's
on cuda (the CPU model is recorded there, not enforced). Engine-free: the prepared model's
folder is filled as the model container leaves it, and the engines container is canned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backends.common.synthetic import synthetic_root
from contract.dell_trt import recipe
from contract.digest import file_sha256
from contract.layout import val_map_digest
from contract.protocol import GUARD_PREFIX, json_line
from orchestrator.assets import ResolvedAssets, SyntheticRequest, resolve_synthetic
from orchestrator.assets.prepare import Preparer, calibration_id, ensure_recipe
from orchestrator.config import DEFAULT_TUNING, Device, RunSpec
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import AccuracyGuardFailed
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity
from orchestrator.paths import cache_dir
from tests.support.fake_docker import RUNNING, CannedAPI, exited, fake_client


def _spec(device: Device) -> RunSpec:
    return RunSpec(
        backend="dell-trt", device=device, tuning=DEFAULT_TUNING[device], guard_samples=16
    )


def _prepared_model(spec: RunSpec, assets: ResolvedAssets, cpu_fraction: float) -> None:
    """The model container's output: the artifact manifest, the CPU model's guard and labels."""
    key = recipe.artifact_key(file_sha256(assets.model.path), calibration_id(spec, assets)[0])
    tag = recipe.guard_tag(val_map_digest(assets.dataset, assets.val_map), 16)
    folder = cache_dir() / "models" / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / recipe.ARTIFACT_MANIFEST).write_text("{}\n")
    agree = round(16 * cpu_fraction)
    guard = {"encoding": recipe.CPU_ENCODING, "n": 16, "agree": agree, "fraction": agree / 16}
    (folder / recipe.GUARD_FILE.format(tag=tag)).write_text(json.dumps(guard))
    labels = {"indices": list(range(16)), "labels": [7] * 16}
    (folder / recipe.FP32_LABELS_FILE.format(tag=tag)).write_text(json.dumps(labels))


def _run(
    tmp_path: Path, test_cache: Path, device: Device, cpu: float, engine: float
) -> tuple[CannedAPI, list[dict[str, Any]]]:
    spec = _spec(device)
    request = SyntheticRequest(synthetic_root(test_cache, 64, 0), 64, 0)
    assets = resolve_synthetic(spec, request, Terminal(quiet=True))
    _prepared_model(spec, assets, cpu)
    line = json_line(GUARD_PREFIX, {"engine": "e1", "n": 16, "fraction": engine})
    api = CannedAPI([RUNNING, exited(0)], [f"{line}\n".encode()])
    prep = Preparer(
        DockerEngine(fake_client(api)), get_backend("dell-trt"), "img", "run",
        Identity("1000:1000", 1000, 1000, handover=False), Terminal(quiet=True),
    )  # fmt: skip
    settings = tmp_path / "settings.json"
    settings.write_text("{}")
    prepared = ensure_recipe(prep, spec, assets, tmp_path / "cache", settings, "hook")
    return api, prepared.guards


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLORCH_CACHE", str(tmp_path / "mlorch-cache"))


def test_the_twin_is_refused_on_its_cpu_model(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    with pytest.raises(AccuracyGuardFailed, match=r"u8s8 model agrees with FP32 on 50\.00 %"):
        _run(tmp_path, test_cache, Device.CPU, cpu=0.5, engine=1.0)


def test_cuda_records_the_cpu_model_and_holds_the_engines_to_the_threshold(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    api, guards = _run(tmp_path, test_cache, Device.CUDA, cpu=0.5, engine=1.0)
    assert [name for name, _ in api.calls].count("create") == 1  # the engines container
    assert guards[0]["enforced"] is False
    assert guards[0]["fraction"] == 0.5
    assert guards[1] == {"engine": "e1", "n": 16, "fraction": 1.0}
    with pytest.raises(AccuracyGuardFailed, match=r"engine e1 agrees with FP32 on 90\.00 %"):
        _run(tmp_path, test_cache, Device.CUDA, cpu=1.0, engine=0.9)
