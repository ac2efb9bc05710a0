"""Official model download: md5 verification and a clear error offline (local HTTP only)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.assets import model as model_mod
from orchestrator.errors import AssetError


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    payload = b"not really an onnx file" * 1000
    (tmp_path / "resnet50_v1.onnx").write_bytes(payload)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/resnet50_v1.onnx", payload
    finally:
        server.shutdown()


def _source(url: str, md5: str) -> tuple[model_mod.ModelSource, ...]:
    return (model_mod.ModelSource(11, url, md5),)


def test_download_verifies_md5(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served: tuple[str, bytes]
) -> None:
    url, payload = served
    md5 = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    monkeypatch.setattr(model_mod, "OFFICIAL_MODELS", _source(url, md5))
    path = model_mod.download_model(tmp_path / "dest")
    assert path.read_bytes() == payload
    assert model_mod.download_model(tmp_path / "dest") == path  # verified copy reused


def test_md5_mismatch_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served: tuple[str, bytes]
) -> None:
    url, _ = served
    monkeypatch.setattr(model_mod, "OFFICIAL_MODELS", _source(url, "0" * 32))
    with pytest.raises(AssetError, match="md5"):
        model_mod.download_model(tmp_path / "dest")
    assert not list((tmp_path / "dest").iterdir())  # no partial file left


def test_offline_error_names_the_manual_route(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        model_mod, "OFFICIAL_MODELS", _source("http://127.0.0.1:9/resnet50_v1.onnx", "0" * 32)
    )
    with pytest.raises(AssetError, match="cannot download") as info:
        model_mod.download_model(tmp_path / "dest")
    assert "--model PATH" in (info.value.hint or "")
