"""The up-front dataset check on a damaged ImageNet-layout folder of real JPEG/PNG files."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.dataset_check import (
    DUPLICATE,
    ESCAPING,
    MISSING,
    UNDECODABLE,
    DatasetReport,
    check_dataset,
    count_by_kind,
    summary_counts,
    summary_details,
)
from contract.layout import read_val_map
from tests.support.damaged_dataset import (
    EXPECTED,
    DamagedFolder,
    jpeg_bytes,
    make_damaged_dataset,
    picture,
)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[DamagedFolder, DatasetReport]:
    folder = make_damaged_dataset(tmp_path_factory.mktemp("damaged") / "imagenet",
                                  undecodable_late=True)  # fmt: skip
    return folder, check_dataset(folder.root)


def _reasons(report: DatasetReport, kind: str) -> dict[str, str]:
    return {p.path: p.reason for p in report.problems if p.kind == kind}


def test_every_kind_is_found_and_counted(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    _, report = damaged
    assert count_by_kind(report.problems) == EXPECTED
    assert report.lines == 26
    assert summary_counts(report.problems) == (
        "1 bad line, 3 bad label, 2 escaping path, 1 missing, 1 duplicate, 1 zero-byte, "
        "4 undecodable"
    )


def test_usable_images_pass(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    folder, report = damaged
    # Greyscale, CMYK, progressive, PNG named .JPEG, 1x1, EXIF-rotated: OpenCV decodes them all.
    # The garbage Huffman table is invisible to a header check (prepare finds it).
    assert {e.relpath for e in report.entries} == {*folder.good, *folder.late}
    assert all(e.label == 7 for e in report.entries if e.relpath in folder.good)
    for relpath in folder.good:
        assert cv2.imread(str(folder.root / relpath)) is not None, relpath


def test_labels_and_lines(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    _, report = damaged
    assert _reasons(report, "bad label") == {
        "val/label_1000.JPEG 1000": "label 1000 is outside 0-999",
        "val/label_minus.JPEG -1": "label -1 is outside 0-999",  # its CRLF is stripped
        "val/label_cat.JPEG cat": "label 'cat' is not an integer",
    }
    assert _reasons(report, "bad line") == {
        "val/fields.JPEG 12 extra": "expected '<path> <label>', got 3 fields"
    }


def test_escaping_is_not_missing(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    folder, report = damaged
    escaping = _reasons(report, ESCAPING)
    outside = os.path.realpath(folder.root.parent / "imagenet-outside.JPEG")
    assert escaping == {
        "../imagenet-outside.JPEG": f"resolves outside the dataset folder (to {outside})",
        "val/link.JPEG": f"resolves outside the dataset folder (to {outside})",
    }
    assert _reasons(report, MISSING) == {"val/missing.JPEG": "no such file"}


def test_damaged_images(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    _, report = damaged
    undecodable = _reasons(report, UNDECODABLE)
    assert undecodable["val/truncated_tail.JPEG"].startswith("truncated: no end-of-image marker")
    assert undecodable["val/truncated_head.JPEG"].startswith("truncated: segment FFDB")
    assert undecodable["val/huge.JPEG"].startswith("absurd dimensions 40000x40000")
    assert undecodable["val/notes.JPEG"].startswith("not a JPEG or PNG image (starts with 3c 68")
    assert _reasons(report, "zero-byte") == {"val/zero.JPEG": "empty file (0 bytes)"}
    assert _reasons(report, DUPLICATE) == {"val/colour_3.JPEG": "also listed on line 9"}


def test_png_named_jpeg_is_a_note(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    _, report = damaged
    assert [(n.path, n.reason) for n in report.notes] == [
        ("val/png_named.JPEG", "PNG data named .JPEG")
    ]


def test_summary_lists_the_first_lines_of_each_kind(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    (root / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "val" / "ok.JPEG"), picture(64, 80))
    lines = ["val/ok.JPEG 1"] + [f"val/gone_{i}.JPEG 1" for i in range(8)] + ["val/ok.JPEG 2"]
    (root / "val_map.txt").write_text("\r\n".join(lines) + "\r\n")
    report = check_dataset(root)
    details = summary_details(report.problems, per_kind=5).splitlines()
    assert details == [
        "missing: 8",
        *(f"  line {i + 2}: val/gone_{i}.JPEG — no such file" for i in range(5)),
        "  … and 3 more",
        "duplicate: 1",
        "  line 10: val/ok.JPEG — also listed on line 1",
    ]
    assert [(e.relpath, e.label) for e in report.entries] == [("val/ok.JPEG", 1)]


def test_path_forms(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    (root / "val" / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "val" / "a.JPEG"), picture(64, 80))
    (root / "val" / "inside.JPEG").symlink_to(root / "val" / "a.JPEG")
    os.mkfifo(root / "val" / "fifo.JPEG")  # must not block the check
    (root / "val_map.txt").write_bytes(
        b"\xef\xbb\xbfval/a.JPEG 1\n"  # a byte-order mark before the first line
        b"./val/a.JPEG 1\n"  # the same file spelt differently
        b"val/inside.JPEG 2\n"  # a symlink that stays inside is fine
        b"val/sub/../a.JPEG 3\n"
        b"/etc/hostname 4\n"
        b"val/sub 5\n"
        b"val/\xff.JPEG 6\n"
        b"   \n"
        b"val/fifo.JPEG 7\n"
    )
    report = check_dataset(root)
    kinds = [(p.line, p.kind, p.reason) for p in report.problems]
    assert kinds == [
        (2, DUPLICATE, "also listed on line 1"),
        (4, DUPLICATE, "also listed on line 1"),
        (5, ESCAPING, "absolute path (must be relative)"),
        (6, MISSING, "is a directory, not an image"),
        (7, "bad line", "not UTF-8 text"),
        (9, MISSING, "not a regular file"),
    ]
    assert [e.relpath for e in report.entries] == ["val/a.JPEG", "val/inside.JPEG"]
    assert report.lines == 8


def _png(width: int, height: int, colour: int = 2, depth: int = 8) -> bytes:
    ok, data = cv2.imencode(".png", picture(8, 8))
    assert ok
    png = bytes(data.tobytes())
    return png[:16] + struct.pack(">IIBB", width, height, depth, colour) + png[26:]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("wide.JPEG", "jpeg:2000x1", "absurd dimensions 2000x1"),
        ("zero_height.JPEG", "jpeg:100x0", "absurd dimensions 100x0"),
        ("big.png", _png(40_000, 10), "absurd dimensions 40000x10"),
        ("depth.png", _png(10, 10, colour=2, depth=4), "corrupt header: bit depth 4"),
        ("short.png", b"\x89PNG\r\n\x1a\n\x00\x00", "truncated: the file ends at byte 10"),
        ("anim.gif", b"GIF89a" + bytes(20), "not a JPEG or PNG image (GIF data)"),
        ("pic.bmp", b"BM" + bytes(40), "not a JPEG or PNG image (BMP data)"),
        ("soi.JPEG", b"\xff\xd8", "truncated: the file ends at byte 2, before any frame"),
        ("scan.JPEG", b"\xff\xd8\xff\xda\x00\x02\xff\xd9", "corrupt header: a scan at byte 2"),
        ("junk.JPEG", b"\xff\xd8\x00\x00\xff\xd9", "corrupt header: no marker at byte 2"),
    ],
)
def test_header_faults(tmp_path: Path, name: str, data: bytes | str, reason: str) -> None:
    root = tmp_path / "imagenet"
    root.mkdir()
    if isinstance(data, str):
        width, height = (int(v) for v in data.split(":")[1].split("x"))
        encoded = jpeg_bytes(picture(16, 16))
        at = encoded.index(b"\xff\xc0")
        data = encoded[: at + 5] + struct.pack(">HH", height, width) + encoded[at + 9 :]
    (root / name).write_bytes(data)
    (root / "val_map.txt").write_text(f"{name} 0\n")
    report = check_dataset(root)
    assert [p.kind for p in report.problems] == [UNDECODABLE]
    assert report.problems[0].reason.startswith(reason), report.problems[0].reason


def test_segments_beyond_the_first_read_are_walked(tmp_path: Path) -> None:
    """A 60 KB comment before the frame: the walk seeks past the first 4 KiB read."""
    root = tmp_path / "imagenet"
    root.mkdir()
    jpeg = jpeg_bytes(picture(50, 70))
    comment = b"\xff\xfe" + struct.pack(">H", 60_002) + bytes(60_000)
    (root / "a.jpg").write_bytes(jpeg[:2] + comment + jpeg[2:])
    (root / "b.jpg").write_bytes(jpeg[:2] + comment[:30_000])
    (root / "val_map.txt").write_text("a.jpg 0\nb.jpg 1\n")
    report = check_dataset(root)
    assert [e.relpath for e in report.entries] == ["a.jpg"]
    assert report.problems[0].reason.startswith("truncated: segment FFFE at byte 2")


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    root = tmp_path / "imagenet"
    root.mkdir()
    cv2.imwrite(str(root / "a.JPEG"), picture(32, 32))
    (root / "a.JPEG").chmod(0)
    (root / "val_map.txt").write_text("a.JPEG 0\n")
    assert [p.kind for p in check_dataset(root).problems] == ["unreadable"]


def test_strict_reader_rejects_out_of_range_labels(tmp_path: Path) -> None:
    (tmp_path / "val_map.txt").write_bytes(b"\xef\xbb\xbfa.JPEG 1\r\nb.JPEG 1000\r\n")
    with pytest.raises(ValueError, match=r"val_map.txt:2: label 1000 is outside 0-999"):
        read_val_map(tmp_path)
    (tmp_path / "other.txt").write_bytes(b"\xef\xbb\xbfa.JPEG 999\r\n")
    assert [(e.relpath, e.label) for e in read_val_map(tmp_path, tmp_path / "other.txt")] == [
        ("a.JPEG", 999)
    ]


@pytest.mark.subprocess
def test_the_check_is_standard_library_only() -> None:
    code = (
        "import sys, contract.dataset_check; "
        "heavy = {'cv2', 'numpy', 'PIL', 'onnxruntime'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _opencv_decodes(path: Path) -> bool:
    try:
        return cv2.imread(str(path)) is not None
    except cv2.error:  # e.g. more pixels than CV_IO_MAX_IMAGE_PIXELS
        return False


def test_header_check_agrees_with_opencv(damaged: tuple[DamagedFolder, DatasetReport]) -> None:
    """What the check rejects as undecodable OpenCV either cannot decode or decodes damaged."""
    folder, report = damaged
    rejected = [p.path for p in report.problems if p.kind in (UNDECODABLE, "zero-byte")]
    assert len(rejected) == 5
    for relpath in rejected:
        if relpath != "val/truncated_tail.JPEG":
            assert not _opencv_decodes(folder.root / relpath), relpath
    # A JPEG cut in half still "decodes" (libjpeg fills the rest with grey): the check refuses
    # it because the picture is damaged, not because OpenCV would fail.
    half = cv2.imread(str(folder.root / "val/truncated_tail.JPEG"))
    assert half is not None
    assert np.all(half[-1] == half[-1, 0])
    for relpath in (*folder.good, *(p.path for p in report.notes)):
        assert _opencv_decodes(folder.root / relpath), relpath
