"""compose.yaml is generated from the container specs mlorch runs; a drift fails here."""

from __future__ import annotations

import yaml

from orchestrator.running.compose import compose_document, render_compose
from tests.support.paths import REPO

ROOT = REPO


def test_committed_compose_matches_generated() -> None:
    committed = (ROOT / "compose.yaml").read_text()
    assert committed == render_compose(), (
        "compose.yaml drifted: regenerate with `mlorch compose > compose.yaml`"
    )


def test_services_are_hardened_and_reserve_gpus() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert set(services) == {
        "reference",
        "reference-prepare",
        "dell-trt",
        "dell-trt-prepare",
        "dell-trt-model",
        "dell-trt-engines",
    }
    for service in services.values():
        assert service["cap_drop"] == ["ALL"]
        assert service["privileged"] is False
        assert service["read_only"] is True
        assert service["network_mode"] == "none"
        assert not service["user"].startswith("0")
        assert service["labels"]["mlorch.tool"] == "mlorch"
    test = services["reference"]
    mounts = {v["target"]: v["read_only"] for v in test["volumes"]}
    assert mounts == {
        "/model/resnet50_v1.onnx": True,
        "/cache": True,
        "/config/user.conf": True,
        "/results": False,
    }
    devices = test["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    recipe = {v["target"]: v["read_only"] for v in services["dell-trt"]["volumes"]}
    assert recipe == {
        "/model/resnet50_v1.onnx": True,
        "/cache": True,
        "/config/user.conf": True,
        "/artifacts": True,
        "/config/settings.json": True,
        "/engines": True,
        "/results": False,
    }
    assert "--format" in services["dell-trt-prepare"]["command"]
    assert services["dell-trt-prepare"]["command"][-1] == "int8"
    written = {v["target"] for v in services["dell-trt-model"]["volumes"] if not v["read_only"]}
    assert written == {"/artifacts"}
    assert "deploy" in services["dell-trt-engines"]  # engines are built on the GPU


def test_document_round_trips() -> None:
    assert yaml.safe_load(render_compose()) == compose_document()
