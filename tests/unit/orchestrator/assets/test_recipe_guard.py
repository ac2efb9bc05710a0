"""Which accuracy guard stops a dell-trt run: the CPU twin's u8s8 model on the twin; on cuda
TensorRT's s8s8 model (guarded on the CPU, before any GPU) and each TensorRT engine (the u8s8
model is recorded there, not enforced). Engine-free: the prepared model's folder is filled as the
model container leaves it, and the engines container is canned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.common.synthetic import synthetic_root
from backends.dell_trt import guard
from contract.dell_trt import recipe
from contract.digest import file_sha256
from contract.layout import val_map_digest
from contract.protocol import GUARD_PREFIX, json_line
from orchestrator.assets import ResolvedAssets, SyntheticRequest, resolve_synthetic
from orchestrator.assets.prepare import (
    PreparedRecipe,
    Preparer,
    calibration_id,
    ensure_recipe,
)
from orchestrator.config import DEFAULT_TUNING, Device, RunSpec
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.errors import AccuracyGuardFailed
from orchestrator.images.catalog import get_backend
from orchestrator.images.containers import Identity
from orchestrator.paths import cache_dir
from tests.support.fake_docker import RUNNING, CannedAPI, exited, fake_client


def _spec(device: Device, calibration: str = "minmax") -> RunSpec:
    return RunSpec(
        backend="dell-trt", device=device, tuning=DEFAULT_TUNING[device], guard_samples=16,
        calibration=calibration,
    )  # fmt: skip


def _guard(fraction: float, n: int = 300) -> dict[str, Any]:
    """A recorded guard on synthetic labels (= FP32's answers) with `fraction` of them kept."""
    truth = np.arange(n, dtype=np.int32) % 1000
    got = truth.copy()
    got[: n - round(n * fraction)] += 1
    result = guard.compare(got, guard.Reference(truth, truth))
    return dict(json.loads(json.dumps(result.as_dict())))


FLOAT_CONV = {
    "ok": False,
    "summary": "INT8 53/54 compute nodes, 1 findings",
    "findings": [{"node": "conv_17", "op_type": "Conv", "kind": "weight", "detail": "float"}],
}


def _prepared_model(
    spec: RunSpec,
    assets: ResolvedAssets,
    u8s8: float,
    s8s8: float,
    int8: dict[str, Any],
    method: str = recipe.CALIBRATION_METHOD,
) -> None:
    """The model container's output for one calibration method: the artifact manifest, both
    models' guards, the labels."""
    cal_id = calibration_id(spec, assets)[0]
    key = recipe.artifact_key(file_sha256(assets.model.path), cal_id, method)
    tag = recipe.guard_tag(val_map_digest(assets.dataset, assets.val_map), 16)
    folder = cache_dir() / "models" / key
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"method": method, "int8_check": {"s8s8": int8}}
    (folder / recipe.ARTIFACT_MANIFEST).write_text(json.dumps(manifest))
    guards = {"tag": tag, "encodings": {"u8s8": _guard(u8s8), "s8s8": _guard(s8s8)}}
    (folder / recipe.GUARD_FILE.format(tag=tag)).write_text(json.dumps(guards))
    labels = {"indices": list(range(16)), "labels": [7] * 16, "truth": [7] * 16}
    (folder / recipe.FP32_LABELS_FILE.format(tag=tag)).write_text(json.dumps(labels))


def _run(
    tmp_path: Path,
    test_cache: Path,
    device: Device,
    cpu: float,
    engine: float,
    trt_model: float = 1.0,
    int8: dict[str, Any] | None = None,
) -> tuple[CannedAPI, list[dict[str, Any]]]:
    spec = _spec(device)
    request = SyntheticRequest(synthetic_root(test_cache, 64, 0), 64, 0)
    assets = resolve_synthetic(spec, request, Terminal(quiet=True))
    _prepared_model(spec, assets, cpu, trt_model, int8 or {"ok": True, "summary": "INT8 54/54"})
    api, prepared = _ensure(tmp_path, spec, assets, engine)
    return api, prepared.guards


def _ensure(
    tmp_path: Path, spec: RunSpec, assets: ResolvedAssets, engine: float
) -> tuple[CannedAPI, PreparedRecipe]:
    """ensure_recipe with the engines container canned (one guard line of `engine`)."""
    line = json_line(GUARD_PREFIX, {"engine": "e1", **_guard(engine)})
    api = CannedAPI([RUNNING, exited(0)], [f"{line}\n".encode()])
    prep = Preparer(
        DockerEngine(fake_client(api)), get_backend("dell-trt"), "img", "run",
        Identity("1000:1000", 1000, 1000, handover=False), Terminal(quiet=True),
    )  # fmt: skip
    settings = tmp_path / "settings.json"
    settings.write_text("{}")
    gpu_access = "hook" if spec.device is Device.CUDA else None
    return api, ensure_recipe(prep, spec, assets, tmp_path / "cache", settings, gpu_access)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLORCH_CACHE", str(tmp_path / "mlorch-cache"))


def test_the_twin_is_refused_on_its_cpu_model(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    with pytest.raises(AccuracyGuardFailed, match=r"the u8s8 model misses the accuracy rule"):
        _run(tmp_path, test_cache, Device.CPU, cpu=0.5, engine=1.0)


def test_the_twin_records_the_tensorrt_model_without_enforcing_it(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    api, guards = _run(tmp_path, test_cache, Device.CPU, cpu=1.0, engine=1.0, trt_model=0.5)
    assert [(g["encoding"], g["enforced"]) for g in guards] == [("u8s8", True), ("s8s8", False)]
    assert [name for name, _ in api.calls].count("create") == 0  # no engines on the twin


def test_cuda_refuses_a_bad_tensorrt_model_before_any_gpu(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    with pytest.raises(AccuracyGuardFailed, match=r"the s8s8 model misses the accuracy rule"):
        _run(tmp_path, test_cache, Device.CUDA, cpu=1.0, engine=1.0, trt_model=0.9)


def test_cuda_records_the_cpu_model_and_holds_the_engines_to_the_rule(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    api, guards = _run(tmp_path, test_cache, Device.CUDA, cpu=0.5, engine=1.0)
    assert [name for name, _ in api.calls].count("create") == 1  # the engines container
    assert [(g["encoding"], g["enforced"]) for g in guards[:2]] == [
        ("s8s8", True),
        ("u8s8", False),
    ]
    assert guards[1]["fraction"] == 0.5
    assert guards[2]["engine"] == "e1"
    assert guards[2]["gate"]["verdict"] == "pass"
    with pytest.raises(AccuracyGuardFailed, match=r"engine e1 misses the accuracy rule"):
        _run(tmp_path, test_cache, Device.CUDA, cpu=1.0, engine=0.9)


def test_cuda_refuses_a_tensorrt_model_with_a_float_layer(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    with pytest.raises(
        AccuracyGuardFailed, match=r"would not run in INT8 on TensorRT: Conv conv_17"
    ):
        _run(tmp_path, test_cache, Device.CUDA, cpu=1.0, engine=1.0, int8=FLOAT_CONV)


def test_the_twin_names_a_float_layer_of_the_tensorrt_model(
    tmp_path: Path,
    test_cache: Path,
    synthetic_assets: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run(tmp_path, test_cache, Device.CPU, cpu=1.0, engine=1.0, int8=FLOAT_CONV)
    assert "would not run in INT8 on TensorRT: Conv conv_17" in capsys.readouterr().err


def test_auto_calibration_keeps_the_method_whose_model_scores_best(
    tmp_path: Path, test_cache: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    """Each method's model is prepared under its own key; the one the device runs (u8s8 on
    cpu, s8s8 on cuda) is compared on the guard images; ties go to the published preference."""
    spec = _spec(Device.CUDA, "auto")
    request = SyntheticRequest(synthetic_root(test_cache, 64, 0), 64, 0)
    assets = resolve_synthetic(spec, request, Terminal(quiet=True))
    ok = {"ok": True, "summary": "INT8 54/54"}
    # s8s8 (what cuda runs): percentile best; u8s8 would have picked minmax
    for method, u8s8, s8s8 in (("entropy", 0.99, 0.99), ("percentile", 0.98, 1.0),
                               ("minmax", 1.0, 0.98)):  # fmt: skip
        _prepared_model(spec, assets, u8s8, s8s8, ok, method)
    api, prepared = _ensure(tmp_path, spec, assets, 1.0)
    choice = prepared.artifact["calibration_choice"]
    assert (choice["asked"], choice["chosen"]) == ("auto", "percentile")
    assert set(choice["candidates"]) == {"entropy", "percentile", "minmax"}
    assert choice["candidates"]["percentile"]["ratio"] == 1.0
    assert prepared.record()["model"]["method"] == "percentile"
    assert [name for name, _ in api.calls].count("create") == 1  # only the engines container
    # all equal: the published preference (entropy first)
    cpu = _spec(Device.CPU, "auto")
    for method in recipe.CALIBRATION_CHOICES:
        _prepared_model(cpu, assets, 1.0, 1.0, ok, method)
    _, again = _ensure(tmp_path, cpu, assets, 1.0)
    assert again.artifact["calibration_choice"]["chosen"] == "entropy"
