"""The demo's uploads and listings: where an upload goes, what the gallery lists, and how
public uploads get their variants (in the background: the upload answers first, the gallery
shows the original until every variant exists; see :func:`init_upload_encoding`).

Demo policy, not library code: a real application decides its own storage layout and
listing (a database, pagination). Built on the library's public pieces: the image
views' settings and private bucket (:func:`pipeline.images.views.images_state`),
upload validation (:mod:`pipeline.images.uploads`) and the path rule
(:func:`pipeline.images.responder.safe_relative_path`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from flask import Flask, current_app, url_for
from markupsafe import Markup

from pipeline.build.fingerprint import hash_file
from pipeline.build.variant_jobs import VariantJob, run_variant_job
from pipeline.build.variants import VariantSettings, VariantSpec, plan_variants
from pipeline.errors import ConfigError
from pipeline.flaskext.pictures import ImageFacts, picture_markup
from pipeline.images.encode_queue import EncodeRefused, EncodeWorker
from pipeline.images.responder import safe_relative_path
from pipeline.images.uploads import detect_image, generated_name, store_image
from pipeline.images.views import images_state
from pipeline.manifest import Variant
from pipeline.media_types import content_type_for

log = logging.getLogger(__name__)


def store_upload(data: bytes, *, owner: str, private: bool = False) -> str:
    """Validate ``data`` as an image and store it under a generated name; return the name.

    Public uploads go to ``IMAGES_DIR``, and their variants are scheduled for ``owner``
    (made in the background: the request does not wait); private ones to ``PRIVATE_DIR``,
    or straight into the private bucket (no ACL) in CDN mode. Raises
    :class:`pipeline.images.uploads.UploadRejected` for bytes that are not an allowed image,
    and :class:`pipeline.images.encode_queue.EncodeRefused` (nothing kept) when the encoder
    takes no more work now.
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
        try:
            schedule_upload_variants(folder, name, owner=owner)
        except EncodeRefused:
            (folder / name).unlink(missing_ok=True)  # refused whole: the user uploads again
            raise
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

#: Keys of the app's encode scheduler and (when the app uses one) in-process worker in
#: ``app.extensions``.
SCHEDULER_KEY = "demo.encode_scheduler"
WORKER_KEY = "demo.encode_worker"

#: Where an upload's variants go: ``(job, owner) -> None``, raising ``EncodeRefused`` when it
#: takes no more work. The default runs the job on an in-process :class:`EncodeWorker`; set
#: ``UPLOAD_ENCODE_SCHEDULER`` to hand it to a job queue (RQ, Celery) instead.
EncodeScheduler = Callable[[VariantJob, str], None]


def init_upload_encoding(app: Flask) -> None:
    """Give ``app`` its encode scheduler: ``UPLOAD_ENCODE_SCHEDULER`` if set, else a bounded
    in-process worker (``UPLOAD_ENCODE_WORKERS`` threads, ``UPLOAD_ENCODE_QUEUE`` jobs waiting,
    ``UPLOAD_ENCODE_PER_USER`` waiting or running per user, ``UPLOAD_ENCODE_RETRY_AFTER`` s)."""
    configured = app.config.get("UPLOAD_ENCODE_SCHEDULER")
    if configured is not None:
        if not callable(configured):
            raise ConfigError("UPLOAD_ENCODE_SCHEDULER must be a callable (job, owner)")
        app.extensions[SCHEDULER_KEY] = configured
        return
    worker = EncodeWorker(workers=_count(app, "UPLOAD_ENCODE_WORKERS", 1),
                          max_pending=_count(app, "UPLOAD_ENCODE_QUEUE", 0),
                          per_owner=_count(app, "UPLOAD_ENCODE_PER_USER", 1),
                          retry_after=_count(app, "UPLOAD_ENCODE_RETRY_AFTER", 1))
    app.extensions[WORKER_KEY] = worker

    def on_worker(job: VariantJob, owner: str) -> None:
        worker.submit(partial(run_variant_job, job), owner=owner)

    app.extensions[SCHEDULER_KEY] = on_worker


def _count(app: Flask, key: str, minimum: int) -> int:
    value = app.config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be a whole number >= {minimum}, not {value!r}")
    return value


def encode_worker(app: Flask) -> EncodeWorker | None:
    """The app's in-process worker, or ``None`` when a job queue does the encoding; call
    ``shutdown()`` on it when the app stops serving."""
    worker: EncodeWorker | None = app.extensions.get(WORKER_KEY)
    return worker


def upload_variant_settings() -> VariantSettings:
    """The app's variant settings, as the static images use (the deploy's, unless the app
    sets ``CDN_VARIANTS``)."""
    from pipeline.flaskext.pictures import EXTENSION_KEY

    settings: VariantSettings = current_app.extensions[EXTENSION_KEY].settings
    return settings


def schedule_upload_variants(folder: Path, name: str, *, owner: str) -> None:
    """Hand the variants of the stored public upload ``folder/name`` to the app's scheduler;
    they land next to it in ``folder/_v/...``, where :func:`upload_picture` finds them."""
    scheduler: EncodeScheduler = current_app.extensions[SCHEDULER_KEY]
    scheduler(VariantJob(source=folder / name, out_dir=folder,
                         settings=upload_variant_settings()), owner)


def upload_picture(name: str, alt: str, **options: Any) -> Markup:
    """``<picture>`` for a public upload: its variants served by the image view once every
    planned one exists, else (still encoding, or none to make) a plain ``<img>`` of the
    original, with its size when it can be read."""
    folder = images_state().settings.images_dir
    src = url_for("images.public", filename=name)
    if folder is None:
        return picture_markup(ImageFacts(src=src, width=None, height=None), alt, **options)
    path = folder / name
    try:
        stat = path.stat()
    except OSError:
        return picture_markup(ImageFacts(src=src, width=None, height=None), alt, **options)
    version = (str(path), stat.st_mtime_ns, stat.st_size)
    width, height, specs = _upload_plan(*version)
    stored = _stored_variants(version, folder, specs)
    variants = tuple((url_for("images.public", filename=spec.key),
                      Variant(spec.key, spec.width, spec.height, spec.content_type, size))
                     for spec, size in stored)
    return picture_markup(ImageFacts(src=src, width=width, height=height, variants=variants),
                          alt, **options)


@lru_cache(maxsize=256)
def _upload_plan(path: str, mtime_ns: int, size: int) -> tuple[
        int | None, int | None, tuple[VariantSpec, ...]]:
    """Size and planned variants of one upload version (header and hash only: cached)."""
    from pipeline.build.variant_codec import probe
    from pipeline.errors import ImageSourceError

    settings = upload_variant_settings()
    try:
        info = probe(Path(path), settings)
    except ImageSourceError:
        return None, None, ()
    return info.width, info.height, tuple(plan_variants(hash_file(path), info, settings))


#: Upload version -> its stored variants with their sizes, once all exist (bounded).
_COMPLETE: dict[tuple[str, int, int], tuple[tuple[VariantSpec, int], ...]] = {}
_COMPLETE_MAX = 256


def _stored_variants(version: tuple[str, int, int], folder: Path,
                     specs: tuple[VariantSpec, ...]) -> tuple[tuple[VariantSpec, int], ...]:
    """The planned variants with their sizes when every one is stored, else none: a page
    offers a full set or the original, never a half-encoded ladder. Only a complete set is
    remembered, so the page changes as soon as the background encode is done."""
    done = _COMPLETE.get(version)
    if done is not None or not specs:
        return done or ()
    try:
        sized = tuple((spec, (folder / spec.key).stat().st_size) for spec in specs)
    except OSError:
        return ()  # still encoding (or never will: a GIF, an unreadable image)
    if len(_COMPLETE) >= _COMPLETE_MAX:
        _COMPLETE.clear()
    _COMPLETE[version] = sized
    return sized
