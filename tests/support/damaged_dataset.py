"""A damaged ImageNet-layout folder, made with real JPEG/PNG files (OpenCV) for the tests.

Usable images: ordinary colour JPEGs (copies of the synthetic dataset's when given, so their
labels are the synthetic model's answers), greyscale, CMYK, progressive, PNG data named .JPEG,
1x1 and EXIF-rotated JPEGs. Damaged: truncated (tail and header), zero-byte, huge dimensions in
the header, not an image, missing, escaping via `../` and via a symlink, labels 1000, -1 and
'cat', a line with 3 fields, a duplicate. Some lines end in CRLF. `undecodable_late` adds a JPEG
whose headers are fine but whose Huffman table is garbage: only decoding finds it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Problem kinds the up-front check must find in the folder (undecodable_late excluded).
EXPECTED = {
    "bad line": 1,
    "bad label": 3,
    "escaping path": 2,
    "missing": 1,
    "duplicate": 1,
    "zero-byte": 1,
    "undecodable": 4,
}


@dataclass
class DamagedFolder:
    root: Path
    good: list[str] = field(default_factory=list)  # usable relpaths, in val_map order
    copied: int = 0  # how many of them are synthetic copies (labelled by the synthetic model)
    late: list[str] = field(default_factory=list)  # header fine, decoding fails


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth BGR picture (decodes to something a model can look at)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return bytes(data.tobytes())


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding one Orientation tag right after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def with_dimensions(jpeg: bytes, width: int, height: int) -> bytes:
    """The same file with other dimensions written into its SOF0 frame header."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def with_garbage_huffman_table(jpeg: bytes) -> bytes:
    """Headers intact (lengths, SOF, EOI) but the first DHT's code counts are impossible."""
    at = jpeg.index(b"\xff\xc4")
    return jpeg[: at + 5] + b"\xff" * 16 + jpeg[at + 21 :]


def cmyk_jpeg(
    width: int = 32, height: int = 24, cmyk: tuple[int, ...] = (100, 150, 170, 80)
) -> bytes:
    """A baseline 4-component (Adobe CMYK) JPEG of one flat colour, written out by hand:
    OpenCV cannot encode CMYK. Every block carries only its DC term (quantiser 8, so the DC
    difference is the sample offset from 128); one 3-bit DC code per category 0-6, EOB = '0'."""

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    bits: list[str] = []
    previous = [0, 0, 0, 0]
    for _ in range(((width + 7) // 8) * ((height + 7) // 8)):
        for component, value in enumerate(cmyk):
            diff, previous[component] = value - 128 - previous[component], value - 128
            category = abs(diff).bit_length()
            assert category <= 6
            extra = diff if diff >= 0 else diff + (1 << category) - 1
            bits.append(format(category, "03b"))
            bits.append(format(extra, f"0{category}b") if category else "")
            bits.append("0")  # end of block
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytes(int(stream[i : i + 8], 2) for i in range(0, len(stream), 8))
    data = data.replace(b"\xff", b"\xff\x00")
    counts = bytes([0, 0, 7] + [0] * 13)
    return b"".join(
        (
            b"\xff\xd8",
            segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0)),  # transform 0: CMYK
            segment(0xDB, b"\x00" + bytes([8] * 64)),
            segment(
                0xC0,
                struct.pack(">BHHB", 8, height, width, 4)
                + b"".join(bytes([c, 0x11, 0]) for c in (1, 2, 3, 4)),
            ),
            segment(0xC4, b"\x00" + counts + bytes(range(7))),
            segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00"),
            segment(
                0xDA, b"\x04" + b"".join(bytes([c, 0]) for c in (1, 2, 3, 4)) + b"\x00\x3f\x00"
            ),
            data,
            b"\xff\xd9",
        )
    )


def make_damaged_dataset(
    root: Path,
    source: Path | None = None,
    *,
    copies: int = 6,
    undecodable_late: bool = False,
    images: str = "val",
) -> DamagedFolder:
    """Write the folder under `root` (and one file next to it, for the escaping path).

    `source`: a dataset (the synthetic one) whose first `copies` images and labels are copied.
    `images`: the subfolder of the images (a unique name gives unique cache keys).
    """
    val = root / images
    val.mkdir(parents=True)
    folder = DamagedFolder(root)
    lines: list[str] = []

    def good(name: str, data: bytes, label: int = 7, crlf: bool = False) -> None:
        (val / name).write_bytes(data)
        lines.append(f"{images}/{name} {label}" + ("\r" if crlf else ""))
        folder.good.append(f"{images}/{name}")

    if source is not None:
        listed = (source / "val_map.txt").read_text().splitlines()[:copies]
        for line in listed:
            relpath, label = line.split()
            good(Path(relpath).name, (source / relpath).read_bytes(), int(label))
        folder.copied = len(listed)
    else:
        for i in range(copies):
            good(f"colour_{i}.JPEG", jpeg_bytes(picture(300 + i, 400, seed=i)))
    colour = jpeg_bytes(picture(375, 500, seed=99))
    good("grey.JPEG", jpeg_bytes(cv2.cvtColor(picture(240, 320), cv2.COLOR_BGR2GRAY)), crlf=True)
    good("cmyk.JPEG", cmyk_jpeg())
    good("progressive.JPEG", jpeg_bytes(picture(260, 300, 3), cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    ok, png = cv2.imencode(".png", picture(200, 260, seed=5))
    assert ok
    good("png_named.JPEG", bytes(png.tobytes()), crlf=True)
    good("tiny.JPEG", jpeg_bytes(np.full((1, 1, 3), 90, np.uint8)))
    good("exif_rotated.JPEG", with_exif_orientation(colour, 6))

    bad_lines: list[str] = []

    def bad(line: str, crlf: bool = False) -> None:
        bad_lines.append(line + ("\r" if crlf else ""))

    (val / "truncated_tail.JPEG").write_bytes(colour[: len(colour) // 2])
    bad(f"{images}/truncated_tail.JPEG 3")
    (val / "truncated_head.JPEG").write_bytes(colour[:100])
    bad(f"{images}/truncated_head.JPEG 3", crlf=True)
    (val / "zero.JPEG").write_bytes(b"")
    bad(f"{images}/zero.JPEG 4")
    (val / "huge.JPEG").write_bytes(with_dimensions(colour, 40_000, 40_000))
    bad(f"{images}/huge.JPEG 5")
    (val / "notes.JPEG").write_text("<html>not an image</html>\n")
    bad(f"{images}/notes.JPEG 6")
    bad(f"{images}/missing.JPEG 1")
    outside = root.parent / f"{root.name}-outside.JPEG"
    outside.write_bytes(colour)
    bad(f"../{outside.name} 2")
    (val / "link.JPEG").symlink_to(outside)
    bad(f"{images}/link.JPEG 2")
    for name, label in (("label_1000", "1000"), ("label_minus", "-1"), ("label_cat", "cat")):
        (val / f"{name}.JPEG").write_bytes(colour)
        bad(f"{images}/{name}.JPEG {label}", crlf=label == "-1")
    bad(f"{images}/fields.JPEG 12 extra")
    bad(f"{folder.good[3]} 0")  # listed before: a duplicate
    if undecodable_late:
        (val / "bad_huffman.JPEG").write_bytes(with_garbage_huffman_table(colour))
        lines.insert(2, f"{images}/bad_huffman.JPEG 8")
        folder.late.append(f"{images}/bad_huffman.JPEG")
    # Damaged lines between the usable ones, not all at the end (the duplicate stays after its
    # first listing: bad line k goes after good line k).
    mixed: list[str] = []
    for index in range(max(len(lines), len(bad_lines))):
        mixed += lines[index : index + 1] + bad_lines[index : index + 1]
    (root / "val_map.txt").write_bytes(("\n".join(mixed) + "\n").encode())
    return folder
