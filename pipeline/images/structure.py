"""Cheap structural limits on uploaded images, checked before anything is decoded.

The pixel and byte limits do not bound the CPU an image costs, because some formats let
a small file ask for a lot of work:

* a **progressive JPEG** may repeat a scan: each scan walks every block of the image
  again, and one that refines all blocks of a 16-megapixel image with a run of
  "nothing changed" codes takes ~32 bytes and ~15 ms to decode, so 5 MiB of them is
  ~40 minutes of CPU. libjpeg has no scan limit of its own. A normal progressive JPEG
  has about 10 scans (libjpeg's default progression; 118 JPEGs found on a Debian system
  had 1 to 12).
* Pillow parses **JPEG segments** before the first scan, **PNG chunks** and **GIF
  extension blocks** before the first frame in Python, one by one: a few bytes each,
  millions per upload, a few microseconds each (1.3 M empty JPEG comments: 5 s).
  It also skips stray bytes between JPEG segments one Python call at a time.

Each walker reads only lengths and markers, stops as soon as a limit is passed, and
raises :class:`ImageStructureError` with a message that can be shown to the uploader.
Bytes it cannot follow (truncation, bad lengths) are left to Pillow, which rejects
them properly: these functions bound work, they do not validate.

Animation frames are not limited: the upload check decodes only the first frame of a
GIF, PNG (APNG) or WebP, and a WebP is demuxed by libwebp in C.
"""

from __future__ import annotations

import re

#: Scans (SOS markers) in one JPEG; libjpeg's default progression writes 10.
MAX_JPEG_SCANS = 32
#: Marker segments (tables, APPn, comments, scan headers) in one JPEG.
MAX_JPEG_SEGMENTS = 1024
#: Stray bytes between JPEG segments, which decoders skip and warn about.
MAX_JPEG_STRAY_BYTES = 64 * 1024
#: Chunks in one PNG, including every IDAT (an encoder writing one IDAT per row of a
#: 16,000-row image stays below this).
MAX_PNG_CHUNKS = 16_384
#: Extension sub-blocks before a GIF's first image (comments, XMP, loop settings).
MAX_GIF_BLOCKS = 10_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9
#: Markers without a length field: TEM, the restart markers RST0-RST7, and the 0xFF00
#: escape (as libjpeg reads it between segments).
_JPEG_STANDALONE = frozenset({0x00, 0x01, *range(0xD0, 0xD8)})
#: The next marker between segments: any 0xFF fill, then a byte that is not 0xFF.
_JPEG_MARKER = re.compile(rb"\xff+([^\xff])")
#: The end of a scan's entropy-coded data: a run of 0xFF then a marker byte. 0xFF00 is an
#: escaped data byte and RSTn markers sit inside the data; decoders read past both.
#: Spelled as two alternatives because ``re`` searches that far faster than the
#: equivalent ``\xff+[^\x00\xd0-\xd7\xff]``: a 4 MB JPEG in 2 ms instead of 50-170 ms.
_JPEG_SCAN_END = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]|\xff\xff+[^\x00\xd0-\xd7\xff]")


class ImageStructureError(ValueError):
    """The image asks for more work than any normal image does; the message says what."""


def check_structure(data: bytes) -> None:
    """Raise :class:`ImageStructureError` if ``data`` passes a structural limit.

    The format is recognised by the same leading bytes Pillow uses; anything else is
    left alone (Pillow decides what it is).
    """
    if data.startswith(b"\xff\xd8\xff"):
        check_jpeg(data)
    elif data.startswith(_PNG_SIGNATURE):
        check_png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        check_gif(data)


def check_jpeg(data: bytes) -> None:
    """Count the scans and segments of a JPEG the way libjpeg reads them, up to EOI."""
    scans = segments = stray = 0
    pos = 2  # after SOI
    while (found := _JPEG_MARKER.search(data, pos)) is not None:
        # Decoders skip junk and extra 0xFF fill before a marker, and Pillow does so one
        # byte per Python call; a marker that means nothing between segments is junk too.
        stray += found.end() - 2 - pos
        marker, pos = found[1][0], found.end()
        if marker in _JPEG_STANDALONE:
            stray += 2
        if stray > MAX_JPEG_STRAY_BYTES:
            raise ImageStructureError(f"the JPEG has more than {MAX_JPEG_STRAY_BYTES:,} "
                                      "stray bytes between its segments")
        if marker == _JPEG_EOI:
            return
        if marker in _JPEG_STANDALONE:
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageStructureError(f"the JPEG has more than {MAX_JPEG_SEGMENTS:,} segments")
        pos += int.from_bytes(data[pos:pos + 2], "big")  # the length counts its own 2 bytes
        if marker == _JPEG_SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageStructureError(
                    f"the JPEG has more than {MAX_JPEG_SCANS} scans (a normal progressive "
                    "JPEG has about 10); save it again as a standard JPEG")
            end = _JPEG_SCAN_END.search(data, pos)
            if end is None:
                return
            pos = end.end() - 2


def check_png(data: bytes) -> None:
    """Count a PNG's chunks (length, type, data, CRC) up to IEND."""
    pos = len(_PNG_SIGNATURE)
    chunks = 0
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageStructureError(f"the PNG has more than {MAX_PNG_CHUNKS:,} chunks")
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IEND":
            return
        pos += 12 + length


def check_gif(data: bytes) -> None:
    """Count the extension sub-blocks before a GIF's first image descriptor."""
    if len(data) < 13:
        return
    pos = 13 + _color_table_size(data[10])
    blocks = 0
    while pos + 1 < len(data) and data[pos] == 0x21:  # an extension; 0x2C starts the image
        pos += 2  # introducer and label
        while pos < len(data) and data[pos] != 0:  # sub-blocks: a length byte, then data
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise ImageStructureError(
                    f"the GIF has more than {MAX_GIF_BLOCKS:,} extension blocks before its "
                    "first image")
            pos += 1 + data[pos]
        pos += 1  # the zero-length terminator


def _color_table_size(flags: int) -> int:
    """Bytes of the colour table announced by a GIF header's packed flags byte."""
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0
