"""The demo's uploads and listings: where an upload goes and what the gallery lists.

Demo policy, not library code: a real application decides its own storage layout and
listing (a database, pagination). Built on the library's public pieces: the image
views' settings and private bucket (:func:`pipeline.images.views.images_state`),
upload validation (:mod:`pipeline.images.uploads`) and the path rule
(:func:`pipeline.images.responder.safe_relative_path`).
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import current_app, url_for
from markupsafe import Markup

from pipeline.build.fingerprint import hash_file
from pipeline.build.variants import VariantSettings, VariantSpec, plan_variants
from pipeline.errors import ConfigError
from pipeline.flaskext.pictures import ImageFacts, picture_markup
from pipeline.images.responder import safe_relative_path
from pipeline.images.uploads import detect_image, generated_name, store_image
from pipeline.images.views import images_state
from pipeline.manifest import Variant
from pipeline.media_types import content_type_for

log = logging.getLogger(__name__)


def store_upload(data: bytes, *, private: bool = False) -> str:
    """Validate ``data`` as an image and store it under a generated name; return the name.

    Public uploads go to ``IMAGES_DIR``; private ones to ``PRIVATE_DIR``, or straight
    into the private bucket (no ACL) in CDN mode. Raises
    :class:`pipeline.images.uploads.UploadRejected` for bytes that are not an allowed image.
    """
    state = images_state()
    settings = state.settings
    objects = state.private_objects() if private else None
    if objects is not None:
        detected = detect_image(data, max_pixels=settings.upload_max_pixels)
        name = generated_name(detected.extension)
        objects.put(name, data)
        return name
    folder = settings.private_dir if private else settings.images_dir
    if folder is None:
        raise ConfigError(f"set {'PRIVATE_DIR' if private else 'IMAGES_DIR'} to accept uploads")
    name = store_image(folder, data, max_pixels=settings.upload_max_pixels)
    if not private:  # public images get the static images' variants (private ones stay whole)
        make_upload_variants(folder, name)
    return name


def list_images(folder: Path | None, *, limit: int = 100) -> list[str]:
    """Names of the image files directly in ``folder``, newest first (for a gallery).

    One odd entry never costs the others: a name that is not UTF-8 (no URL can name it)
    is skipped and logged once, and a file deleted while the folder is read is skipped.
    """
    if folder is None or not folder.is_dir():
        return []
    found: list[tuple[float, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not (safe_relative_path(name) and content_type_for(name).startswith("image/")):
                continue
            if not _encodable(name):
                _log_skipped(name)
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    found.append((entry.stat(follow_symlinks=False).st_mtime, name))
            except OSError:  # removed (or made unreadable) since the folder was read
                continue
    found.sort(reverse=True)
    return [name for _, name in found[:limit]]


def _encodable(name: str) -> bool:
    """Whether ``name`` is text: bytes that are not UTF-8 arrive as lone surrogates, which
    neither a URL nor the page can carry."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Names already logged as skipped (bounded: a folder of junk must not grow memory).
_SKIPPED: set[str] = set()
_SKIPPED_MAX = 1000


def _log_skipped(name: str) -> None:
    """Say once per name that it is not listed. Only the name's printable form is logged,
    never the folder: the private folder's location is nobody's business in a log."""
    if name in _SKIPPED or len(_SKIPPED) >= _SKIPPED_MAX:
        return
    _SKIPPED.add(name)
    shown = name.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
    log.warning("gallery: not listing '%s': its name is not valid UTF-8; rename the file", shown)


def list_private_images(*, limit: int = 100) -> list[str]:
    """Private image names: from the bucket in CDN mode, else from ``PRIVATE_DIR``."""
    state = images_state()
    objects = state.private_objects()
    if objects is not None:
        return objects.names()[:limit]
    return list_images(state.settings.private_dir, limit=limit)


# -- responsive variants of public uploads --------------------------------------------------

#: One upload encodes at a time in this process (CPU stays bounded like the upload limits:
#: size and pixels are checked before, so one encode is at most UPLOAD_MAX_PIXELS big).
_ENCODE_LOCK = threading.Lock()


def upload_variant_settings() -> VariantSettings:
    """The app's variant settings, as the static images use (the deploy's, unless the app
    sets ``CDN_VARIANTS``)."""
    from pipeline.flaskext.pictures import EXTENSION_KEY

    settings: VariantSettings = current_app.extensions[EXTENSION_KEY].settings
    return settings


def make_upload_variants(folder: Path, name: str) -> int:
    """Encode the variants of the stored public upload ``folder/name`` into ``folder/_v/...``,
    with the deploy's encoder; returns how many were written (0 for a GIF or a tiny image)."""
    from pipeline.build.variant_codec import encode_source, probe
    from pipeline.errors import ImageSourceError

    settings = upload_variant_settings()
    path = folder / name
    try:
        specs = plan_variants(hash_file(path), probe(path, settings), settings)
    except ImageSourceError:
        return 0  # accepted by the upload checks, unreadable to libvips: served as it is
    if not specs:
        return 0
    with _ENCODE_LOCK:
        return len(encode_source(path, specs, settings, out_dir=folder).written)


def upload_picture(name: str, alt: str, **options: Any) -> Markup:
    """``<picture>`` for a public upload: its variants served by the image view when they
    were made, else a plain ``<img>`` (with its size when it can be read)."""
    folder = images_state().settings.images_dir
    src = url_for("images.public", filename=name)
    if folder is None:
        return picture_markup(ImageFacts(src=src, width=None, height=None), alt, **options)
    path = folder / name
    try:
        stat = path.stat()
    except OSError:
        return picture_markup(ImageFacts(src=src, width=None, height=None), alt, **options)
    width, height, specs = _upload_plan(str(path), stat.st_mtime_ns, stat.st_size)
    variants = tuple((url_for("images.public", filename=spec.key),
                      Variant(spec.key, spec.width, spec.height, spec.content_type, size))
                     for spec, size in specs if (folder / spec.key).is_file())
    return picture_markup(ImageFacts(src=src, width=width, height=height, variants=variants),
                          alt, **options)


@lru_cache(maxsize=256)
def _upload_plan(path: str, mtime_ns: int, size: int) -> tuple[
        int | None, int | None, tuple[tuple[VariantSpec, int], ...]]:
    """Size and planned variants (with their stored sizes) of one upload version."""
    from pipeline.build.variant_codec import probe
    from pipeline.errors import ImageSourceError

    settings = upload_variant_settings()
    try:
        info = probe(Path(path), settings)
    except ImageSourceError:
        return None, None, ()
    specs = plan_variants(hash_file(path), info, settings)
    folder = Path(path).parent
    sized = tuple((spec, (folder / spec.key).stat().st_size) for spec in specs
                  if (folder / spec.key).is_file())
    return info.width, info.height, sized
