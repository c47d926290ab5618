"""First paint in Flask: the settings of the DPR cap and ``sizes="auto"``, and the ``Link``
header of the hints a page's templates collected while rendering.

``picture(..., priority=True)``, ``srcset(..., priority=True)`` and (on the CDN)
``asset_tags()`` call :func:`add_hint` while the template renders; the hints are kept on
``flask.g`` (per request) and an ``after_request`` hook writes them, led by one
``preconnect`` to the CDN, as one ``Link`` header of at most ``CDN_LINK_HEADER_MAX`` bytes,
on HTML responses other than a 304 only. Hints come only from tags that were rendered, so a
header never names a URL the page does not use. A streamed template
(``stream_template``) sends its headers before rendering and so gets none.

Config (read at ``init_app``): ``CDN_MAX_DPR`` (2; ``None``: no cap), ``CDN_SIZES_AUTO``
(``True``: lazy pictures get ``sizes="auto, <sizes>"``), ``CDN_LINK_HEADER_MAX`` (3072
bytes; 0: no ``Link`` header).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g, has_request_context
from werkzeug.wrappers import Response

from ..dprcap import Bucket, buckets
from ..errors import ConfigError
from ..hints import Hint, link_header, origin_of, with_preconnect
from .state import get_state, log

EXTENSION_KEY = "cdn_first_paint"
_HINTS = "_cdn_first_paint_hints"
_WARNED = "cdn_link_header_full"
DEFAULTS = {"CDN_MAX_DPR": 2, "CDN_SIZES_AUTO": True, "CDN_LINK_HEADER_MAX": 3072}


@dataclass(frozen=True)
class FirstPaint:
    """The app's first-paint settings, read once."""

    max_dpr: float | None
    sizes_auto: bool
    link_header_max: int

    @property
    def caps(self) -> tuple[Bucket, ...]:
        return buckets(self.max_dpr)


def read_first_paint(app: Flask) -> FirstPaint:
    """Validate ``CDN_MAX_DPR``, ``CDN_SIZES_AUTO`` and ``CDN_LINK_HEADER_MAX``."""
    max_dpr = app.config["CDN_MAX_DPR"]
    if max_dpr is not None and (isinstance(max_dpr, bool) or not isinstance(max_dpr, int | float)
                                or not 1 <= max_dpr <= 10):
        raise ConfigError(f"CDN_MAX_DPR must be a number from 1 to 10 or None, not {max_dpr!r}")
    auto = app.config["CDN_SIZES_AUTO"]
    if not isinstance(auto, bool):
        raise ConfigError(f"CDN_SIZES_AUTO must be True or False, not {auto!r}")
    limit = app.config["CDN_LINK_HEADER_MAX"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"CDN_LINK_HEADER_MAX must be a whole number of bytes (0: no Link "
                          f"header), not {limit!r}")
    return FirstPaint(max_dpr=max_dpr, sizes_auto=auto, link_header_max=limit)


def install_first_paint(app: Flask) -> None:
    """Read the settings and add the ``Link`` header hook."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    settings = read_first_paint(app)
    app.extensions[EXTENSION_KEY] = settings
    if settings.link_header_max:
        app.after_request(add_link_header)


def first_paint() -> FirstPaint:
    """The current app's settings."""
    settings: FirstPaint = current_app.extensions[EXTENSION_KEY]
    return settings


def add_hint(hint: Hint) -> None:
    """Remember ``hint`` for this request's ``Link`` header (outside a request: nothing)."""
    if has_request_context():
        g.setdefault(_HINTS, []).append(hint)


def add_link_header(response: Response) -> Response:
    """The collected hints as one ``Link`` header, on an HTML response that is not a 304."""
    hints: list[Hint] = g.pop(_HINTS, [])
    if not hints or response.status_code == 304 or response.mimetype != "text/html":
        return response
    state = get_state(current_app)
    origin = origin_of(state.settings.cdn_url or "") if state.enabled else None
    value, dropped = link_header(with_preconnect(hints, origin),
                                 max_bytes=first_paint().link_header_max)
    if dropped and not current_app.extensions.get(_WARNED):
        current_app.extensions[_WARNED] = True  # once per app, not on every request
        log.warning("%d resource hint(s) left out of the Link header (CDN_LINK_HEADER_MAX=%d)",
                    dropped, first_paint().link_header_max)
    if value:
        response.headers.add("Link", value)
    return response
