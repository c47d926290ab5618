"""An image's placeholder: its average colour and a preview at most 16 pixels on a side.

Computed at deploy for each opaque image that gets variants, stored in its manifest entry
(:class:`pipeline.manifest.Placeholder`) and shown by ``picture()`` behind the image until it
loads, with no request of its own (:mod:`pipeline.flaskext.placeholders`).

Made from a decode of its own at reduced size (``thumbnail``: libjpeg's DCT scaling decodes a
JPEG at 1/8, WebP and HEIF have shrink-on-load too) rather than from the variant pass's decode,
whose size follows the widest *missing* variant: that way the placeholder is a function of the
file's bytes only, the same whichever variants a run had to make, and a release that has it
never needs it computed again. On the demo photos this decode costs about 0.4% of the CPU of
encoding the variants (``bench/bench_placeholders.py``).
"""

from __future__ import annotations

import base64
import os

from ..errors import ImageSourceError
from ..extras import needs_extra
from ..localfs import LocalFile, StrPath
from ..manifest import Placeholder
from ..walked import open_walked

with needs_extra("image placeholders"):
    import pyvips

#: The preview fits in PREVIEW_SIDE x PREVIEW_SIDE: a 16x10 WebP of a landscape photo is about
#: 70-160 bytes; the page blurs it (an SVG filter), so more pixels would only add bytes.
PREVIEW_SIDE = 16
#: WebP quality of the preview: below 50 the blocks show through the blur on flat skies.
PREVIEW_QUALITY = 50
_KEEP_NONE = 0


def placeholder_of(path: StrPath) -> Placeholder:
    """The placeholder of the (opaque) image at ``path``, decoded at reduced size."""
    try:
        image = _small_srgb(path)
    except pyvips.Error as exc:
        raise ImageSourceError(f"{path}: cannot make its placeholder "
                               f"({exc.message.strip()})") from exc
    color = "#" + "".join(f"{round(image.extract_band(band).avg()):02x}" for band in range(3))
    data = bytes(image.webpsave_buffer(Q=PREVIEW_QUALITY, effort=6, keep=_KEEP_NONE))
    return Placeholder(color=color, preview="data:image/webp;base64," + base64.b64encode(data)
                       .decode("ascii"))


def _small_srgb(path: StrPath) -> pyvips.Image:
    """Upright, shrunk on load to fit PREVIEW_SIDE x PREVIEW_SIDE, 8-bit sRGB through the
    embedded profile (CMYK without one: libvips' built-in), no alpha, in memory. A walked file
    is read from the descriptor the walk opened (no symlink followed), as the variants are."""
    options = {"height": PREVIEW_SIDE, "size": "down", "export_profile": "srgb"}
    if isinstance(path, LocalFile):
        with open_walked(path) as handle:
            source = pyvips.Source.new_from_descriptor(handle.fileno())
        image = pyvips.Image.thumbnail_source(source, PREVIEW_SIDE, **options)
    else:
        image = pyvips.Image.thumbnail(os.fspath(path), PREVIEW_SIDE, **options)
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb").cast("uchar")  # grey, 16-bit
    if image.hasalpha():  # callers ask for opaque images only: drop it rather than fail
        image = image.extract_band(0, n=3)
    return image.copy_memory()
