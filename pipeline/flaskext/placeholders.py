"""Placeholders in pages: an image's average colour, or its blurred preview, behind the image
until it loads, inline in the markup (no request of its own).

Made at deploy and stored in the manifest (:class:`pipeline.manifest.Placeholder`); this module
only turns one into CSS. Two ways to put that CSS in the page:

* a ``style`` attribute on the ``<img>`` (the default): simplest, but a Content-Security-Policy
  whose ``style-src`` (or ``style-src-attr``) lacks ``'unsafe-inline'`` blocks it;
* with a nonce (``nonce=`` or ``CDN_STYLE_NONCE``): a ``<style nonce="...">`` element with one
  rule for a class the ``<img>`` gets, which such a policy allows when it lists that nonce.

Either way the blurred preview is a ``data:`` URL, so the policy's ``img-src`` must allow
``data:``. Config (read at ``init_app``): ``CDN_IMAGE_PLACEHOLDER`` (``"color"``, the default,
``"blur"`` or ``None``) and ``CDN_STYLE_NONCE`` (``None`` or a callable returning the request's
nonce, e.g. ``lambda: flask.request.csp_nonce`` with Flask-Talisman).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from ..errors import ConfigError, ImageSourceError
from ..manifest import Placeholder
from .state import log

#: What ``placeholder=`` takes; ``None`` is none.
MODES = ("color", "blur")
#: The default: 7 bytes per image. A blurred preview is 300-500 bytes of incompressible base64
#: in every page view's HTML, ahead of the image requests: worth it for a hero image, not for
#: every thumbnail of a long gallery, so it is asked for per call or per app.
DEFAULT_MODE = "color"
#: ``placeholder=`` default of the helpers: the app's ``CDN_IMAGE_PLACEHOLDER``.
APP_DEFAULT = "app"
#: The preview's longest side, in its own pixels (as made at deploy), and the blur radius.
_PREVIEW_SIDE = 16
_BLUR = 1


@dataclass(frozen=True)
class PlaceholderSettings:
    """Per app: the default mode, and where a CSP nonce comes from (``None``: no nonce)."""

    mode: str | None = DEFAULT_MODE
    nonce: Callable[[], str] | None = None

    def resolve_mode(self, placeholder: str | None) -> str | None:
        """A helper's ``placeholder=`` argument: :data:`APP_DEFAULT` is the app's mode."""
        if placeholder == APP_DEFAULT:
            return self.mode
        return read_mode(placeholder, setting="placeholder")

    def resolve_nonce(self, nonce: str | None) -> str | None:
        """A helper's ``nonce=`` argument, else the app's ``CDN_STYLE_NONCE`` (if any)."""
        return nonce if nonce is not None or self.nonce is None else self.nonce()


def read_mode(value: Any, *, setting: str = "CDN_IMAGE_PLACEHOLDER") -> str | None:
    """``"color"``, ``"blur"`` or ``None`` (``False`` and ``"none"`` too), else a ConfigError."""
    if value is None or value is False or value == "none":
        return None
    if value in MODES:
        return str(value)
    raise ConfigError(f"{setting} must be 'color', 'blur' or None, not {value!r}")


def read_settings(config: Any) -> PlaceholderSettings:
    """The app's placeholder settings, validated (a bad value stops ``init_app``)."""
    mode = read_mode(config.get("CDN_IMAGE_PLACEHOLDER", DEFAULT_MODE))
    nonce = config.get("CDN_STYLE_NONCE")
    if nonce is not None and not callable(nonce):
        raise ConfigError(f"CDN_STYLE_NONCE must be a callable returning the request's CSP "
                          f"nonce, not {nonce!r}")
    return PlaceholderSettings(mode=mode, nonce=nonce)


def dev_placeholder(path: Path, *, wanted: bool) -> Placeholder | None:
    """Development: the placeholder a deploy would store for the static file ``path`` (the
    caller keeps it per file version), so pages look as they will once deployed."""
    if not wanted:
        return None
    from ..build.variant_placeholder import placeholder_of

    try:
        return placeholder_of(path)
    except ImageSourceError as exc:
        log.warning("%s: no placeholder", exc)
        return None


def placeholder_css(placeholder: Placeholder, mode: str, *, width: int | None,
                    height: int | None) -> str:
    """CSS declarations that paint ``placeholder`` as the element's background."""
    if mode == "color" or width is None or height is None:
        return f"background-color:{placeholder.color}"
    return (f"background:{placeholder.color} url(\"{blurred(placeholder, width, height)}\") "
            "center/cover no-repeat")


def blurred(placeholder: Placeholder, width: int, height: int) -> str:
    """An SVG data URL that draws the preview blurred by a Gaussian filter: upscaled on its own
    a 16-pixel image shows its pixel grid as a checkerboard of soft squares."""
    scale = _PREVIEW_SIDE / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}'>"
           f"<filter id='b' color-interpolation-filters='sRGB'>"
           f"<feGaussianBlur stdDeviation='{_BLUR}' edgeMode='duplicate'/></filter>"
           f"<image width='{w}' height='{h}' preserveAspectRatio='none' filter='url(#b)' "
           f"href='{placeholder.preview}'/></svg>")
    # Only these need escaping in a data URL inside CSS url("..."): the preview is base64
    # (validated when the manifest was read) and the rest is fixed text without quotes.
    return "data:image/svg+xml," + svg.replace("<", "%3C").replace(">", "%3E").replace("#", "%23")


def with_placeholder(img: dict[str, Any], css: str, *, nonce: str | None) -> Markup:
    """Add ``css`` to the ``img`` attributes: as a ``style`` attribute, or, with a nonce, as a
    class whose rule is in the ``<style nonce>`` element returned (to go before the tag)."""
    if nonce is None:
        own = img.get("style")
        img["style"] = f"{css};{own}" if own else css
        return Markup("")
    name = "cdn-ph-" + hashlib.sha256(css.encode()).hexdigest()[:12]
    own_class = img.get("class")
    img["class"] = f"{name} {own_class}" if own_class else name
    # The class is ours and the CSS made of validated parts: nothing here can close the element.
    return Markup(f'<style nonce="{escape(nonce)}">img.{name}{{{css}}}</style>')
