"""Hostile but well-formed images, built from real Pillow output (no binary fixtures)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

#: A Huffman table (class AC, id 0) whose only code, "0", means "a run of end-of-blocks
#: whose length follows in 14 bits": with all 14 bits set, one code skips 32,767 blocks.
_EOB_RUN_TABLE = b"\xff\xc4\x00\x14\x10" + bytes([1] + [0] * 15) + b"\xe0"


def progressive_jpeg(size: tuple[int, int], color: tuple[int, int, int] = (120, 130, 140)) -> bytes:
    """A real progressive JPEG of one flat colour, as Pillow (libjpeg) writes it."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", progressive=True, quality=90)
    return buffer.getvalue()


def repeated_scan_jpeg(size: tuple[int, int] = (1024, 1024), copies: int = 2000) -> bytes:
    """A valid progressive JPEG plus ``copies`` extra scans that each cost a full pass.

    Each added scan refines every coefficient of every luminance block (Ss=1, Se=63,
    Ah=1, Al=0) and codes "nothing changed" as end-of-block runs, so it is a few bytes
    long while the decoder still visits each block's 63 coefficients.
    """
    data = progressive_jpeg(size)
    blocks = -(-size[0] // 8) * -(-size[1] // 8)
    bits = ("0" + "1" * 14) * -(-blocks // 32767)
    bits += "1" * (-len(bits) % 8)  # pad with 1s, as the standard asks
    coded = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    scan = b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x10" + coded.replace(b"\xff", b"\xff\x00")
    end = data.rindex(b"\xff\xd9")
    return data[:end] + _EOB_RUN_TABLE + scan * copies + data[end:]


def jpeg_with_segments(count: int, segment: bytes = b"\xff\xfe\x00\x02") -> bytes:
    """A small baseline JPEG with ``count`` copies of ``segment`` (an empty comment) after SOI."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "JPEG")
    data = buffer.getvalue()
    return data[:2] + segment * count + data[2:]


def png_with_chunks(count: int, chunk_type: bytes = b"zzZz") -> bytes:
    """A small PNG with ``count`` empty ancillary chunks (valid CRCs) before its image data."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "PNG")
    data = buffer.getvalue()
    chunk = struct.pack(">I", 0) + chunk_type + struct.pack(">I", zlib.crc32(chunk_type))
    header_end = 8 + 25  # signature + IHDR chunk
    return data[:header_end] + chunk * count + data[header_end:]


def gif_with_comment_blocks(count: int) -> bytes:
    """A small GIF with one comment extension of ``count`` one-byte sub-blocks before the image."""
    buffer = io.BytesIO()
    Image.new("P", (16, 16), 1).save(buffer, "GIF")
    data = buffer.getvalue()
    flags = data[10]
    start = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    comment = b"\x21\xfe" + b"\x01a" * count + b"\x00"
    return data[:start] + comment + data[start:]
