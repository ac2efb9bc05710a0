"""The official ResNet50 ONNX model: download with md5 check, and validation of a given file."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contract.resnet50 import INPUT_NAME
from orchestrator.cachelock import cache_lock
from orchestrator.errors import AssetError

MODEL_FILE = "resnet50_v1.onnx"


@dataclass(frozen=True)
class ModelSource:
    opset: int
    url: str
    md5: str


OFFICIAL_MODELS = (
    ModelSource(
        11,
        "https://zenodo.org/record/4735647/files/resnet50_v1.onnx",
        "f6a4da60cd5f084d97efc2c1ddb10beb",
    ),
    ModelSource(
        8,
        "https://zenodo.org/record/2592612/files/resnet50_v1.onnx",
        "a638cf028b5870da29e09ccc2f7182e7",
    ),
)
DOWNLOAD_TIMEOUT_S = 60  # per read
DOWNLOAD_WAIT_S = 1800  # for another mlorch downloading the same file


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def official_source(md5: str) -> ModelSource | None:
    return next((source for source in OFFICIAL_MODELS if source.md5 == md5), None)


def download_model(dest_dir: Path, opset: int = 11) -> Path:
    """Download the official model (verified by md5) into dest_dir; reuse a verified copy."""
    source = next((s for s in OFFICIAL_MODELS if s.opset == opset), None)
    if source is None:
        raise AssetError(
            f"no official ResNet50 model for opset {opset}", hint="use --opset 11 or 8"
        )
    dest = dest_dir / MODEL_FILE
    if dest.is_file() and file_md5(dest) == source.md5:
        return dest
    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]
    with cache_lock("model", key, f"downloading {dest}", None, DOWNLOAD_WAIT_S):
        if dest.is_file() and file_md5(dest) == source.md5:
            return dest  # another mlorch downloaded it while this one waited
        return _download(source, dest)


def _download(source: ModelSource, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    try:
        with (
            urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            partial.open("wb") as handle,
        ):
            while chunk := response.read(1 << 20):
                handle.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise AssetError(
            f"cannot download {source.url}: {getattr(exc, 'reason', exc)}",
            hint=f"offline? copy {MODEL_FILE} (md5 {source.md5}) by hand and pass --model PATH",
        ) from exc
    got = file_md5(partial)
    if got != source.md5:
        partial.unlink(missing_ok=True)
        raise AssetError(
            f"downloaded model md5 {got} != expected {source.md5}", hint="retry the download"
        )
    partial.replace(dest)
    return dest


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    md5: str
    official: bool
    opset: int | None


def validate_model(path: Path) -> ModelInfo:
    """Check the file is a loadable ResNet50-style ONNX; flag it official when its md5 matches."""
    if not path.is_file():
        raise AssetError(
            f"model not found: {path}", hint="pass --model PATH or run `mlorch assets model`"
        )
    md5 = file_md5(path)
    source = official_source(md5)
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise AssetError(
            f"model {path} is not a readable ONNX file (md5 {md5})",
            hint="the file is corrupt or truncated; download it again (`mlorch assets model`)",
        ) from exc
    inputs = [i.name for i in model.graph.input]
    if INPUT_NAME not in inputs:
        raise AssetError(
            f"model {path} has no input '{INPUT_NAME}' (inputs: {inputs})",
            hint="the reference SUT expects the MLPerf resnet50_v1.onnx signature",
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return ModelInfo(path=path, md5=md5, official=source is not None, opset=opset)
