"""Up-front check of an ImageNet-layout dataset: every val_map line and every listed image.

Standard library only: the host runs it before any container starts. Images are judged by their
headers (the first few KiB and the last 4 KiB of each file), not decoded, so 50 000 images take
seconds. What the headers cannot show (a damaged Huffman table, say) is caught when `prepare`
decodes the image and is reported in the same terms.

Accepted: JPEG (baseline, progressive; grey, YCbCr, CMYK/YCCK) and PNG, whatever the file is
named, since OpenCV decodes by content (ImageNet's training set has PNG and CMYK data named
.JPEG). A misnamed file is a note, not a problem. Everything else is one problem per val_map
line, the first found, in the order of KINDS. A path listed twice is a problem on its later lines
(it would count one image twice); its first line is kept.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from contract.layout import (
    BAD_LABEL,
    BAD_LINE,
    VAL_MAP,
    ImageEntry,
    ValMapLineError,
    parse_val_map_line,
)

ESCAPING = "escaping path"
MISSING = "missing"
DUPLICATE = "duplicate"
UNREADABLE = "unreadable"
ZERO_BYTE = "zero-byte"
UNDECODABLE = "undecodable"
NOTE = "note"  # accepted, worth saying (PNG data named .JPEG)
KINDS = (BAD_LINE, BAD_LABEL, ESCAPING, MISSING, DUPLICATE, UNREADABLE, ZERO_BYTE, UNDECODABLE)

MAX_SIDE = 30_000  # beyond this a decoded image needs gigabytes; no real photo is that large
MAX_ASPECT = 1_000  # resizing the short side to 256 would make the long one absurd
HEAD_BYTES = 4096  # one read covers the headers of most JPEGs; longer ones are walked by offset
TAIL_BYTES = 4096  # the end-of-image marker must lie within this much of the end
WORKERS = 8  # header reads wait on the disk (or NFS) more than on the CPU
CHUNK = 256  # images a worker judges per task (one future per image costs more than a check)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# SOFn: every C0-CF marker except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_EXTENSIONS = {"jpeg": (".jpeg", ".jpg", ".jpe"), "png": (".png",)}


@dataclass(frozen=True)
class Problem:
    """One val_map line that cannot be used, or an accepted oddity when it is a note."""

    kind: str
    line: int | None  # val_map line number; None when not known (a late decode failure)
    path: str  # the listed relative path, or the line's text for a bad line
    reason: str

    def describe(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path} — {self.reason}"


@dataclass(frozen=True)
class ListedImage:
    line: int
    entry: ImageEntry


@dataclass(frozen=True)
class DatasetReport:
    root: Path
    lines: int  # non-blank val_map lines
    images: tuple[ListedImage, ...]  # the usable ones, in val_map order
    problems: tuple[Problem, ...]
    notes: tuple[Problem, ...]

    @property
    def entries(self) -> list[ImageEntry]:
        return [image.entry for image in self.images]


class _ImageFault(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _undecodable(reason: str) -> _ImageFault:
    return _ImageFault(UNDECODABLE, reason)


class _Reader:
    """Random access to one open file, served from its first HEAD_BYTES when possible."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.head = os.pread(fd, HEAD_BYTES, 0)

    def at(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        return os.pread(self.fd, length, offset)

    def tail(self) -> bytes:
        start = max(0, self.size - TAIL_BYTES)
        return self.at(start, self.size - start)


def _check_dimensions(width: int, height: int) -> None:
    short, long = sorted((width, height))
    if short < 1 or long > MAX_SIDE or long > short * MAX_ASPECT:
        raise _undecodable(
            f"absurd dimensions {width}x{height} "
            f"(accepted: 1-{MAX_SIDE} px a side, aspect ratio up to {MAX_ASPECT})"
        )


def _jpeg_frame(reader: _Reader) -> tuple[int, int, int]:
    """Walk the marker segments from SOI to the first SOFn: (width, height, components)."""
    pos = 2
    while True:
        marker = reader.at(pos, 2)
        if len(marker) < 2:
            raise _undecodable(f"truncated: the file ends at byte {reader.size}, before any frame")
        if marker[0] != 0xFF:
            raise _undecodable(f"corrupt header: no marker at byte {pos} (found {marker.hex()})")
        code = marker[1]
        if code == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if code in _STANDALONE:
            continue
        if code in (0xD8, 0xD9, 0xDA):
            name = {0xD8: "a second start of image", 0xD9: "end of image", 0xDA: "a scan"}[code]
            raise _undecodable(f"corrupt header: {name} at byte {pos - 2} before any frame")
        raw = reader.at(pos, 2)
        length = int.from_bytes(raw, "big") if len(raw) == 2 else 0
        if len(raw) < 2 or pos + length > reader.size:
            raise _undecodable(
                f"truncated: segment FF{code:02X} at byte {pos - 2} runs past the end of the "
                f"file ({reader.size} bytes)"
            )
        if length < 2:
            raise _undecodable(f"corrupt header: segment FF{code:02X} has length {length}")
        if code in _SOF_MARKERS:
            frame = reader.at(pos + 2, 6)
            components = frame[5] if len(frame) == 6 else 0
            if length < 8 + 3 * components or components == 0:
                raise _undecodable(f"corrupt header: frame segment of {length} bytes")
            if components not in (1, 3, 4):
                raise _undecodable(f"{components} colour components (decoders take 1, 3 or 4)")
            height = int.from_bytes(frame[1:3], "big")
            width = int.from_bytes(frame[3:5], "big")
            return width, height, components
        pos += length


def _check_jpeg(reader: _Reader) -> None:
    width, height, _ = _jpeg_frame(reader)
    _check_dimensions(width, height)
    if b"\xff\xd9" not in reader.tail():
        raise _undecodable(
            f"truncated: no end-of-image marker (FF D9) in the last {TAIL_BYTES} bytes"
        )


def _check_png(reader: _Reader) -> None:
    ihdr = reader.at(8, 25)
    if len(ihdr) < 25:
        raise _undecodable(f"truncated: the file ends at byte {reader.size}, inside the header")
    if ihdr[0:8] != b"\x00\x00\x00\x0dIHDR":
        raise _undecodable("corrupt header: the first chunk is not a 13-byte IHDR")
    width = int.from_bytes(ihdr[8:12], "big")
    height = int.from_bytes(ihdr[12:16], "big")
    depth, colour = ihdr[16], ihdr[17]
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise _undecodable(f"corrupt header: bit depth {depth} with colour type {colour}")
    _check_dimensions(width, height)
    if b"IEND" not in reader.tail():
        raise _undecodable(f"truncated: no IEND chunk in the last {TAIL_BYTES} bytes")


def _format_of(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    return None


def _other_format(head: bytes) -> str:
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF data"
    if head.startswith(b"BM"):
        return "BMP data"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP data"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF data"
    return f"starts with {head[:8].hex(' ')}"


def _check_image(path: str, info: os.stat_result) -> str | None:
    """Header check of one file (`info`: its stat); raises _ImageFault, returns a note or None."""
    if stat.S_ISDIR(info.st_mode):
        raise _ImageFault(MISSING, "is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise _ImageFault(MISSING, "not a regular file")
    if info.st_size == 0:
        raise _ImageFault(ZERO_BYTE, "empty file (0 bytes)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _ImageFault(UNREADABLE, exc.strerror or str(exc)) from None
    try:
        reader = _Reader(fd, info.st_size)
        fmt = _format_of(reader.head)
        if fmt == "jpeg":
            _check_jpeg(reader)
        elif fmt == "png":
            _check_png(reader)
        else:
            raise _undecodable(f"not a JPEG or PNG image ({_other_format(reader.head)})")
    except OSError as exc:
        raise _ImageFault(UNREADABLE, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if not path.lower().endswith(_EXTENSIONS[fmt]):
        return f"{fmt.upper()} data named {os.path.splitext(path)[1] or 'without extension'}"
    return None


class _Judge:
    """Judges listed images under one dataset root; resolves each folder only once."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.inside = root.rstrip(os.sep) + os.sep
        self.folders: dict[str, str] = {}

    def _resolve(self, path: str) -> tuple[str, os.stat_result | None]:
        """The real path of `path` and its stat (None when it does not exist).

        Only the folder goes through realpath (once per folder); the file itself needs one lstat
        unless it is a symlink, which keeps 50 000 images in one folder cheap.
        """
        folder, name = os.path.split(path)
        real_folder = self.folders.get(folder)
        if real_folder is None:
            real_folder = self.folders[folder] = os.path.realpath(folder)
        real = os.path.join(real_folder, name)
        if name in ("", ".", ".."):
            real = os.path.realpath(real)
        else:
            try:
                info = os.lstat(real)
            except FileNotFoundError:
                return real, None
            if not stat.S_ISLNK(info.st_mode):
                return real, info
            real = os.path.realpath(real)
        try:
            return real, os.stat(real)
        except FileNotFoundError:
            return real, None

    def __call__(self, listed: ListedImage) -> Problem | str | None:
        """A Problem, a note (str) or None for one listed image whose line parsed."""
        relpath = listed.entry.relpath
        if os.path.isabs(relpath):
            return Problem(ESCAPING, listed.line, relpath, "absolute path (must be relative)")
        try:
            real, info = self._resolve(os.path.join(self.root, relpath))
        except (OSError, ValueError) as exc:
            return Problem(UNREADABLE, listed.line, relpath, str(exc))
        if real != self.root and not real.startswith(self.inside):
            return Problem(
                ESCAPING, listed.line, relpath, f"resolves outside the dataset folder (to {real})"
            )
        if info is None:
            return Problem(MISSING, listed.line, relpath, "no such file")
        try:
            return _check_image(real, info)
        except _ImageFault as fault:
            return Problem(fault.kind, listed.line, relpath, fault.reason)


def check_dataset(dataset: Path, workers: int = WORKERS) -> DatasetReport:
    """Check every line of `dataset`/val_map.txt and the header of every listed image.

    Raises OSError when val_map.txt itself cannot be read.
    """
    root = os.path.realpath(dataset)
    raw = (dataset / VAL_MAP).read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
    problems: list[Problem] = []
    listed: list[ListedImage] = []
    first_line: dict[str, int] = {}
    count = 0
    for number, raw_line in enumerate(raw.split(b"\n"), 1):
        try:
            text = raw_line.decode()
        except UnicodeDecodeError:
            count += 1
            problems.append(Problem(BAD_LINE, number, repr(raw_line)[2:-1], "not UTF-8 text"))
            continue
        try:
            entry = parse_val_map_line(text)
        except ValMapLineError as exc:
            count += 1
            problems.append(Problem(exc.kind, number, text.strip(), exc.reason))
            continue
        if entry is None:
            continue
        count += 1
        key = os.path.normpath(entry.relpath)
        if key in first_line:
            problems.append(
                Problem(DUPLICATE, number, entry.relpath, f"also listed on line {first_line[key]}")
            )
            continue
        first_line[key] = number
        listed.append(ListedImage(number, entry))
    judge = _Judge(root)
    chunks = [listed[at : at + CHUNK] for at in range(0, len(listed), CHUNK)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        verdicts = [v for chunk in pool.map(lambda c: [judge(i) for i in c], chunks) for v in chunk]
    images: list[ListedImage] = []
    notes: list[Problem] = []
    for item, verdict in zip(listed, verdicts, strict=True):
        if isinstance(verdict, Problem):
            problems.append(verdict)
            continue
        images.append(item)
        if verdict is not None:
            notes.append(Problem(NOTE, item.line, item.entry.relpath, verdict))
    problems.sort(key=lambda p: p.line or 0)
    return DatasetReport(Path(root), count, tuple(images), tuple(problems), tuple(notes))


def count_by_kind(problems: Iterable[Problem]) -> dict[str, int]:
    """Problems per kind, in the order of KINDS (unknown kinds last)."""
    counts = Counter(p.kind for p in problems)
    order = {kind: index for index, kind in enumerate(KINDS)}
    return dict(sorted(counts.items(), key=lambda item: order.get(item[0], len(KINDS))))


def summary_counts(problems: Iterable[Problem]) -> str:
    """`2 missing, 1 escaping path, 3 undecodable`."""
    return ", ".join(f"{n} {kind}" for kind, n in count_by_kind(problems).items())


def summary_details(problems: Iterable[Problem], per_kind: int = 5) -> str:
    """Per kind: its count and its first `per_kind` lines with file and reason."""
    problems = list(problems)
    lines = []
    for kind, number in count_by_kind(problems).items():
        lines.append(f"{kind}: {number}")
        shown = [p for p in problems if p.kind == kind][:per_kind]
        lines.extend(f"  {p.describe()}" for p in shown)
        if number > len(shown):
            lines.append(f"  … and {number - len(shown)} more")
    return "\n".join(lines)


def filtered_val_map(entries: Iterable[ImageEntry]) -> str:
    """val_map.txt text listing only `entries` (what `--skip-bad` runs on)."""
    return "".join(f"{entry.relpath} {entry.label}\n" for entry in entries)
