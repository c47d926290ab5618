"""How an image file is answered over HTTP, with no web framework: the checks on the disk,
the fixed headers, a bounded cache of both, and conditional/range/HEAD requests.

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
  every response, so an SVG (or a polyglot file) opened directly cannot run script.

The checks and the fixed headers are worked out once per file and kept in a bounded
:class:`FileCache`; every request revalidates its entry with one ``stat`` (device,
inode, size, mtime), so a rewritten, replaced, re-linked or deleted file goes back
through every check, and a served image costs what a plain ``send_from_directory``
route costs (``bench/bench_images.py``). The Flask routes, settings and the login
rules are in :mod:`pipeline.images.views`; anything that speaks WSGI can use
:func:`send_image`. Every refusal is a :class:`werkzeug.exceptions.NotFound`: a 404 that
says nothing about the disk.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from werkzeug.exceptions import NotFound, RequestedRangeNotSatisfiable
from werkzeug.http import dump_options_header, http_date, is_resource_modified
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from ..media_types import content_type_for

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: How many image names each folder's :class:`FileCache` remembers (the least recently
#: served are forgotten first); a few hundred bytes each.
FILE_CACHE_ENTRIES = 2048

#: Nothing may load, nothing may run; inline styles only, for SVG presentation.
#: ``sandbox`` also gives the document an opaque origin (no cookies, no storage).
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


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


def image_path(filename: str) -> str:
    """The safe path of an image, or abort with 404 (nothing about the disk is revealed)."""
    relative = safe_relative_path(filename)
    if relative is None or not content_type_for(relative).startswith("image/"):
        raise NotFound()
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


def check_file(directory: Path, relative: str, *, max_age: int | None) -> ServedFile:
    """Every check on the disk, for a name that passed :func:`image_path`; 404 if any fails.

    The *resolved* file must be inside the real ``directory`` (symlinks may point
    anywhere) and its real name must be an image type too (no link from ``a.png`` to
    ``page.html``).
    """
    try:
        root = directory.resolve()
        target = (root / relative).resolve()
        info = target.stat()
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        raise NotFound() from None
    if target == root or not target.is_relative_to(root) or not stat.S_ISREG(info.st_mode):
        raise NotFound()  # a symlink pointing out of the folder, or not a regular file
    mimetype = content_type_for(target.name)
    if not mimetype.startswith("image/"):
        raise NotFound()
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


def send_image(environ: WSGIEnvironment, directory: Path, relative: str, cache: FileCache, *,
               max_age: int | None) -> Response:
    """Serve ``directory/relative`` from ``cache``, checking the disk only when it changed.

    A conditional GET that matches answers 304 after one ``stat`` and never opens the
    file; any other request opens it and compares ``fstat`` of the open file with the
    stamp, so what is sent is the very file that was checked.
    """
    served = cache.get(relative)
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
        served = check_file(directory, relative, max_age=max_age)
        file = _open_unchanged(served)
        if file is None:
            raise NotFound()  # replaced between the check and the open
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
