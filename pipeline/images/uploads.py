"""Accepting user-uploaded images: validate by content, store under a generated name.

Framework-neutral (Pillow only), so the rules are tested without a web server.

Why by content: the file name and the multipart ``Content-Type`` are chosen by the
client, so a ``.png`` may hold HTML or a script. Pillow parses the bytes, only
decoders for the allowed formats are tried (less parser surface), the header's
pixel count is bounded before anything is decoded (decompression bombs), so is the
work the structure asks for (repeated JPEG scans, floods of chunks or segments; see
:mod:`pipeline.images.structure`), and the image is decoded in full so truncated or
corrupt files are refused.

Why SVG is refused rather than sanitised: SVG is XML that may carry ``<script>``,
event handlers, ``<foreignObject>`` HTML and external references; a sanitiser has
to win against every browser quirk, and Pillow cannot check it. Operators may still
place vetted SVGs in the images folder; the image views serve every file with a
``Content-Security-Policy`` sandbox so even those cannot run script.

The stored name is a random UUID plus the extension of the *detected* format,
never the user's name: no path tricks, no overwriting, no guessable URLs, and the
extension (hence the served Content-Type) always matches the bytes.
"""

from __future__ import annotations

import io
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError
from ..extras import needs_extra
from ..localfs import write_atomic
from .structure import ImageStructureError, check_structure

with needs_extra("image uploads (pipeline.images.uploads)"):
    from PIL import Image, UnidentifiedImageError

#: Pillow format name -> the extension we store (and so the Content-Type we serve).
ALLOWED_FORMATS: dict[str, str] = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "GIF": ".gif",
    "WEBP": ".webp",
}

#: 16 megapixels (e.g. 4000 x 4000) decodes to at most 64 MB of RGBA.
DEFAULT_MAX_PIXELS = 16_000_000


class UploadRejected(PipelineError):
    """The uploaded bytes are not an acceptable image; the message is safe to show the user."""


@dataclass(frozen=True)
class DetectedImage:
    """What the content of an upload turned out to be."""

    format: str
    extension: str
    width: int
    height: int


def detect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DetectedImage:
    """Identify ``data`` as one of :data:`ALLOWED_FORMATS` or raise :class:`UploadRejected`."""
    if not data:
        raise UploadRejected("the file is empty")
    try:
        check_structure(data)  # before Pillow sees a byte: it bounds Pillow's work too
    except ImageStructureError as exc:
        raise UploadRejected(str(exc)) from exc
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) for images a bit above its own bomb limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _parse(data, max_pixels)
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected("the image has too many pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # SyntaxError and EOFError are what Pillow's parsers raise for broken files.
        raise UploadRejected(
            "the file is not a valid PNG, JPEG, GIF or WebP image"
        ) from exc


def _parse(data: bytes, max_pixels: int) -> DetectedImage:
    formats = list(ALLOWED_FORMATS)
    with Image.open(io.BytesIO(data), formats=formats) as probe:
        fmt = str(probe.format)
        width, height = probe.size  # from the header only: nothing decoded yet
        if width * height > max_pixels:
            raise UploadRejected(
                f"the image is {width}x{height} pixels; at most {max_pixels:,} pixels are allowed"
            )
        probe.verify()  # structural checks (chunk CRCs for PNG)
    # verify() leaves the image unusable; decode a fresh one in full to catch truncation.
    with Image.open(io.BytesIO(data), formats=formats) as image:
        image.load()
    return DetectedImage(fmt, ALLOWED_FORMATS[fmt], width, height)


def generated_name(extension: str) -> str:
    """A fresh, unguessable file name with ``extension`` (e.g. ``.png``)."""
    return uuid.uuid4().hex + extension


def store_image(folder: Path, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Validate ``data`` and write it into ``folder`` under a generated name; return the name.

    The write is atomic (temporary dot-file, then rename), and the image views never
    serve dot-files, so a half-written upload is never visible.
    """
    detected = detect_image(data, max_pixels=max_pixels)
    name = generated_name(detected.extension)
    write_atomic(folder / name, data)
    return name
