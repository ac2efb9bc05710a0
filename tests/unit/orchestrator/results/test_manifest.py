"""The typed run record: built by the run, written by one writer, validated when read back."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from contract.sizing import Measurement
from orchestrator.errors import ResultError, disk_full, free_text
from orchestrator.results.manifest import (
    MANIFEST,
    MANIFEST_RESERVE,
    MANIFEST_VERSION,
    RESERVE_MIN_BYTES,
    AuditRecord,
    ImageRecord,
    RunManifest,
    SizingRecord,
    TestRecord,
    read_manifest,
)
from tests.support.report_fixtures import GOLDEN_RUNS, RUN_A


def _manifest(tmp_path: Path) -> RunManifest:
    return RunManifest(run_id="r1", run_dir=tmp_path, mlorch_version="0.1.0", spec={}, host={})


def test_written_record_reads_back_equal(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.tests.append(
        TestRecord(scenario="Offline", mode="PerformanceOnly", dir="r/Offline/performance",
                   status="ok", loadgen_seconds=1.5, result={"valid": True})
    )  # fmt: skip
    manifest.compliance.append(
        AuditRecord(scenario="Offline", test="TEST04", status="skipped", reasons=["off"])
    )
    manifest.write()
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert "run_dir" not in data  # where it lives is not part of the file
    assert data["manifest_version"] == MANIFEST_VERSION
    assert RunManifest.read(tmp_path) == manifest


def test_a_record_from_an_older_mlorch_is_read(tmp_path: Path) -> None:
    """Golden runs were written before the record was typed (no version, sizing, probes)."""
    record = read_manifest(GOLDEN_RUNS / RUN_A)
    assert record["tests"]
    assert record["sizing"] == {}
    assert record["manifest_version"] == MANIFEST_VERSION


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"status": "halfway"}, "status"),
        ({"tests": [{"scenario": "Offline"}]}, "tests.0.mode"),
        ({"tests": [{"scenario": "Offline", "mode": "PerformanceOnly", "dir": "x",
                     "status": "ok", "colour": "blue"}]}, "tests.0.colour"),
        ({"surprise": 1}, "surprise"),
    ],
)  # fmt: skip
def test_a_damaged_record_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    manifest = _manifest(tmp_path)
    manifest.write()
    data = {**json.loads((tmp_path / MANIFEST).read_text()), **change}
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ResultError, match=f"not a run record this mlorch reads: {named}"):
        RunManifest.read(tmp_path)


def test_a_record_from_a_newer_mlorch_is_refused(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write()
    data = {**json.loads((tmp_path / MANIFEST).read_text()), "manifest_version": 99}
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ResultError, match="written by a newer mlorch"):
        RunManifest.read(tmp_path)


def test_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{half")
    with pytest.raises(ResultError, match="cannot read"):
        read_manifest(tmp_path)


# --- a disk that fills during the run ------------------------------------------------------------


def _enospc_once(monkeypatch: pytest.MonkeyPatch, filled: list[int]) -> None:
    """The first manifest write meets a full disk, as it would with the reserve's room taken."""
    import orchestrator.results.manifest as manifest_module

    real = manifest_module.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if not filled:
            filled.append(1)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(manifest_module, "atomic_write_bytes", write)


def test_the_manifest_keeps_room_for_its_last_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _manifest(tmp_path)
    manifest.write()
    reserve = tmp_path / MANIFEST_RESERVE
    assert reserve.stat().st_size >= RESERVE_MIN_BYTES
    manifest.status = "failed"
    manifest.error = "no space left on device"
    filled: list[int] = []
    _enospc_once(monkeypatch, filled)
    manifest.write()  # gives up the reserve, then writes
    assert filled == [1]
    assert not reserve.exists()
    assert RunManifest.read(tmp_path).status == "failed"
    manifest.release_reserve()  # nothing left to release: no error


def _fallocate_fails(monkeypatch: pytest.MonkeyPatch, code: int) -> list[int]:
    """os.posix_fallocate as a filesystem without it (EOPNOTSUPP) or a full one answers."""
    import orchestrator.results.manifest as manifest_module

    calls: list[int] = []

    def refuse(fd: int, offset: int, length: int) -> None:
        calls.append(length)
        raise OSError(code, "refused")

    monkeypatch.setattr(manifest_module.os, "posix_fallocate", refuse)
    return calls


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL])
def test_a_filesystem_without_fallocate_gets_a_reserve_of_written_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    calls = _fallocate_fails(monkeypatch, code)
    manifest = _manifest(tmp_path)
    manifest.write()
    reserve = tmp_path / MANIFEST_RESERVE
    assert calls == [RESERVE_MIN_BYTES]
    assert reserve.stat().st_size == RESERVE_MIN_BYTES
    assert reserve.stat().st_blocks * 512 >= RESERVE_MIN_BYTES  # real blocks, not a hole
    assert reserve.read_bytes() == bytes(RESERVE_MIN_BYTES)
    manifest.write()  # already big enough: not written again
    assert calls == [RESERVE_MIN_BYTES]
    # and the reserve does its job when the disk fills
    manifest.status = "failed"
    _enospc_once(monkeypatch, [])
    manifest.write()
    assert RunManifest.read(tmp_path).status == "failed"


def test_a_disk_too_full_for_the_reserve_still_writes_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No room for the reserve at all (ENOSPC from fallocate): best effort, the manifest is
    # written and the run goes on; only a later full disk finds no room kept.
    _fallocate_fails(monkeypatch, errno.ENOSPC)
    manifest = _manifest(tmp_path)
    manifest.write()
    assert RunManifest.read(tmp_path).status == "running"
    reserve = tmp_path / MANIFEST_RESERVE
    assert not reserve.is_file() or reserve.stat().st_size < RESERVE_MIN_BYTES


def test_without_a_reserve_a_full_disk_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _manifest(tmp_path)
    _enospc_once(monkeypatch, [])
    with pytest.raises(OSError, match="No space left"):
        manifest.write()


def test_a_full_disk_names_the_folder_and_its_free_space(tmp_path: Path) -> None:
    error = disk_full(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.csv")))
    assert error is not None
    assert error.exit_code == 9
    assert f"writing {tmp_path / 'a.csv'}: {tmp_path} has " in error.message
    assert error.message.endswith(" free")
    assert disk_full(OSError(errno.EACCES, "Permission denied", "x")) is None
    assert free_text(tmp_path / "not" / "yet") == free_text(tmp_path)  # nearest existing parent


def test_the_image_and_sizing_sections_are_typed_and_read_back(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    assert manifest.to_dict()["image"] is None  # not built yet
    manifest.image = ImageRecord(tag="mlorch/x:1", id="sha256:" + "a" * 64, pip_freeze=["a==1"])
    manifest.sizing = {
        "Server": SizingRecord(
            key="server_target_qps", value=42.0, source="tuned", cache_key="k",
            measurement=Measurement("Server", 8, 8, 0.1, 80.0, latency_ms=12.0),
            bracket=(42.0, 44.0),
        )
    }  # fmt: skip
    manifest.write()
    back = RunManifest.read(tmp_path)
    assert back.image is not None
    assert back.image.id == "sha256:" + "a" * 64
    assert back.sizing["Server"].measurement == manifest.sizing["Server"].measurement
    assert back.sizing["Server"].bracket == (42.0, 44.0)
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert data["sizing"]["Server"]["measurement"]["latency_ms"] == 12.0


def test_an_older_manifests_empty_image_reads_as_none(tmp_path: Path) -> None:
    data = _manifest(tmp_path).to_dict()
    (tmp_path / MANIFEST).write_text(json.dumps({**data, "image": {}}))
    assert RunManifest.read(tmp_path).image is None


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("image", {"tag": "x", "colour": "blue"}),  # a key no mlorch wrote
        ("sizing", {"Offline": {"key": "offline_expected_qps", "value": "fast"}}),
        ("sizing", {"Server": {"key": "k", "value": 1.0, "source": "s", "cache_key": "c",
                               "measurement": {"scenario": "Server", "samples": 1, "queries": 1,
                                               "seconds": 1.0, "samples_per_second": -5.0}}}),
    ],
)  # fmt: skip
def test_a_damaged_image_or_sizing_section_is_refused_by_name(
    tmp_path: Path, section: str, value: object
) -> None:
    data = _manifest(tmp_path).to_dict()
    (tmp_path / MANIFEST).write_text(json.dumps({**data, section: value}))
    with pytest.raises(ResultError, match=f"not a run record this mlorch reads: {section}"):
        RunManifest.read(tmp_path)
