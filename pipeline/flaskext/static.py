"""How static URLs and static responses behave under the CDN extension.

Two Flask-facing pieces, installed by :meth:`pipeline.flaskext.extension.CDN.init_app`:

* CDN mode: a replacement for ``app.url_for`` whose common case (a plain
  ``url_for('static', filename=...)`` of a deployed file) is one dict lookup; the
  rest (blueprints, query args, anchors, ``_scheme``, fallback) is built here too.
* Development: a wrapper of Flask's static view that, for a missing file only,
  redirects to the CDN copy or answers the placeholder image with 404, and serves a
  precompressed sibling lying beside a file (``app.css.br``) to a client that accepts it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from flask import (
    Flask,
    Response,
    current_app,
    has_request_context,
    redirect,
    request,
    send_from_directory,
)
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import iter_multi_items
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from ..keys import ENCODING_SUFFIXES, encoded_key
from ..media_types import content_type_for, is_compressible
from ..negotiate import choose_encoding
from ..urls import cdn_url
from .mounts import blueprint_prefix
from .state import CDNState, Placeholder

UrlFor = Callable[..., str]

# Same safe sets as Werkzeug's query encoding and Flask's anchor quoting, so a CDN
# URL's query and fragment read exactly like the local URL's would.
_QUERY_SAFE = "!$'()*,/:;?@"
_ANCHOR_SAFE = "%!#$&'()*+,/:;=?@"


def install_url_for(app: Flask, state: CDNState) -> None:
    """Route ``app.url_for`` (used by ``flask.url_for``) and the template global through the CDN.

    Templates bind ``url_for`` when ``app.jinja_env`` is created: if it already
    exists its global is replaced; if not, Flask will bind the wrapper when it creates it.
    """
    wrapper = make_url_for(app, state, app.url_for)
    app.url_for = wrapper  # type: ignore[method-assign]  # the instance attribute shadows it
    if "jinja_env" in app.__dict__:  # werkzeug's cached_property stores it here
        app.jinja_env.globals["url_for"] = wrapper


def make_url_for(app: Flask, state: CDNState, original: UrlFor) -> UrlFor:
    """The replacement ``url_for``: a dict lookup for the common case, the full rules otherwise."""
    builder = StaticUrlBuilder(app, state, original)

    def url_for(
        endpoint: str,
        *,
        _anchor: str | None = None,
        _method: str | None = None,
        _scheme: str | None = None,
        _external: bool | None = None,
        **values: Any,
    ) -> str:
        # Fast path, kept inline: plain url_for('static', filename=...) of a deployed file.
        if (endpoint == "static" and _anchor is None and _scheme is None and _method is None
                and len(values) == 1):
            url = state.urls.get(values.get("filename"))  # type: ignore[arg-type]
            if url is not None:
                return url
        return builder.build(endpoint, values, anchor=_anchor, method=_method,
                             scheme=_scheme, external=_external)

    url_for.__doc__ = original.__doc__
    return url_for


class StaticUrlBuilder:
    """Everything beyond the fast path: blueprints, query args, anchors, fallback."""

    def __init__(self, app: Flask, state: CDNState, original: UrlFor) -> None:
        self.app = app
        self.state = state
        self.original = original

    def build(self, endpoint: str, values: dict[str, Any], *, anchor: str | None,
              method: str | None, scheme: str | None, external: bool | None) -> str:
        """A CDN URL for a deployed static file, else whatever Flask would build."""
        endpoint = absolute_endpoint(endpoint)
        logical = self.logical_path(endpoint, values)
        url = None
        if logical is not None and method in (None, "GET", "HEAD"):
            url = self.state.urls.get(logical)
            if url is None:
                self.state.report_missing(logical)
        if url is None:
            return self.original(endpoint, _anchor=anchor, _method=method, _scheme=scheme,
                                 _external=external, **values)
        return decorate_url(url, values, anchor=anchor, scheme=scheme, external=external)

    def logical_path(self, endpoint: str, values: dict[str, Any]) -> str | None:
        """The manifest name a static endpoint refers to; None for anything served by Flask."""
        filename = values.get("filename")
        if filename is None:
            return None
        if endpoint == "static":
            return str(filename)
        name, dot, tail = endpoint.rpartition(".")
        if not dot or tail != "static":
            return None
        prefix = self.blueprint_prefix(name)
        return None if prefix is None else prefix + str(filename)

    def blueprint_prefix(self, name: str) -> str | None:
        """Cached :func:`blueprint_prefix` (blueprints are registered before serving)."""
        prefixes = self.state.blueprint_prefixes
        if name not in prefixes:
            prefixes[name] = blueprint_prefix(self.app, name)
        return prefixes[name]


def absolute_endpoint(endpoint: str) -> str:
    """Resolve ``.static`` against the current request's blueprint, as Flask does."""
    if endpoint[:1] != ".":
        return endpoint
    blueprint = request.blueprint if has_request_context() else None
    return f"{blueprint}{endpoint}" if blueprint else endpoint[1:]


def decorate_url(url: str, values: dict[str, Any], *, anchor: str | None,
                 scheme: str | None, external: bool | None) -> str:
    """Apply ``_scheme``, extra query args and ``_anchor`` to a CDN URL, Flask-style."""
    if scheme is not None:
        if external is False:  # Flask refuses this too: it would hide an insecure URL
            raise ValueError("When specifying '_scheme', '_external' must be True.")
        url = scheme + url[url.index(":"):]
    query = [(k, v) for k, v in iter_multi_items(values) if k != "filename" and v is not None]
    if query:
        url = f"{url}?{urlencode(query, safe=_QUERY_SAFE)}"
    if anchor is not None:
        url = f"{url}#{quote(anchor, safe=_ANCHOR_SAFE)}"
    return url


# --- development static view -----------------------------------------------------------


def dev_static_view(
    state: CDNState, view: Callable[..., Any], *, folder: str | None = None,
) -> Callable[..., ResponseReturnValue]:
    """Wrap Flask's static view: files that exist keep Flask's handling (ETag, 304, Range);
    one with a precompressed sibling beside it in ``folder`` is negotiated first."""

    def static(**kwargs: Any) -> ResponseReturnValue:
        filename = str(kwargs.get("filename", ""))
        encodings = precompressed_beside(folder, filename)
        try:
            if encodings:
                return negotiated_static(folder, filename, encodings)  # type: ignore[arg-type]
            response: ResponseReturnValue = view(**kwargs)
        except NotFound:
            fallback = missing_static_response(state, str(kwargs.get("filename", "")))
            if fallback is None:
                raise
            return fallback
        return response

    return static


def precompressed_beside(folder: str | None, filename: str) -> list[str]:
    """The encodings whose sibling (``name.br``, ``name.gz``, as a build tool or the deploy
    writes them) lies beside the compressible file ``filename`` of ``folder``."""
    if folder is None or not is_compressible(content_type_for(filename)):
        return []
    path = safe_join(folder, filename)  # Werkzeug's: None for "..", absolute paths
    if path is None or not os.path.isfile(path):
        return []
    return [encoding for encoding in ENCODING_SUFFIXES
            if os.path.isfile(encoded_key(path, encoding))]


def negotiated_static(folder: str, filename: str, encodings: list[str]) -> Response:
    """The representation ``Accept-Encoding`` picks (:mod:`pipeline.negotiate`), with Flask's
    handling (ETag per file, 304, Range), the file's own type and ``Vary``."""
    encoding = choose_encoding(request.headers.get("Accept-Encoding"), encodings)
    name = filename if encoding is None else encoded_key(filename, encoding)
    response = send_from_directory(folder, name,
                                   max_age=current_app.get_send_file_max_age(filename))
    # Set after send_file, which would append a second charset to text/* types.
    response.headers["Content-Type"] = content_type_for(filename)
    if encoding is not None:
        response.headers["Content-Encoding"] = encoding
    response.headers["Vary"] = "Accept-Encoding"
    return response


def missing_static_response(state: CDNState, filename: str) -> BaseResponse | None:
    """A redirect to the CDN copy, the placeholder for an image, or None (plain 404)."""
    manifest, base = state.manifest, state.settings.cdn_url
    entry = manifest.get(filename) if manifest is not None else None
    if entry is not None and base is not None:
        return redirect(cdn_url(base, entry.key), code=302)
    if content_type_for(filename).startswith("image/"):
        return placeholder_response(state.settings.placeholder)
    return None


def placeholder_response(placeholder: Placeholder) -> Response:
    """404 with an image body: the page shows a neutral box, tooling still sees the miss."""
    return Response(
        placeholder.body,
        status=404,
        content_type=placeholder.content_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
