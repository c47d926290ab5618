"""Probe and encode image variants with libvips (pyvips).

libvips was chosen over Pillow by measurement on real photos (``bench/bench_variants.py``): at the
same mean SSIM its AVIF files were clearly smaller for similar CPU time, and it streams big sources.

What image tools often get wrong, done here on purpose:
* EXIF orientation is applied (``autorot``), so a phone photo comes out upright;
* colour is converted to sRGB through the embedded ICC profile (Adobe RGB, Display P3, CMYK JPEGs;
  a CMYK source without a profile goes through libvips' built-in CMYK profile);
* 16-bit and palette sources become 8-bit sRGB; alpha is kept and resized premultiplied, so
  transparent pixels do not bleed their hidden colour into the edges;
* every output is written with no metadata at all (no EXIF, GPS, XMP, ICC: outputs are sRGB);
* a source over ``max_source_pixels`` is refused from its header, before any pixel is decoded;
* big JPEGs are decoded with shrink-on-load (DCT scaling) to at least the largest width needed,
  so memory follows the output size rather than the camera's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageSourceError, UnreadableImageError
from ..extras import needs_extra
from ..localfs import LocalFile, StrPath, replacing
from ..manifest import Placeholder
from ..walked import open_walked
from .variants import SourceInfo, VariantSettings, VariantSpec

with needs_extra("image variants"):
    import pyvips

#: Encoder effort, part of ``VariantSettings.encoder_version``: change them together.
#: AVIF effort 2 (aom cpu-used 7) gave smaller files than Eleventy's effort 4 at equal SSIM once
#: chroma is 4:2:0, in a fraction of the time; WebP effort 4 is libwebp's default.
AVIF_EFFORT = 2
WEBP_EFFORT = 4
#: ``keep=0``: VIPS_FOREIGN_KEEP_NONE, strip every metadata block from outputs.
_KEEP_NONE = 0


@dataclass(frozen=True)
class EncodeResult:
    """The outcome for one source: the variants written (spec, size), every one planned, and
    the modern ones among them that came out no smaller than the fallback at the same width.

    Those are still written (and uploaded): keeping every planned key lets one listing decide
    per key what is missing. Pages skip them (:func:`pipeline.build.variants.usable`)."""

    source: str
    written: tuple[tuple[VariantSpec, int], ...]
    dropped: tuple[VariantSpec, ...]
    #: The source's placeholder, when asked for (:mod:`pipeline.build.variant_placeholder`).
    placeholder: Placeholder | None = None


def _loader_format(image: pyvips.Image) -> str:
    """``jpeg``/``png``/``webp``/``avif``/``gif``/... from libvips' loader name."""
    loader = str(image.get("vips-loader"))
    name = loader.removesuffix("_source").removesuffix("_buffer").removesuffix("load")
    if name == "heif":
        compression = _field(image, "heif-compression", "")
        return "avif" if compression == "av1" else "heic"
    return name


def _field(image: pyvips.Image, name: str, default: object) -> object:
    return image.get(name) if image.get_typeof(name) != 0 else default


def _open(path: StrPath, **options: object) -> pyvips.Image:
    """Open lazily: libvips reads the header now and decodes pixels only when asked.

    A file of the static folder is read from the descriptor :func:`open_walked` opened (no
    symlink followed, the file the walk saw and hashed; libvips keeps its own duplicate),
    so a variant is never made of a file swapped in after the walk."""
    try:
        if isinstance(path, LocalFile):
            with open_walked(path) as handle:
                source = pyvips.Source.new_from_descriptor(handle.fileno())
            return pyvips.Image.new_from_source(source, "", **options)
        return pyvips.Image.new_from_file(os.fspath(path), **options)
    except pyvips.Error as exc:
        text = (exc.detail or "").strip() or exc.message.strip()
        reason = text.splitlines()[0] if text else "unknown format"
        raise UnreadableImageError(f"{path}: not a readable image ({reason})") from exc


def probe(path: StrPath, settings: VariantSettings) -> SourceInfo:
    """Size and format facts from the header only; a decompression bomb is refused here."""
    image = _open(path)
    _check_pixels(path, image.width, image.height, settings.max_source_pixels)
    width, height = image.width, image.height
    if int(_field(image, "orientation", 1)) in (5, 6, 7, 8):  # type: ignore[call-overload]
        width, height = height, width  # rotated by 90 degrees when displayed
    pages = int(_field(image, "n-pages", 1))  # type: ignore[call-overload]
    fmt = _loader_format(image)
    return SourceInfo(width=width, height=height, format=fmt, has_alpha=bool(image.hasalpha()),
                      animated=fmt in ("gif", "webp") and pages > 1)


def _check_pixels(path: StrPath, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise ImageSourceError(
            f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{limit:,} (a decompression bomb?): shrink the image or raise max_source_pixels")


def _decode(path: StrPath, info: SourceInfo, top_width: int) -> pyvips.Image:
    """The source upright, in 8-bit sRGB (+ alpha), in memory, at least ``top_width`` wide."""
    options: dict[str, object] = {"access": "sequential"}
    if info.format == "jpeg":
        # DCT scaling: decode at 1/2, 1/4 or 1/8 while that stays at least as wide as needed.
        shrink = 1
        while shrink < 8 and info.width // (shrink * 2) >= top_width:
            shrink *= 2
        options["shrink"] = shrink
    image = _open(path, **options).autorot()
    image = _to_srgb(image)
    try:
        return image.copy_memory()  # one decode, resized many times below
    except pyvips.Error as exc:
        raise ImageSourceError(f"{path}: cannot decode ({exc.message.strip()})") from exc


def _to_srgb(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB (and alpha if any) through the embedded profile, CMYK included."""
    if image.get_typeof("icc-profile-data") != 0:
        image = image.icc_transform("srgb", embedded=True, intent="relative")
    if image.interpretation != "srgb" or image.format != "uchar":
        # CMYK with no profile goes through libvips' built-in CMYK profile; grey and 16-bit
        # (rgb16/grey16) become 8-bit sRGB.
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _resize(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """Lanczos3 to exactly ``width`` x ``height``; alpha premultiplied while filtering."""
    alpha = image.hasalpha()
    if alpha:
        image = image.premultiply()
    out = image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
    if out.width != width or out.height != height:  # float rounding: trim or pad one pixel
        out = out.gravity("centre", width, height, extend="copy")
    if alpha:
        out = out.unpremultiply().cast("uchar")
    return out


def _save(image: pyvips.Image, spec: VariantSpec, settings: VariantSettings) -> bytes:
    quality = settings.quality(spec.format)
    if spec.format == "avif":
        data = image.heifsave_buffer(Q=quality, compression="av1", effort=AVIF_EFFORT,
                                     subsample_mode="on", keep=_KEEP_NONE)
    elif spec.format == "webp":
        data = image.webpsave_buffer(Q=quality, effort=WEBP_EFFORT, keep=_KEEP_NONE)
    elif spec.format == "jpeg":
        data = image.jpegsave_buffer(Q=quality, optimize_coding=True, interlace=True,
                                     keep=_KEEP_NONE)
    else:
        # Adaptive row filters halve a photo's PNG against libvips' default (no filter).
        data = image.pngsave_buffer(compression=6, filter="all", keep=_KEEP_NONE)
    return bytes(data)


def encode_source(path: StrPath, specs: Sequence[VariantSpec], settings: VariantSettings, *,
                  out_dir: Path, placeholder: bool = False) -> EncodeResult:
    """Encode ``specs`` (from :func:`plan_variants` for this file) into ``out_dir/<key>``,
    and make its placeholder too when ``placeholder`` is true (in the same job, so on every
    core with the encodes; ``specs`` may then be empty).

    Per width the fallback is encoded first (when planned here), so a modern variant that is
    not smaller is reported in ``dropped``. Files are renamed into place, so a reader never sees
    a torn variant."""
    info = probe(path, settings)  # re-checked here: the worker may get any path
    made = None
    if placeholder:
        from .variant_placeholder import placeholder_of

        made = placeholder_of(path)
    if not specs:
        return EncodeResult(source=str(path), written=(), dropped=(), placeholder=made)
    image = _decode(path, info, max(spec.width for spec in specs))
    written: list[tuple[VariantSpec, int]] = []
    dropped: list[VariantSpec] = []
    for width in sorted({spec.width for spec in specs}):
        at_width = [spec for spec in specs if spec.width == width]
        resized = _resize(image, width, at_width[0].height)
        fallback_size: int | None = None
        for spec in sorted(at_width, key=lambda s: not s.fallback):  # fallback first
            data = _save(resized, spec, settings)
            if not spec.fallback and fallback_size is not None and len(data) >= fallback_size:
                dropped.append(spec)
            if spec.fallback:
                fallback_size = len(data)
            _write(out_dir / spec.key, data)
            written.append((spec, len(data)))
    return EncodeResult(source=str(path), written=tuple(written), dropped=tuple(dropped),
                        placeholder=made)


def _write(path: Path, data: bytes) -> None:
    with replacing(path, unique=True) as handle:
        handle.write(data)


def limit_threads() -> None:
    """One libvips worker thread: the process pool already keeps every core busy, and extra
    threads per process would only fight over them. No operation cache either (one-shot use)."""
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
