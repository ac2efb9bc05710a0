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


def test_compose_prepare_service_runs_the_real_image(
    engine: DockerEngine, tmp_path: Path, synthetic_assets: tuple[Path, Path]
) -> None:
    """The generated service works, not only parses: preprocessing via docker-compose."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose not installed")
    from orchestrator.config import Device
    from orchestrator.console import Terminal
    from orchestrator.images.build import ensure_image
    from orchestrator.images.catalog import get_backend

    image = ensure_image(
        engine, get_backend("reference"), Device.CPU, None, None, Terminal(quiet=True)
    )
    _, dataset = synthetic_assets
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)  # the service runs as MLORCH_UID (10001 by default)
    env = {**os.environ, "MLORCH_IMAGE": image.tag, "MLORCH_DATASET": str(dataset),
           "MLORCH_CACHE": str(cache), "MLORCH_COUNT": "8"}  # fmt: skip
    for name in ("MODEL", "RESULTS", "USER_CONF"):
        env[f"MLORCH_{name}"] = str(tmp_path / name.lower())
    result = subprocess.run(
        [compose, "-f", str(ROOT / "compose.yaml"), "-p", f"mlorch{os.getpid()}", "run", "--rm",
         "reference-prepare"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "preprocessed 8 images" in result.stdout
    assert len(list(cache.glob("*.npy"))) == 8
