"""Engine-free: the content tag covers the base image's id; the base's provenance is read right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest

from orchestrator.config import Device
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine, ImageFacts
from orchestrator.images.build import BaseImage, resolve_base_image, stage_context
from orchestrator.images.catalog import get_backend
from orchestrator.images.wheelhouse import Wheelhouse
from tests.support.fake_docker import CannedAPI, fake_client

BASE_ID = "sha256:" + "1" * 64
OTHER_ID = "sha256:" + "2" * 64


def _digest(tmp_path: Path, base: BaseImage) -> str:
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    house = Wheelhouse(wheels, ("demo==1.0",), "pip-24.0-py3-none-any.whl")
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    _, _, digest = stage_context(get_backend("reference"), Device.CPU, base, house, staging)
    return digest


def test_digest_changes_when_only_the_base_id_changes(tmp_path: Path) -> None:
    first = _digest(tmp_path, BaseImage("mlorch/base:bookworm", BASE_ID, fallback=True))
    again = _digest(tmp_path, BaseImage("mlorch/base:bookworm", BASE_ID, fallback=True))
    rebuilt = _digest(tmp_path, BaseImage("mlorch/base:bookworm", OTHER_ID, fallback=True))
    assert first == again  # unchanged inputs: same tag, nothing to build
    assert rebuilt != first


@pytest.mark.parametrize(
    ("ref", "digests", "expected"),
    [
        ("mlorch/base:bookworm", (), BASE_ID),
        (
            "nvcr.io/nvidia/tensorrt:24.12-py3",
            ("mirror.lab:5000/tensorrt@sha256:aa", "nvcr.io/nvidia/tensorrt@sha256:bb"),
            "nvcr.io/nvidia/tensorrt@sha256:bb",
        ),
        (
            "localhost:5000/base",
            ("localhost:5000/base@sha256:cc",),
            "localhost:5000/base@sha256:cc",
        ),
        ("python:3.11", ("elsewhere/python@sha256:dd",), "elsewhere/python@sha256:dd"),
    ],
)
def test_base_digest_prefers_the_registry_digest_of_its_repository(
    ref: str, digests: tuple[str, ...], expected: str
) -> None:
    base = BaseImage(ref, BASE_ID, fallback=False, repo_digests=digests)
    assert base.digest == expected


class ImagesAPI(CannedAPI):
    """The canned API answering `docker image inspect` from a dict."""

    def __init__(self, images: dict[str, dict[str, Any]]) -> None:
        super().__init__([], [])
        self.images = images

    def inspect_image(self, image: str) -> dict[str, Any]:
        if image not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return self.images[image]


IMAGES: dict[str, dict[str, Any]] = {
    "nvcr.io/nvidia/tensorrt:24.12-py3": {
        "Id": BASE_ID,
        "RepoDigests": ["nvcr.io/nvidia/tensorrt@sha256:bb"],
        "Comment": "",
    },
    "mlorch/base:bookworm": {
        "Id": OTHER_ID,
        "RepoDigests": None,
        "Comment": "mlorch local base image (bookworm minbase)",
    },
}


def test_image_facts_read_repo_digests_and_the_import_comment() -> None:
    engine = DockerEngine(fake_client(ImagesAPI(IMAGES)))
    assert engine.image_facts("nvcr.io/nvidia/tensorrt:24.12-py3") == ImageFacts(
        BASE_ID, ("nvcr.io/nvidia/tensorrt@sha256:bb",), ""
    )
    local = engine.image_facts("mlorch/base:bookworm")
    assert local == ImageFacts(OTHER_ID, (), "mlorch local base image (bookworm minbase)")
    assert engine.image_facts("absent:1") is None


@pytest.mark.parametrize(
    ("ref", "digest", "bootstrapped"),
    [
        ("nvcr.io/nvidia/tensorrt:24.12-py3", "nvcr.io/nvidia/tensorrt@sha256:bb", False),
        ("mlorch/base:bookworm", OTHER_ID, True),
    ],
)
def test_resolved_base_records_where_it_came_from(
    ref: str, digest: str, bootstrapped: bool
) -> None:
    engine = DockerEngine(fake_client(ImagesAPI(IMAGES)))
    base = resolve_base_image(engine, get_backend("reference"), Device.CPU, ref, Terminal())
    assert (base.ref, base.digest, base.bootstrapped, base.fallback) == (
        ref,
        digest,
        bootstrapped,
        False,
    )


def test_the_dell_trt_context_holds_the_loadgen_sdist_and_the_native_sources(
    tmp_path: Path,
) -> None:
    # The image compiles the native issue path in its build stage: the sdist the wheelhouse
    # carries and the C++ shim must be in the build context, and a changed sdist is another
    # image.
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    sdist = wheels / "mlcommons_loadgen-6.0.17.tar.gz"
    sdist.write_bytes(b"sources")
    backend = get_backend("dell-trt")
    house = Wheelhouse(wheels, ("demo==1.0",), "pip-24.0-py3-none-any.whl", backend.native_sources)
    base = BaseImage("mlorch/base:bookworm", BASE_ID, fallback=True)

    def staged() -> tuple[Path, str, str]:
        staging = tmp_path / "staging"
        staging.mkdir(exist_ok=True)
        return stage_context(backend, Device.CPU, base, house, staging)

    context, dockerfile, digest = staged()
    assert (context / "wheelhouse" / sdist.name).read_bytes() == b"sources"
    assert (context / "backends" / "common" / "native" / "mlorch_loadgen.cc").is_file()
    assert f"--sdist /tmp/wheelhouse/{sdist.name}" in dockerfile
    sdist.write_bytes(b"other sources")
    assert staged()[2] != digest
