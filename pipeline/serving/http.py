"""Reading a manifest over HTTP(S): one origin, and a request another thread can cut off.

Two things urllib does not do by default, both needed by an app server that polls a
CDN for its manifest:

* **Redirects stay on the origin.** urllib follows a redirect to any URL, so a CDN
  (or anyone who can answer for it) could send the app to another host, or from
  ``https`` down to ``http``, and the app would serve whatever manifest it found there.
  A redirect that changes scheme, host or port is refused (:class:`SourceError`).
* **A request can be aborted.** Socket timeouts bound each ``recv``, not the response:
  a server that trickles one byte every two seconds never trips them. The reader keeps
  the sockets of the request in flight, and :meth:`HttpReader.abort` shuts them down
  from another thread, which ends the blocked ``recv`` at once
  (:mod:`pipeline.serving.deadline` calls it when a fetch overruns its deadline).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..errors import ManifestError, SourceError
from ..storage.base import NotModified, StoredBytes
from ..urls import redact_url

#: Per socket operation (connect, each recv); the overall deadline is the caller's.
READ_TIMEOUT = 10.0
#: A manifest of 10,000 files is about 2.5 MB; anything this big is not one of ours.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``, the port made explicit: what a redirect may not change."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the origin of the request that got it."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if origin(newurl) != origin(req.full_url):
            fp.close()  # urllib closes the redirect's response only when it follows it
            raise SourceError(f"cannot read {redact_url(req.full_url)}: refused a redirect "
                              f"({code}) to {redact_url(newurl)}, another scheme or origin")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Sockets:
    """The sockets of the request in flight; :meth:`abort` shuts them down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._aborted = False

    def reset(self) -> None:
        with self._lock:
            self._open, self._aborted = [], False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.append(sock)
            if self._aborted:  # connected just after the abort
                _shut(sock)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            for sock in self._open:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket (whose override would first drop
    # its TLS state under the thread still reading): the blocked recv returns at once.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _tracked(base: type[http.client.HTTPConnection], sockets: _Sockets) -> Any:
    class Tracked(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    return Tracked


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, sockets: _Sockets) -> None:
        super().__init__()
        self._connection = _tracked(http.client.HTTPConnection, sockets)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, sockets: _Sockets) -> None:
        super().__init__()
        self._connection = _tracked(http.client.HTTPSConnection, sockets)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]


class HttpReader:
    """GETs one URL at a time, conditionally; :meth:`abort` cuts the current request off."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = redact_url(url)
        self._sockets = _Sockets()
        self._opener = urllib.request.build_opener(
            _SameOriginRedirects(), _HTTPHandler(self._sockets), _HTTPSHandler(self._sockets))

    def abort(self) -> None:
        """End the request in flight now (from another thread); its caller gets an error."""
        self._sockets.abort()

    def get(self, etag: str | None) -> StoredBytes | NotModified | None:
        """The body and ETag; :class:`NotModified` if it still has ``etag``; ``None`` if absent."""
        self._sockets.reset()
        # The ETag is sent back exactly as the server gave it (a CDN may make it weak).
        headers = {"Accept-Encoding": "identity", **({"If-None-Match": etag} if etag else {})}
        request = urllib.request.Request(self.url, headers=headers)
        try:
            with self._opener.open(request, timeout=READ_TIMEOUT) as response:
                data = response.read(MAX_MANIFEST_BYTES + 1)
                token = response.headers.get("ETag")
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and etag:
                return NotModified(etag)
            # A bucket without ListBucket for the reader answers 403 for a missing key.
            if exc.code in (403, 404):
                return None
            raise SourceError(f"cannot read {self.description}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SourceError(f"cannot read {self.description}: {reason}") from exc
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.description} is larger than {MAX_MANIFEST_BYTES} bytes")
        return StoredBytes(data, token or "")
