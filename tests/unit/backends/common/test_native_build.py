"""The native issue path's build script, where no compiler runs: what it records and refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.common.native import build


def test_no_compiler_is_recorded_and_optional_builds_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    out = tmp_path / "native"
    (tmp_path / "mlcommons_loadgen-6.0.17.tar.gz").write_bytes(b"")
    args = ["--sdist", str(tmp_path), "--out", str(out), "--expect-version", "6.0.17"]
    assert build.main([*args, "--optional"]) == 0
    record = json.loads((out / build.RECORD).read_text())
    reason = "no C++ compiler (no-such-compiler-here) in this image"
    assert record == {"built": False, "reason": reason}
    assert not (out / build.LIBRARY).exists()
    assert build.main(args) == build.EXIT_NO_COMPILER


def test_the_sdist_of_the_expected_release_is_required(tmp_path: Path) -> None:
    (tmp_path / "mlcommons_loadgen-6.0.16.tar.gz").write_bytes(b"")
    with pytest.raises(build.BuildError, match=r"no mlcommons_loadgen-6\.0\.17\.tar\.gz"):
        build.find_sdist(tmp_path, "6.0.17")
    assert build.find_sdist(tmp_path, None).name == "mlcommons_loadgen-6.0.16.tar.gz"


def test_the_source_digest_follows_the_sdist_and_the_shim(tmp_path: Path) -> None:
    first = tmp_path / "a.tar.gz"
    first.write_bytes(b"one")
    second = tmp_path / "b.tar.gz"
    second.write_bytes(b"two")
    assert build.source_digest(first) != build.source_digest(second)
    assert build.source_digest(first) == build.source_digest(first)
