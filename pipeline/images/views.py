"""Flask views for user images: public ones from a folder, private ones behind a login.

HTTP semantics come from :func:`flask.send_from_directory` (safe join, ETag and
Last-Modified, 304, Range/206/416, HEAD, streaming through the WSGI file wrapper);
this module adds what it cannot know:

* a stricter path rule (no dot-files, backslashes, control characters) and a check
  that the *resolved* file is inside the real folder, because ``send_from_directory``
  follows symlinks wherever they point;
* the Content-Type from :mod:`pipeline.media_types` (never the host's ``mimetypes``),
  and only for image types, so an ``.html`` dropped in the folder is never served;
* ``X-Content-Type-Options: nosniff`` and a sandboxing Content-Security-Policy on
  every response, so an SVG (or a polyglot file) opened directly cannot run script;
* for private images: a 404 for unsafe names first (pure string check, no file
  access, so it reveals nothing), then 401/403 from the application's own user
  check, and only then a file read or a presigned S3 URL.

Use :func:`images_blueprint` with a callable that names the logged-in user.

Config keys (read once when the blueprint is registered):
``IMAGES_DIR``, ``IMAGES_CACHE_MAX_AGE`` (seconds, default 3600), ``PRIVATE_DIR``,
``PRIVATE_BUCKET`` (set = CDN mode for private images), ``PRIVATE_PREFIX`` (default
``private``), ``PRIVATE_ENDPOINT_URL``, ``PRIVATE_REGION``, ``PRIVATE_URL_EXPIRES``
(seconds, default 300, at most 900), ``UPLOAD_MAX_PIXELS``.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, redirect, send_from_directory
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from ..cli.settings import validate_bucket, validate_prefix, validate_url
from ..errors import ConfigError
from ..media_types import content_type_for
from .private import (
    DEFAULT_EXPIRES_IN,
    PRIVATE_CACHE_CONTROL,
    PrivateObjects,
    PrivateStorage,
    validate_expires_in,
)
from .uploads import DEFAULT_MAX_PIXELS, detect_image, generated_name, store_image

EXTENSION_KEY = "pipeline.images.views"
DEFAULT_CACHE_MAX_AGE = 3600

#: Nothing may load, nothing may run; inline styles only, for SVG presentation.
#: ``sandbox`` also gives the document an opaque origin (no cookies, no storage).
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

#: Returns the logged-in user's name, or ``None``.
CurrentUser = Callable[[], str | None]
#: ``may_read(user, relative_path)``: may this logged-in user see that private image?
MayRead = Callable[[str, str], bool]


@dataclass(frozen=True)
class PrivateBucket:
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None


@dataclass(frozen=True)
class ImageSettings:
    """The image views' configuration, validated once at start-up."""

    images_dir: Path | None
    private_dir: Path | None
    cache_max_age: int = DEFAULT_CACHE_MAX_AGE
    private_bucket: PrivateBucket | None = None
    private_url_expires: int = DEFAULT_EXPIRES_IN
    upload_max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImageSettings:
        """Read and validate the config keys listed in the module docstring."""
        bucket = config.get("PRIVATE_BUCKET")
        return cls(
            images_dir=_optional_path(config.get("IMAGES_DIR")),
            private_dir=_optional_path(config.get("PRIVATE_DIR")),
            cache_max_age=_non_negative(config, "IMAGES_CACHE_MAX_AGE", DEFAULT_CACHE_MAX_AGE),
            private_bucket=PrivateBucket(
                bucket=validate_bucket(str(bucket)),
                prefix=validate_prefix(str(config.get("PRIVATE_PREFIX", "private"))),
                endpoint_url=validate_url(config.get("PRIVATE_ENDPOINT_URL"), "PRIVATE_ENDPOINT_URL"),
                region=config.get("PRIVATE_REGION"),
            ) if bucket else None,
            private_url_expires=validate_expires_in(
                config.get("PRIVATE_URL_EXPIRES", DEFAULT_EXPIRES_IN)
            ),
            upload_max_pixels=_non_negative(config, "UPLOAD_MAX_PIXELS", DEFAULT_MAX_PIXELS),
        )


def _optional_path(value: Any) -> Path | None:
    return Path(value) if value else None


def _non_negative(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a whole number of at least 0, not {value!r}")
    return value


class ImagesState:
    """Per-app state in ``app.extensions``: settings and the lazily built S3 backend."""

    def __init__(self, settings: ImageSettings, private_storage: PrivateStorage | None) -> None:
        self.settings = settings
        self._storage = private_storage
        self._objects: PrivateObjects | None = None
        self._lock = threading.Lock()

    def private_objects(self) -> PrivateObjects | None:
        """The private bucket in CDN mode, else ``None``; boto3 is imported on first use."""
        bucket = self.settings.private_bucket
        if bucket is None:
            return None
        with self._lock:
            if self._objects is None:
                storage = self._storage or _s3_storage(bucket)
                self._objects = PrivateObjects(
                    storage, prefix=bucket.prefix, expires_in=self.settings.private_url_expires
                )
            return self._objects


def _s3_storage(bucket: PrivateBucket) -> PrivateStorage:
    from ..storage.s3 import S3Settings, S3Storage

    return S3Storage(S3Settings(
        bucket=bucket.bucket, endpoint_url=bucket.endpoint_url, region=bucket.region, workers=4
    ))


def images_state(app: Flask | None = None) -> ImagesState:
    """The state registered by :func:`images_blueprint` for ``app`` (default: current app)."""
    state: ImagesState | None = (app or current_app).extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError("register pipeline.images.views.images_blueprint() on this app first")
    return state


# -- paths -----------------------------------------------------------------------------------


def safe_relative_path(filename: str) -> str | None:
    """``filename`` if it is a plain relative path we are willing to look up, else ``None``.

    Pure string rules, no file access: every segment non-empty and not starting with
    a dot (so no ``..``, no ``.htaccess``, no in-flight temporary files), also after
    NFKC normalisation (``\\uff0e\\uff0e`` is ``..`` to some tools), and no
    backslash, NUL or other control character.
    """
    if not filename or any(ch == "\\" or ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        return None
    for part in filename.split("/"):
        if not part or unicodedata.normalize("NFKC", part).startswith("."):
            return None
    return filename


def _image_path(filename: str) -> str:
    """The safe path of an image, or abort with 404 (nothing about the disk is revealed)."""
    relative = safe_relative_path(filename)
    if relative is None or not content_type_for(relative).startswith("image/"):
        abort(404)
    return relative


def _send_image(directory: Path, relative: str, *, max_age: int | None) -> Response:
    """Serve ``directory/relative`` if its real location is inside the real ``directory``."""
    try:
        root = directory.resolve()
        target = (root / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        abort(404)
    if target == root or not target.is_relative_to(root):
        abort(404)  # a symlink pointing out of the folder
    inner = target.relative_to(root).as_posix()
    mimetype = content_type_for(inner)
    if not mimetype.startswith("image/"):
        abort(404)  # a link from an image name to something else
    response = send_from_directory(
        root, inner, mimetype=mimetype, max_age=max_age, conditional=True, etag=True
    )
    # Exactly the table's value: Werkzeug would append "; charset=utf-8" to +xml types,
    # which overrides the encoding an SVG declares in its own XML prolog.
    response.headers["Content-Type"] = mimetype
    return _harden(response)


def _harden(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = IMAGE_CSP
    return response


# -- views -----------------------------------------------------------------------------------


def serve_public(filename: str) -> Response:
    """``GET /images/<path>``: a public image, cacheable for ``IMAGES_CACHE_MAX_AGE`` seconds."""
    settings = images_state().settings
    relative = _image_path(filename)
    if settings.images_dir is None:
        abort(404)
    return _send_image(settings.images_dir, relative, max_age=settings.cache_max_age)


def serve_private(
    filename: str, *, current_user: CurrentUser, may_read: MayRead
) -> BaseResponse:
    """``GET /private/<path>``: 404 unsafe name, 401 anonymous, 403 not allowed, then the image.

    In CDN mode the answer is a 302 to a presigned URL that is never cached or logged.
    """
    relative = _image_path(filename)
    user = current_user()
    if user is None:
        abort(401)
    if not may_read(user, relative):
        abort(403)
    state = images_state()
    objects = state.private_objects()
    if objects is not None:
        response = redirect(objects.presigned_url(relative), code=302)
        response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
        return response
    if state.settings.private_dir is None:
        abort(404)
    response = _send_image(state.settings.private_dir, relative, max_age=None)
    response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
    return response


def _allow_every_user(user: str, relative_path: str) -> bool:
    return True


def images_blueprint(
    *,
    current_user: CurrentUser,
    may_read_private: MayRead = _allow_every_user,
    private_storage: PrivateStorage | None = None,
    name: str = "images",
) -> Blueprint:
    """Routes ``/images/<path>`` (endpoint ``images.public``) and ``/private/<path>``
    (``images.private``); settings are read from the app's config at registration.

    ``private_storage`` replaces the S3 backend built from ``PRIVATE_BUCKET`` (tests, stubs).
    """
    blueprint = Blueprint(name, __name__)

    def register(setup: BlueprintSetupState) -> None:
        settings = ImageSettings.from_config(setup.app.config)
        setup.app.extensions[EXTENSION_KEY] = ImagesState(settings, private_storage)

    def private(filename: str) -> BaseResponse:
        return serve_private(filename, current_user=current_user, may_read=may_read_private)

    blueprint.record_once(register)
    # merge_slashes=False: "//etc/passwd" must be a 404, not a redirect to "/etc/passwd".
    blueprint.add_url_rule("/images/<path:filename>", "public", serve_public, merge_slashes=False)
    blueprint.add_url_rule("/private/<path:filename>", "private", private, merge_slashes=False)
    return blueprint


# -- uploads and listings (used by the demo site) ------------------------------------------------


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
    return store_image(folder, data, max_pixels=settings.upload_max_pixels)


def list_images(folder: Path | None, *, limit: int = 100) -> list[str]:
    """Names of the image files directly in ``folder``, newest first (for a gallery)."""
    if folder is None or not folder.is_dir():
        return []
    found: list[tuple[float, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if (safe_relative_path(entry.name) and entry.is_file(follow_symlinks=False)
                    and content_type_for(entry.name).startswith("image/")):
                found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    found.sort(reverse=True)
    return [name for _, name in found[:limit]]


def list_private_images(*, limit: int = 100) -> list[str]:
    """Private image names: from the bucket in CDN mode, else from ``PRIVATE_DIR``."""
    state = images_state()
    objects = state.private_objects()
    if objects is not None:
        return objects.names()[:limit]
    return list_images(state.settings.private_dir, limit=limit)
