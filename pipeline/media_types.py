"""The single source of truth for Content-Type and Cache-Control values.

Our own table instead of :mod:`mimetypes`: the stdlib reads the host's
``/etc/mime.types``, so the same file could get a different type on a laptop
and in CI, and some hosts still lack webp/avif.
"""

from __future__ import annotations

from pathlib import PurePosixPath

DEFAULT_CONTENT_TYPE = "application/octet-stream"

#: Fingerprinted objects never change, so caches may keep them for a year (RFC 8246).
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

#: The manifest names the current objects; it must be picked up soon after a deploy.
MANIFEST_MAX_AGE = 60
MANIFEST_CACHE_CONTROL = f"public, max-age={MANIFEST_MAX_AGE}"

_TEXT = "; charset=utf-8"

CONTENT_TYPES: dict[str, str] = {
    # images
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".ico": "image/vnd.microsoft.icon",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    # styles and scripts
    ".css": "text/css" + _TEXT,
    ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT,
    ".map": "application/json" + _TEXT,
    ".json": "application/json" + _TEXT,
    # fonts
    ".eot": "application/vnd.ms-fontobject",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    # documents and media
    ".html": "text/html" + _TEXT,
    ".txt": "text/plain" + _TEXT,
    # text formats a static folder often ships; without them they went out as
    # octet-stream (a download, not a page) and servers that derive a type from the
    # name (SeaweedFS) served something else than the deploy stored
    ".md": "text/markdown" + _TEXT,
    ".csv": "text/csv" + _TEXT,
    ".tsv": "text/tab-separated-values" + _TEXT,
    ".yaml": "application/yaml" + _TEXT,
    ".yml": "application/yaml" + _TEXT,
    ".toml": "application/toml" + _TEXT,
    ".ics": "text/calendar" + _TEXT,
    ".vtt": "text/vtt" + _TEXT,
    ".webmanifest": "application/manifest+json" + _TEXT,
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".wasm": "application/wasm",
}

#: Types a browser may execute as script or markup when served from our origin.
ACTIVE_CONTENT_TYPES = frozenset({"image/svg+xml", "text/html; charset=utf-8", "application/xml"})


def content_type_for(path: str) -> str:
    """Return the Content-Type for ``path`` from its extension (case-insensitive)."""
    return CONTENT_TYPES.get(_suffix(path).lower(), DEFAULT_CONTENT_TYPE)


def _suffix(path: str) -> str:
    """``PurePosixPath(path).suffix`` by string work (a deploy asks once per file; the
    ``PurePosixPath`` took 4.5 us each); odd paths (``a/.``, trailing slashes) go the long way."""
    name = path[path.rfind("/") + 1:]
    if not name or name == ".":
        return PurePosixPath(path).suffix
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


#: Base types (no parameters) worth storing precompressed besides ``text/*``: scripts,
#: JSON, SVG, XML, wasm and the font formats without their own compression (TTF/OTF).
#: Images (other than SVG), woff/woff2, PDF, audio, video and archives are compressed
#: already: compressing them again costs CPU and saves nothing.
COMPRESSIBLE_BASE_TYPES = frozenset({
    "application/json", "application/manifest+json", "application/xml", "application/yaml",
    "application/toml", "application/wasm", "image/svg+xml", "font/ttf", "font/otf",
})


def is_compressible(content_type: str) -> bool:
    """Whether an object of ``content_type`` is worth a brotli/gzip sibling (by type only)."""
    base = content_type.partition(";")[0].strip().lower()
    return base.startswith("text/") or base in COMPRESSIBLE_BASE_TYPES
