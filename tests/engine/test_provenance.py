"""The SUT image's content tag follows the base image's id, not only its name (real engine)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from orchestrator.engine import labels as L
from orchestrator.engine.client import DockerEngine
from orchestrator.images.catalog import LOCAL_BASE
from tests.engine.conftest import mlorch

pytestmark = pytest.mark.engine

LATEST = "mlorch/reference-cpu:latest"


def _build_variant_base(engine: DockerEngine, tag: str) -> str:
    """`tag` becomes the local base plus one small layer: same name, another image id."""
    dockerfile = f"FROM {LOCAL_BASE}\nRUN echo {os.getpid()} > /etc/mlorch-provenance-test\n"
    image, _ = engine.client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, pull=False
    )
    return str(image.id)


def test_retagged_base_rebuilds_the_image(engine: DockerEngine, tmp_path: Path) -> None:
    base = f"mlorch/base:provenance-{os.getpid()}"
    previous_latest = engine.image_id(LATEST)
    built: list[str] = []
    args = ("build", "reference", "--device", "cpu", "--base-image", base)
    try:
        engine.tag(LOCAL_BASE, base)  # the base under a new name: same id as the local base
        first = mlorch(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        built.append(first.stdout.strip())
        again = mlorch(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stdout.strip() == built[0]
        assert "up to date (nothing to build)" in again.stderr

        variant_id = _build_variant_base(engine, base)  # re-tag: same name, another image
        assert variant_id != engine.image_id(LOCAL_BASE)
        second = mlorch(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        built.append(second.stdout.strip())
        assert built[1] != built[0]
        assert f"built {built[1]}" in second.stderr
        labels = engine.image_labels(built[1])
        assert labels[L.BASE_IMAGE] == base
        assert labels[L.BASE_IMAGE_ID] == variant_id
        assert engine.image_labels(built[0])[L.BASE_IMAGE_ID] == engine.image_id(LOCAL_BASE)
    finally:
        for ref in (*built, base):
            if engine.image_id(ref):
                engine.client.images.remove(ref, force=True)
        if previous_latest and engine.image_id(previous_latest):
            engine.tag(previous_latest, LATEST)  # leave `latest` where other runs left it
