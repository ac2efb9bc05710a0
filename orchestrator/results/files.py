"""Reading what containers wrote, tolerantly: a missing or damaged side file is empty, not fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; {} when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by path relative to it (what a test left)."""
    from contract.digest import file_sha256

    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def known_sha256(path: Path) -> str:
    """sha256 of `path`, computed once per (path, inode, size, mtime): a poll that verifies the
    same files again (campaign status, --wait) only stats them."""
    from contract.digest import file_sha256

    info = path.stat()
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = file_sha256(path)
    return digest


def digests_match(folder: Path, recorded: dict[str, str]) -> str | None:
    """None when every recorded file is in `folder` with its recorded sha256; else why not."""
    if not recorded:
        return "its files were not recorded (a run from an older mlorch)"
    for name, digest in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if known_sha256(path) != digest:
            return f"{name} changed since it was recorded"
    return None
