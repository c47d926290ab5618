"""Uploads whose structure asks for unbounded decoding work are refused before decoding.

Each hostile file is valid (Pillow decodes it) and within the pixel and byte limits;
without the structural checks each one was accepted, at a CPU cost that grows with the
file (2,000 repeated scans on 1024x1024 pixels: ~2 s; 1.3 M JPEG comments: 5 s).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.images.structure import (
    MAX_GIF_BLOCKS,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_JPEG_STRAY_BYTES,
    MAX_PNG_CHUNKS,
)
from pipeline.images.uploads import UploadRejected, detect_image
from tests.imagecraft import (
    gif_with_comment_blocks,
    jpeg_with_segments,
    png_with_chunks,
    progressive_jpeg,
    repeated_scan_jpeg,
)


def decodes(data: bytes) -> bool:
    """Pillow itself accepts the file: the limit, not a parse error, is what refuses it."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    return True


def test_a_jpeg_with_repeated_scans_is_refused_before_decoding() -> None:
    crafted = repeated_scan_jpeg((256, 256), copies=2000)
    assert decodes(crafted) and len(crafted) < 64 * 1024
    with pytest.raises(UploadRejected, match=f"more than {MAX_JPEG_SCANS} scans"):
        detect_image(crafted)


def test_normal_progressive_jpegs_are_accepted() -> None:
    assert detect_image(progressive_jpeg((64, 48))).format == "JPEG"
    # Even a progression three times as long as libjpeg's is within the limit.
    assert detect_image(repeated_scan_jpeg((64, 48), copies=MAX_JPEG_SCANS - 12)).width == 64


def test_restart_markers_and_escaped_bytes_inside_scans_are_not_counted() -> None:
    """A restart marker after every block: thousands of RSTn and 0xFF00 inside the data."""
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 60).convert("RGB").save(
        buffer, "JPEG", progressive=True, restart_marker_blocks=1)
    data = buffer.getvalue()
    assert data.count(b"\xff\xd0") > 500 and data.count(b"\xff\x00") > 10
    assert detect_image(data).width == 256


def test_the_scan_limit_counts_every_scan() -> None:
    """The default progression has 10 scans: 22 more reach the limit, 23 pass it."""
    assert detect_image(repeated_scan_jpeg((32, 32), copies=MAX_JPEG_SCANS - 10)).width == 32
    with pytest.raises(UploadRejected, match="scans"):
        detect_image(repeated_scan_jpeg((32, 32), copies=MAX_JPEG_SCANS - 9))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jpeg_with_segments(MAX_JPEG_SEGMENTS + 1), "segments"),
        # 0xFF fill bytes before a marker: Pillow skips them one Python call at a time.
        (jpeg_with_segments(1, b"\xff" * (MAX_JPEG_STRAY_BYTES + 2) + b"\xfe\x00\x02"), "stray"),
        # restart markers between segments mean nothing and are skipped the same way
        (jpeg_with_segments((MAX_JPEG_STRAY_BYTES + 2) // 2, b"\xff\xd0"), "stray"),
        (png_with_chunks(MAX_PNG_CHUNKS), "chunks"),
        (gif_with_comment_blocks(MAX_GIF_BLOCKS + 1), "extension blocks"),
    ],
    ids=["jpeg-segments", "jpeg-fill", "jpeg-restart-markers", "png-chunks", "gif-blocks"],
)
def test_floods_of_cheap_structures_are_refused(data: bytes, message: str) -> None:
    assert decodes(data)
    with pytest.raises(UploadRejected, match=message):
        detect_image(data)


@pytest.mark.parametrize(
    "data",
    [
        jpeg_with_segments(MAX_JPEG_SEGMENTS - 20),
        png_with_chunks(MAX_PNG_CHUNKS - 10),
        gif_with_comment_blocks(MAX_GIF_BLOCKS - 10),
    ],
    ids=["jpeg", "png", "gif"],
)
def test_just_under_the_limits_is_accepted(data: bytes) -> None:
    assert detect_image(data).width == 16


def test_truncated_or_odd_structures_are_left_to_pillow() -> None:
    """The walkers only count; a broken file is still refused by the full decode."""
    data = progressive_jpeg((32, 32))
    for broken in (data[:3], data[:20], data[: len(data) // 2], data[:-2] + b"\xff"):
        with pytest.raises(UploadRejected, match="not a valid"):
            detect_image(broken)
