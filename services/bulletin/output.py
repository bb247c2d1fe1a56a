"""Checks of what Chromium produced, with the standard library only: PDF pages, PNG size and colours.

The command line reports the PDF's page count, and the tests use both to tell a real page from
an empty one without depending on an imaging library.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

# A page object's dictionary; `(?![A-Za-z])` keeps the page-tree nodes (/Type /Pages) out.
# Chromium's Skia writer keeps object dictionaries uncompressed (no object streams).
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pdf_page_count(document: bytes) -> int:
    """Number of page objects in a PDF (0 when it is not a PDF at all)."""
    if not document.startswith(b"%PDF-"):
        return 0
    return len(_PAGE.findall(document))


@dataclass(frozen=True, slots=True)
class PngStats:
    """Size of a PNG and how many distinct colours it uses (capped, see `png_stats`)."""

    width: int
    height: int
    colours: int


@dataclass(frozen=True, slots=True)
class PngImage:
    """Decoded pixels: `rows` of `width * channels` bytes each."""

    width: int
    height: int
    channels: int
    rows: list[bytes]


def decode_png(data: bytes) -> PngImage:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, header = len(_PNG_SIGNATURE), bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour_type not in (2, 6) or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}")
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(idat))
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        previous = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels)
        rows.append(bytes(previous))
    return PngImage(width, height, channels, rows)


def png_stats(data: bytes, *, colour_cap: int = 4096) -> PngStats:
    """Size of a PNG and its distinct colours, counted up to `colour_cap`.

    A blank or nearly blank page has a handful of colours, a page of anti-aliased text and
    charts has hundreds; the exact number beyond the cap tells nothing.
    """
    image = decode_png(data)
    colours: set[bytes] = set()
    step = image.channels
    for row in image.rows:
        if len(colours) >= colour_cap:
            break
        colours.update(row[x : x + step] for x in range(0, len(row), step))
    return PngStats(image.width, image.height, min(len(colours), colour_cap))


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    # PNG filter types 0-4 (RFC 2083, 6.2); each byte is predicted from its left, up and up-left.
    if kind == 1:
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + predictor) & 0xFF
    elif kind != 0:
        raise ValueError(f"bad PNG filter type {kind}")
    return line
