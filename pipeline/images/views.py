"""Flask views for user images: public ones from a folder, private ones behind a login.

How a file is answered (the path rules, the checks on the disk, the headers, 304/206/HEAD)
is :mod:`pipeline.images.responder`, with no Flask in it; this module adds the routes, the
settings, and for private images the order of the checks: a 404 for unsafe names first
(pure string check, no file access, so it reveals nothing), then 401/403 from the
application's own user check, and only then a file read or a presigned S3 URL.

Use :func:`images_blueprint` with a callable that names the logged-in user.

Config keys (read once when the blueprint is registered):
``IMAGES_DIR``, ``IMAGES_CACHE_MAX_AGE`` (seconds, default 3600), ``PRIVATE_DIR``,
``PRIVATE_BUCKET`` (set = CDN mode for private images), ``PRIVATE_PREFIX`` (default
``private``), ``PRIVATE_ENDPOINT_URL``, ``PRIVATE_REGION``, ``PRIVATE_URL_EXPIRES``
(seconds, default 300, at most 900), ``UPLOAD_MAX_PIXELS``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from ..errors import ConfigError
from ..validate import validate_bucket, validate_prefix, validate_url
from .private import (
    DEFAULT_EXPIRES_IN,
    PRIVATE_CACHE_CONTROL,
    PrivateObjects,
    PrivateStorage,
    validate_expires_in,
)
from .responder import FileCache, image_path, send_image
from .uploads import DEFAULT_MAX_PIXELS

EXTENSION_KEY = "pipeline.images"
DEFAULT_CACHE_MAX_AGE = 3600
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
                endpoint_url=validate_url(config.get("PRIVATE_ENDPOINT_URL"),
                                          "PRIVATE_ENDPOINT_URL"),
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
        self.public_files = FileCache()
        self.private_files = FileCache()

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


# -- views -----------------------------------------------------------------------------------


def serve_public(filename: str) -> BaseResponse:
    """``GET /images/<path>``: a public image, cacheable for ``IMAGES_CACHE_MAX_AGE`` seconds."""
    state = images_state()
    settings = state.settings
    if settings.images_dir is None:
        abort(404)
    # A cached name passed the string checks when it was stored (they depend on the name only).
    relative = filename if filename in state.public_files else image_path(filename)
    return send_image(request.environ, settings.images_dir, relative, state.public_files,
                       max_age=settings.cache_max_age)


def serve_private(
    filename: str, *, current_user: CurrentUser, may_read: MayRead
) -> BaseResponse:
    """``GET /private/<path>``: 404 unsafe name, 401 anonymous, 403 not allowed, then the image.

    In CDN mode the answer is a 302 to a presigned URL that is never cached or logged.
    """
    relative = image_path(filename)
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
    response = send_image(request.environ, state.settings.private_dir, relative,
                          state.private_files, max_age=None)
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
