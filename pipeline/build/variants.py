"""Responsive image variants: the settings, and the pure plan (which variants, under which keys).

A raster source gets one variant per (width, format): widths from a ladder, never upscaled; the
modern formats (AVIF, WebP) plus a fallback in the source's family (JPEG when opaque, PNG when it
has an alpha channel). Every variant's key is derived from the source's content hash and the
encoding parameters only, so whether a variant exists is known *before* encoding: one listing of
the bucket decides, exactly as for every other file, and a fresh checkout encodes nothing when the
bucket already holds the variants.

This module is pure (no imaging library, no I/O). Probing and encoding live in
:mod:`pipeline.build.variant_codec` (libvips, chosen by measurement: see ``bench/``), the process
pool in :mod:`pipeline.build.variant_pool`.

Integration (intended API, for the deploy planner and the dev server)
--------------------------------------------------------------------
Deploy planner, per file the fingerprint step already hashed::

    if is_candidate(logical, settings):                       # by name and globs, no I/O
        info = variant_codec.probe(path, settings)             # header only; bomb: ImageSourceError
        specs = plan_variants(sha256_hex, info, settings)      # [] when skipped (tiny, animated)
        missing = missing_specs(specs, bucket_keys)            # the one listing decides
        if missing:
            jobs.append(EncodeJob(path, tuple(missing)))
    results = variant_pool.encode_many(jobs, settings=settings, out_dir=cache_dir,
                                       progress=report)        # every core, bounded in flight
    # upload out_dir/<key> for each EncodeResult.variants; manifest entry per source:
    # width, height (info), variants = [(key, width, height, content_type, size)]

``--dry-run`` lists the jobs without calling ``encode_many``. A modern variant that came out no
smaller than the fallback is still stored, so every planned key exists once encoded and "absent
from the listing" means missing, per key; pages skip such variants by their recorded sizes
(:func:`usable`). The deploy's integration lives in :mod:`pipeline.release.variant_step`.

Dev on-demand route ``/_variants/<key>``: ``parse_key(key)`` gives (source hash, width, format) and
rejects anything not produced by :func:`plan_variants` for the configured ladder, so no one can ask
for arbitrary sizes; the view maps the hash back to the source through the dev manifest, calls
``variant_codec.encode_source(path, specs, settings, out_dir=build/variants)`` once and serves the
cached file. Same code, same pixels as the deploy.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol, TypeVar

from ..errors import ConfigError

#: Formats this module can plan, with their extension and Content-Type. Own table so keys and
#: types never depend on the host (see ``media_types``); variants use only these four.
FORMATS: dict[str, tuple[str, str]] = {
    "avif": (".avif", "image/avif"),
    "webp": (".webp", "image/webp"),
    "jpeg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
}
MODERN_FORMATS = ("avif", "webp")

#: Source extensions that get variants. GIF (often animated), SVG (vector) and ICO are left as
#: they are; an animated WebP is recognised by probing and skipped too.
SOURCE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".avif"})

#: Prefix of every variant key, relative to the release's key prefix.
KEY_DIR = "_v"

class _Sized(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str: ...


V = TypeVar("V", bound=_Sized)

_KEY_RE = re.compile(
    r"^_v/([0-9a-f]{2})/([0-9a-f]{16})\.(\d{1,5})w\.([0-9a-f]{10})\.(avif|webp|jpg|png)$"
)


#: How the deploy's ``[tool.flask-cdn-pipeline]`` table and its ``--variant-*`` flags spell
#: each :class:`VariantSettings` field, and the kind of value each takes (as
#: :mod:`pipeline.pyproject` parses it). The CLI's options and the Flask extension's
#: development route are both made from this one table, so they cannot drift apart.
VARIANT_TABLE_KEYS: dict[str, tuple[str, str]] = {
    "variant-widths": ("widths", "ints"),
    "variant-formats": ("formats", "words"),
    "variant-include": ("include", "patterns"),
    "variant-exclude": ("exclude", "patterns"),
}


@dataclass(frozen=True)
class VariantSettings:
    """How variants are made. Validated on construction; every field that changes the pixels is
    part of each variant key (see :meth:`fingerprint`)."""

    widths: tuple[int, ...] = (320, 640, 960, 1280, 1920, 2560)
    formats: tuple[str, ...] = MODERN_FORMATS
    # Tuned on real photos so that at mean SSIM >= Eleventy Image's the bytes are smaller (bench/).
    avif_quality: int = 50
    webp_quality: int = 80
    jpeg_quality: int = 81
    #: Bump when the encoding code or library settings change the output, so new keys are made.
    encoder_version: str = "vips-1"
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    #: Sources with more pixels than this are refused before decoding (decompression bombs).
    max_source_pixels: int = 64_000_000

    def __post_init__(self) -> None:
        widths = self.widths
        if not widths or any(not isinstance(w, int) or w < 1 or w > 16_383 for w in widths):
            raise ConfigError(f"variant widths must be whole numbers 1..16383, got {widths!r}")
        if list(widths) != sorted(set(widths)):
            raise ConfigError(f"variant widths must be increasing with no repeats, got {widths!r}")
        unknown = [f for f in self.formats if f not in MODERN_FORMATS]
        if unknown or len(set(self.formats)) != len(self.formats):
            raise ConfigError(f"variant formats must be among {', '.join(MODERN_FORMATS)}, "
                              f"without repeats; got {self.formats!r}")
        for name in ("avif_quality", "webp_quality", "jpeg_quality"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 100:
                raise ConfigError(f"{name} must be 1..100, got {value!r}")
        if not self.encoder_version or not self.encoder_version.isprintable():
            raise ConfigError("encoder_version must be a non-empty printable string")
        if not self.include:
            raise ConfigError("variant include globs must not be empty (use '*' for every image)")
        if not isinstance(self.max_source_pixels, int) or self.max_source_pixels < 1:
            raise ConfigError(f"max_source_pixels must be positive, got {self.max_source_pixels!r}")

    def quality(self, fmt: str) -> int | None:
        """The encoder quality for ``fmt`` (``None`` for PNG: lossless)."""
        return {"avif": self.avif_quality, "webp": self.webp_quality,
                "jpeg": self.jpeg_quality}.get(fmt)


@dataclass(frozen=True)
class SourceInfo:
    """What planning needs to know about a source, read from its header only.

    ``width``/``height`` are the *displayed* size, after EXIF orientation."""

    width: int
    height: int
    format: str  # "jpeg", "png", "webp", "avif", "gif", ... as the loader reports it
    has_alpha: bool
    animated: bool = False


@dataclass(frozen=True)
class VariantSpec:
    """One planned variant: its size, format and key (relative to the release prefix)."""

    width: int
    height: int
    format: str
    key: str
    fallback: bool = field(default=False, compare=False)

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]


def is_candidate(logical_path: str, settings: VariantSettings) -> bool:
    """Whether ``logical_path`` (posix, relative to the static folder) may get variants, judged
    by its name and the include/exclude globs only: no I/O, so cheap for every file."""
    if PurePosixPath(logical_path).suffix.lower() not in SOURCE_EXTENSIONS:
        return False
    if not any(fnmatch.fnmatchcase(logical_path, pattern) for pattern in settings.include):
        return False
    return not any(fnmatch.fnmatchcase(logical_path, pattern) for pattern in settings.exclude)


def has_dimensions(logical_path: str) -> bool:
    """Whether the file is a raster image whose size the manifest records (variants or not):
    the variant sources and GIFs, by name."""
    return PurePosixPath(logical_path).suffix.lower() in SOURCE_EXTENSIONS | {".gif"}


def skip_reason(info: SourceInfo, settings: VariantSettings) -> str | None:
    """Why a probed source gets no variants (``None`` when it gets some)."""
    if info.animated:
        return "animated"
    if info.format not in ("jpeg", "png", "webp", "avif"):
        return f"{info.format} is not a raster photo format"
    # No width floor: an image narrower than every rung still gets its own width (the top
    # rung, as for any image narrower than the ladder's top), so it is served in AVIF/WebP too.
    return None


def rungs(source_width: int, ladder: tuple[int, ...]) -> list[int]:
    """The widths to make: every rung narrower than the source, never wider (no upscaling);
    the source's own width is the top rung when it falls below the ladder's top."""
    widths = [w for w in ladder if w < source_width]
    if source_width <= ladder[-1]:
        widths.append(source_width)
    return widths


def fallback_format(info: SourceInfo) -> str:
    """JPEG for opaque sources, PNG when there is an alpha channel (JPEG has none)."""
    return "png" if info.has_alpha else "jpeg"


def scaled_height(info: SourceInfo, width: int) -> int:
    """Height at ``width`` keeping the aspect ratio (rounded, at least 1 px)."""
    return max(1, round(info.height * width / info.width))


def plan_variants(
    source_hash: str, info: SourceInfo, settings: VariantSettings
) -> list[VariantSpec]:
    """Every variant of one source, modern formats first then the fallback, per width ascending.

    Pure and deterministic: the same source bytes and settings give the same keys anywhere."""
    if skip_reason(info, settings) is not None:
        return []
    specs = []
    for width in rungs(info.width, settings.widths):
        height = scaled_height(info, width)
        for fmt in (*settings.formats, fallback_format(info)):
            specs.append(VariantSpec(width=width, height=height, format=fmt,
                                     key=variant_key(source_hash, width, fmt, settings),
                                     fallback=fmt not in MODERN_FORMATS))
    return specs


def variant_key(source_hash: str, width: int, fmt: str, settings: VariantSettings) -> str:
    """``_v/<h2>/<hash16>.<width>w.<params10>.<ext>``: the source's content hash, the width and a
    digest of everything else that changes the bytes (format, quality, encoder version).

    Content-addressed, not path-addressed: renaming or copying a photo re-uses its variants."""
    if not re.fullmatch(r"[0-9a-f]{64}", source_hash):
        raise ValueError(f"source_hash must be a sha256 hex digest, got {source_hash!r}")
    digest = _params_digest(fmt, settings)
    return f"{KEY_DIR}/{source_hash[:2]}/{source_hash[:16]}.{width}w.{digest}{FORMATS[fmt][0]}"


def _params_digest(fmt: str, settings: VariantSettings) -> str:
    """10 hex digits naming everything but the source and width that shapes the bytes."""
    params = json.dumps({"format": fmt, "quality": settings.quality(fmt),
                         "encoder": settings.encoder_version}, sort_keys=True)
    return hashlib.sha256(params.encode()).hexdigest()[:10]


def parse_key(key: str, settings: VariantSettings) -> tuple[str, int, str] | None:
    """``(hash16, width, format)`` of a well-formed variant key whose width and parameters are
    in the configuration, else ``None``. For the dev route: only configured variants are served.

    A source-width top rung is not in the ladder; the caller checks the width against the
    source's own :func:`plan_variants` before encoding."""
    match = _KEY_RE.match(key)
    if match is None:
        return None
    prefix, hash16, width_text, digest, ext = match.groups()
    fmt = {"avif": "avif", "webp": "webp", "jpg": "jpeg", "png": "png"}[ext]
    if hash16[:2] != prefix or (fmt in MODERN_FORMATS and fmt not in settings.formats):
        return None
    if digest != _params_digest(fmt, settings):
        return None  # made with other parameters (quality, encoder version)
    return hash16, int(width_text), fmt


def usable(variants: Sequence[V]) -> list[V]:
    """The variants a page should offer: every one, except a modern-format variant whose
    ``size`` is not smaller than the fallback's at the same width (a size of 0 is unknown,
    as in development, and keeps it). Works on anything with ``width``, ``size`` and
    ``content_type`` (manifest :class:`~pipeline.manifest.Variant` records)."""
    modern = {FORMATS[f][1] for f in MODERN_FORMATS}
    fallback_size = {v.width: v.size for v in variants if v.content_type not in modern}
    return [v for v in variants
            if v.content_type not in modern or not v.size
            or v.size < fallback_size.get(v.width, v.size + 1)]


def missing_specs(
    specs: Iterable[VariantSpec], existing_keys: Iterable[str] | set[str]
) -> list[VariantSpec]:
    """The planned variants whose key is not in ``existing_keys`` (a listing, a cache): decided
    per key. Every planned variant is stored, dropped ones too (see :func:`usable`), so a key
    that is absent really is missing: an interrupted upload or a deleted object is made again."""
    present = existing_keys if isinstance(existing_keys, (set, frozenset)) else set(existing_keys)
    return [spec for spec in specs if spec.key not in present]


def needs_encoding(specs: Iterable[VariantSpec], existing_keys: set[str] | frozenset[str]) -> bool:
    """True when a source must be encoded: one of its planned variants is missing."""
    return bool(missing_specs(specs, existing_keys))
