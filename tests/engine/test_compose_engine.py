"""A real compose implementation validates compose.yaml (GPU reservations included)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.engine.client import DockerEngine

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]


def test_docker_compose_config_accepts_file(engine: DockerEngine, tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("MLORCH_REQUIRE_ENGINE") == "1":
            pytest.fail("docker-compose not installed")
        pytest.skip("docker-compose not installed")
    env = {**os.environ}
    for name in ("MODEL", "DATASET", "CACHE", "RESULTS", "USER_CONF"):
        env[f"MLORCH_{name}"] = str(tmp_path / name.lower())
    result = subprocess.run(
        [compose, "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]["reference"]
    assert resolved["command"][2] == "Offline"
    assert resolved["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
