"""Flask views for user images: public ones from a folder, private ones behind a login.

The HTTP semantics are Werkzeug's (``Response.make_conditional``: 304, Range/206/416,
HEAD; the WSGI file wrapper), with the headers :func:`flask.send_from_directory`
gives (ETag, Last-Modified, Cache-Control, Expires, Content-Disposition); this module
adds what it cannot know:

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

The checks and the fixed headers are worked out once per file and kept in a bounded
:class:`FileCache`; every request revalidates its entry with one ``stat`` (device,
inode, size, mtime), so a rewritten, replaced, re-linked or deleted file goes back
through every check, and a served image costs what a plain ``send_from_directory``
route costs (``bench/bench_images.py``).

Use :func:`images_blueprint` with a callable that names the logged-in user.

Config keys (read once when the blueprint is registered):
``IMAGES_DIR``, ``IMAGES_CACHE_MAX_AGE`` (seconds, default 3600), ``PRIVATE_DIR``,
``PRIVATE_BUCKET`` (set = CDN mode for private images), ``PRIVATE_PREFIX`` (default
``private``), ``PRIVATE_ENDPOINT_URL``, ``PRIVATE_REGION``, ``PRIVATE_URL_EXPIRES``
(seconds, default 300, at most 900), ``UPLOAD_MAX_PIXELS``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, current_app, redirect, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import dump_options_header, http_date, is_resource_modified
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import wrap_file

from ..errors import ConfigError
from ..media_types import content_type_for
from ..validate import validate_bucket, validate_prefix, validate_url
from .private import (
    DEFAULT_EXPIRES_IN,
    PRIVATE_CACHE_CONTROL,
    PrivateObjects,
    PrivateStorage,
    validate_expires_in,
)
from .uploads import DEFAULT_MAX_PIXELS

EXTENSION_KEY = "pipeline.images"
DEFAULT_CACHE_MAX_AGE = 3600
#: How many image names each folder's :class:`FileCache` remembers (the least recently
#: served are forgotten first); a few hundred bytes each.
FILE_CACHE_ENTRIES = 2048

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


class ServedFile:
    """One image name's answer, worked out once and reused while the file is unchanged.

    ``stamp`` is what ``stat`` says about the file behind ``path`` (the requested path,
    symlinks followed): device, inode, size and mtime in nanoseconds. A request takes
    one ``stat`` (or ``fstat`` of the file it opened) and compares; any difference, such
    as a file rewritten, replaced, or swapped for a symlink to elsewhere (a different
    inode), sends the name back through every check. Headers that never change for this
    version of the file are computed here, once.
    """

    __slots__ = ("etag", "headers", "last_modified", "path", "size", "stamp")

    def __init__(self, path: str, info: os.stat_result, headers: list[tuple[str, str]]) -> None:
        self.path = path
        self.stamp = _stamp(info)
        self.size = info.st_size
        self.etag = _etag(info)
        self.last_modified = http_date(info.st_mtime)
        self.headers = [*headers, ("ETag", self.etag), ("Last-Modified", self.last_modified)]


def _stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _etag(info: os.stat_result) -> str:
    """A strong validator that changes with the content's version.

    Size and mtime (as nginx uses), plus the inode, so a file replaced atomically within
    the file system's timestamp granularity still gets a new tag; hashed so the inode
    number is not published.
    """
    digest = hashlib.blake2b(repr(_stamp(info)).encode(), digest_size=10).hexdigest()
    return f'"{digest}"'


class FileCache:
    """A bounded LRU map from image name to :class:`ServedFile`, for one folder.

    Only names that passed every check are stored, so a flood of bad names costs
    nothing here; ``max_entries`` bounds the memory whatever the folder holds.
    """

    def __init__(self, max_entries: int = FILE_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, ServedFile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> ServedFile | None:
        with self._lock:
            served = self._entries.get(name)
            if served is not None:
                self._entries.move_to_end(name)
            return served

    def put(self, name: str, served: ServedFile) -> None:
        with self._lock:
            self._entries[name] = served
            self._entries.move_to_end(name)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def discard(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def __len__(self) -> int:
        return len(self._entries)


def _check_file(directory: Path, relative: str, *, max_age: int | None) -> ServedFile:
    """Every check on the disk, for a name that passed :func:`_image_path`; 404 if any fails.

    The *resolved* file must be inside the real ``directory`` (symlinks may point
    anywhere) and its real name must be an image type too (no link from ``a.png`` to
    ``page.html``).
    """
    try:
        root = directory.resolve()
        target = (root / relative).resolve()
        info = target.stat()
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        abort(404)
    if target == root or not target.is_relative_to(root) or not stat.S_ISREG(info.st_mode):
        abort(404)  # a symlink pointing out of the folder, or not a regular file
    mimetype = content_type_for(target.name)
    if not mimetype.startswith("image/"):
        abort(404)
    # The requested path under the folder as configured, not the resolved one: if the
    # folder is a symlink that is later re-pointed, the next stat sees another file.
    return ServedFile(os.path.join(os.path.abspath(directory), relative), info,
                      _fixed_headers(target.name, mimetype, info.st_size, max_age))


def _fixed_headers(name: str, mimetype: str, size: int,
                   max_age: int | None) -> list[tuple[str, str]]:
    """The headers ``send_file`` would give, plus ours, that stay the same for this file."""
    response = Response()
    # Exactly the table's value: Werkzeug would append "; charset=utf-8" to +xml types,
    # which overrides the encoding an SVG declares in its own XML prolog.
    response.headers["Content-Type"] = mimetype
    response.content_length = size
    response.headers["Content-Disposition"] = _inline_disposition(name)
    response.accept_ranges = "bytes"
    response.cache_control.no_cache = True
    if max_age is not None:
        if max_age > 0:
            response.cache_control.no_cache = None
            response.cache_control.public = True
        response.cache_control.max_age = max_age
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = IMAGE_CSP
    return response.headers.to_wsgi_list()


def _inline_disposition(name: str) -> str:
    """``inline`` with the file's name (RFC 6266), an ASCII fallback beside a UTF-8 one."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        return dump_options_header(
            "inline",
            {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='!#$&+-.^_`|~')}"},
        )
    return dump_options_header("inline", {"filename": name})


def _send_image(directory: Path, relative: str, cache: FileCache, *,
                max_age: int | None) -> Response:
    """Serve ``directory/relative`` from ``cache``, checking the disk only when it changed.

    A conditional GET that matches answers 304 after one ``stat`` and never opens the
    file; any other request opens it and compares ``fstat`` of the open file with the
    stamp, so what is sent is the very file that was checked.
    """
    served = cache.get(relative)
    environ = request.environ
    if served is not None and _may_answer_304(environ):
        try:
            unchanged = _stamp(os.stat(served.path)) == served.stamp
        except OSError:
            unchanged = False
        if not unchanged:
            served = None
        elif not is_resource_modified(environ, served.etag, last_modified=served.last_modified):
            return _response(served, None, max_age, status=304)
    file = _open_unchanged(served) if served is not None else None
    if served is None or file is None:  # not cached, or changed since: every check again
        cache.discard(relative)
        served = _check_file(directory, relative, max_age=max_age)
        file = _open_unchanged(served)
        if file is None:
            abort(404)  # replaced between the check and the open
        cache.put(relative, served)
    response = _response(served, wrap_file(environ, file), max_age)
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=served.size)
    except RequestedRangeNotSatisfiable:
        file.close()
        raise
    return response


def _open_unchanged(served: ServedFile) -> BinaryIO | None:
    """The file behind ``served.path`` opened, if it is still the one that was checked."""
    try:
        file = open(served.path, "rb")  # noqa: SIM115 (the response closes it)
    except OSError:
        return None
    if _stamp(os.fstat(file.fileno())) != served.stamp:
        file.close()
        return None
    return file


def _may_answer_304(environ: Mapping[str, Any]) -> bool:
    """A validator is sent and nothing asks for more than a 304 check (Range, If-Match)."""
    return (("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ)
            and "HTTP_RANGE" not in environ and "HTTP_IF_MATCH" not in environ)


def _response(served: ServedFile, body: Any, max_age: int | None, *,
              status: int = 200) -> Response:
    headers = [*served.headers, ("Date", http_date())]
    if max_age is not None:
        headers.append(("Expires", http_date(int(time.time()) + max_age)))
    return Response(body, status=status, headers=headers, direct_passthrough=True)


# -- views -----------------------------------------------------------------------------------


def serve_public(filename: str) -> Response:
    """``GET /images/<path>``: a public image, cacheable for ``IMAGES_CACHE_MAX_AGE`` seconds."""
    state = images_state()
    settings = state.settings
    if settings.images_dir is None:
        abort(404)
    # A cached name passed the string checks when it was stored (they depend on the name only).
    relative = filename if filename in state.public_files else _image_path(filename)
    return _send_image(settings.images_dir, relative, state.public_files,
                       max_age=settings.cache_max_age)


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
    response = _send_image(state.settings.private_dir, relative, state.private_files, max_age=None)
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
