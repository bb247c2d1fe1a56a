"""The standard-library checks of Chromium's output: PNG colours (all five filters) and PDF pages."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from services.bulletin.output import decode_png, pdf_page_count, png_stats


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter(kind: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, x in enumerate(line):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) >> 1, _paeth(a, b, c)][kind]
        out.append((x - predictor) & 0xFF)
    return bytes(out)


def encode_png(pixels: list[list[tuple[int, ...]]], colour_type: int = 2) -> bytes:
    """A PNG whose row n uses filter n % 5, so decoding must get every filter right."""
    bpp = 3 if colour_type == 2 else 4
    height, width = len(pixels), len(pixels[0])
    raw, prev = bytearray(), bytes(width * bpp)
    for n, row in enumerate(pixels):
        line = bytes(v for px in row for v in px)
        raw += bytes([n % 5]) + _filter(n % 5, line, prev, bpp)
        prev = line

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")
    )


def gradient(width: int, height: int, alpha: bool = False) -> list[list[tuple[int, ...]]]:
    return [
        [(x * 37 % 256, y * 53 % 256, (x * y) % 7 * 30, *((200,) if alpha else ())) for x in range(width)]
        for y in range(height)
    ]


def test_every_filter_is_undone() -> None:
    pixels = gradient(13, 10)
    stats = png_stats(encode_png(pixels))
    assert (stats.width, stats.height) == (13, 10)
    assert stats.colours == len({px for row in pixels for px in row})


def test_random_pixels_come_back_exactly() -> None:
    # Random bytes hit the filters' edge cases (Paeth ties, wrap-around) that smooth images miss.
    rng = random.Random(7)
    pixels = [[tuple(rng.randrange(256) for _ in range(4)) for _ in range(64)] for _ in range(50)]
    image = decode_png(encode_png(pixels, colour_type=6))
    assert image.rows == [bytes(v for px in row for v in px) for row in pixels]


def test_rgba_is_read_too() -> None:
    pixels = gradient(9, 6, alpha=True)
    assert png_stats(encode_png(pixels, colour_type=6)).colours == len({px for row in pixels for px in row})


def test_a_blank_image_has_one_colour_and_the_count_is_capped() -> None:
    assert png_stats(encode_png([[(255, 255, 255)] * 20] * 20)).colours == 1
    assert png_stats(encode_png(gradient(40, 40)), colour_cap=10).colours == 10


def test_what_is_not_a_png_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        png_stats(b"%PDF-1.4")


def test_pdf_pages_are_page_objects_not_page_tree_nodes() -> None:
    document = (
        b"%PDF-1.4\n1 0 obj <</Type /Pages /Kids [2 0 R 3 0 R] /Count 2>> endobj\n"
        b"2 0 obj <</Type /Page /Parent 1 0 R>> endobj\n3 0 obj <</Type/Page/Parent 1 0 R>> endobj\n%%EOF"
    )
    assert pdf_page_count(document) == 2
    assert pdf_page_count(b"<html>/Type /Page</html>") == 0
