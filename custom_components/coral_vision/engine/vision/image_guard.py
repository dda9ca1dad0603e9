"""Cheap checks of an encoded image's structure, before Pillow's Python-level parsers see it.

Pillow bounds pixels, but several of its header parsers cost far more than the file's size: a
PNG's iCCP chunks are each inflated to 1 MB, a GIF's comment blocks are joined in quadratic time,
JPEG markers and junk bytes are read one at a time, and an EXIF block is parsed eagerly with every
entry copying the data it points at (a 64 KB JPEG costs 350 MB). Each walk here is linear in the
bytes it looks at and stops early; anything it cannot make sense of is left for Pillow to refuse.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import Any

from ..errors import ImageError

# A cap on an untrusted image's encoded bytes, checked before a file is read.
MAX_IMAGE_BYTES = 64 * 1024 * 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_PNG_CHUNKS = 50_000  # Pillow spends ~5 µs on each, even an empty one
_MAX_PNG_COMPRESSED_TEXT = 16  # zTXt/iTXt chunks: Pillow inflates each to up to 1 MB
# Extensions, comments and stray bytes before a GIF's first frame; real files have a few KB.
_MAX_GIF_PREAMBLE = 1024 * 1024
_MAX_JPEG_MARKERS = 4096  # before the first scan; real files have tens
_MAX_JPEG_JUNK = 64 * 1024  # stray and fill bytes between markers, read one at a time by Pillow
# Progressive scans each walk every block of the image; libjpeg-turbo advises a limit too.
_MAX_JPEG_SCANS = 100
_MAX_BMP_RLE_BYTES = 4 * 1024 * 1024  # Pillow decodes RLE bitmaps in Python
_EXIF_ORIENTATION = 0x0112
_FILL = re.compile(rb"\xff+")
_XMP_ORIENTATION = re.compile(r'tiff:Orientation(="|>)([0-9])')
# TIFF entry types by the size of one value (Pillow's own table).
_TIFF_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def check_structure(data: bytes) -> None:
    """Refuse an image whose headers would cost Pillow far more than the file's size."""
    if data.startswith(_PNG_SIGNATURE):
        _check_png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _check_gif(data)
    elif data.startswith(b"\xff\xd8"):
        _check_jpeg(data)
    elif data.startswith(b"BM"):
        _check_bmp(data)


def orientation(info: Mapping[Any, object]) -> int:
    """The EXIF orientation of an opened image (1: upright), without Pillow's EXIF parser."""
    exif = info.get("exif")
    raw = info.get("Raw profile type exif")
    if not isinstance(exif, bytes) and isinstance(raw, str):
        try:
            exif = bytes.fromhex("".join(raw.split("\n")[3:]))
        except ValueError:
            exif = None
    if isinstance(exif, bytes) and (value := _ifd0_short(exif, _EXIF_ORIENTATION)) is not None:
        return value
    xmp = info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str) and (match := _XMP_ORIENTATION.search(xmp)):
        return int(match[2])
    return 1


def _check_png(data: bytes) -> None:
    pos, chunks, profiles, texts = len(_PNG_SIGNATURE), 0, 0, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > _MAX_PNG_CHUNKS:
            raise ImageError(f"the PNG has more than {_MAX_PNG_CHUNKS} chunks")
        if kind == b"iCCP":
            profiles += 1
            if profiles > 1:
                raise ImageError("the PNG has more than one colour profile (iCCP)")
        elif kind in (b"zTXt", b"iTXt"):
            texts += 1
            if texts > _MAX_PNG_COMPRESSED_TEXT:
                raise ImageError(
                    f"the PNG has more than {_MAX_PNG_COMPRESSED_TEXT} compressed text chunks"
                )
        elif kind == b"eXIf":
            _check_exif(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            return
        pos += 12 + length


def _check_gif(data: bytes) -> None:
    flags = data[10] if len(data) > 10 else 0
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    end = min(len(data), start + _MAX_GIF_PREAMBLE)
    pos = start
    while pos < end and data[pos] not in b",;":
        if data[pos] == 0x21:  # an extension: introducer, label, sub-blocks up to an empty one
            pos += 2
            while pos < end and data[pos]:
                pos += 1 + data[pos]
        pos += 1  # the empty sub-block, or a stray byte (which Pillow skips)
    if pos >= end and end < len(data):
        raise ImageError(
            f"the GIF has more than {_MAX_GIF_PREAMBLE} bytes of extensions before its image"
        )


def _check_jpeg(data: bytes) -> None:
    pos, markers, junk = 2, 0, 0
    while pos < len(data):
        start = data.find(b"\xff", pos)
        if start < 0:
            return
        fill = _FILL.match(data, start)
        assert fill is not None
        junk += start - pos + fill.end() - start - 1
        if junk > _MAX_JPEG_JUNK:
            raise ImageError("the JPEG has too many stray bytes between its markers")
        pos = fill.end()
        if pos >= len(data):
            return
        marker = data[pos]
        pos += 1
        markers += 1
        if markers > _MAX_JPEG_MARKERS:
            raise ImageError(f"the JPEG has more than {_MAX_JPEG_MARKERS} markers")
        if marker == 0xDA:
            break
        if marker in {0x00, 0x01} or 0xD0 <= marker <= 0xD9:
            continue  # no length field
        if pos + 2 > len(data):
            return
        (length,) = struct.unpack_from(">H", data, pos)
        segment = data[pos + 2 : pos + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            _check_exif(segment[6:])
        elif marker == 0xE2 and segment.startswith(b"MPF\0"):
            _check_exif(segment[4:])
        pos += max(length, 2)
    # Inside entropy-coded data every 0xFF is stuffed, so each FF DA left starts another scan.
    scans = data.count(b"\xff\xda", pos)
    if scans >= _MAX_JPEG_SCANS:
        raise ImageError(f"the JPEG has more than {_MAX_JPEG_SCANS} scans")


def _check_bmp(data: bytes) -> None:
    if len(data) <= _MAX_BMP_RLE_BYTES:
        return
    header, _width, _height, _planes, _bits, compression = struct.unpack_from("<IiiHHI", data, 14)
    if header >= 40 and compression in (1, 2):
        raise ImageError(
            f"RLE-compressed bitmaps above {_MAX_BMP_RLE_BYTES // 2**20} MiB are not decoded"
        )


def _check_exif(tiff: bytes) -> None:
    # Pillow copies the data of every entry of the first directory; together they may not
    # exceed the block itself (twice over, for files that share data between entries).
    total = 0
    for _tag, kind, count, offset in _ifd0(tiff)[1]:
        size = count * _TIFF_UNIT.get(kind, 0)
        if size > 4:
            total += max(0, min(size, len(tiff) - offset))
    if total > 2 * len(tiff) + 65536:
        raise ImageError(
            f"the image's EXIF entries point at {total} bytes of a {len(tiff)}-byte block"
        )


def _ifd0_short(tiff: bytes, wanted: int) -> int | None:
    endian, entries = _ifd0(tiff)
    for tag, kind, count, value in entries:
        if tag == wanted and kind == 3 and count >= 1:
            # A SHORT sits in the first two bytes of the value field.
            return value & 0xFFFF if endian == "<" else value >> 16
    return None


def _ifd0(tiff: bytes) -> tuple[str, list[tuple[int, int, int, int]]]:
    """The byte order and (tag, type, count, value or offset) entries of a first directory."""
    if tiff.startswith(b"Exif\0\0"):
        tiff = tiff[6:]
    if tiff[:4] == b"II*\0":
        endian = "<"
    elif tiff[:4] == b"MM\0*":
        endian = ">"
    else:
        return "<", []
    try:
        (start,) = struct.unpack_from(f"{endian}I", tiff, 4)
        (count,) = struct.unpack_from(f"{endian}H", tiff, start)
    except struct.error:
        return endian, []
    count = min(count, max(0, (len(tiff) - start - 2) // 12))
    entry = struct.Struct(f"{endian}HHII")
    return endian, [entry.unpack_from(tiff, start + 2 + 12 * i) for i in range(count)]
