"""Resource hints for the first paint: one value per hint, written as an HTTP ``Link`` header
(RFC 8288; what proxies and CDNs turn into ``103 Early Hints``) or as ``<link>`` markup.

A preload must describe the request the page itself makes, or the browser fetches twice and
warns ("preloaded but not used"): the same URL, or for images the same ``imagesrcset`` and
``imagesizes`` as the ``<source>`` the browser will pick; the same ``crossorigin`` mode; for
SRI-checked CSS/JS the same ``integrity``. ``type`` makes a browser that cannot decode the
type skip the preload (a browser without AVIF then preloads nothing and picks WebP from the
``<picture>``, instead of downloading an AVIF it cannot use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from markupsafe import Markup

#: Header order: the connection, then render-blocking CSS, images, deferred scripts.
_RANK = {"style": 1, "image": 2, "script": 3}


@dataclass(frozen=True)
class Hint:
    """One ``rel=preload`` (``as_`` set) or ``rel=preconnect`` hint."""

    href: str
    rel: str = "preload"
    as_: str | None = None
    type: str | None = None
    imagesrcset: str | None = None
    imagesizes: str | None = None
    integrity: str | None = None
    #: ``crossorigin=anonymous``: the tag fetches in CORS mode (SRI-checked CSS/JS).
    crossorigin: bool = False
    fetchpriority: str | None = None

    @property
    def rank(self) -> int:
        return _RANK.get(self.as_ or "", 0)

    def _params(self) -> list[tuple[str, str | None]]:
        return [(name, value) for name, value in (
            ("rel", self.rel), ("as", self.as_), ("type", self.type),
            ("imagesrcset", self.imagesrcset), ("imagesizes", self.imagesizes),
            ("integrity", self.integrity),
            ("crossorigin", "anonymous" if self.crossorigin else None),
            ("fetchpriority", self.fetchpriority)) if value is not None]

    def header_value(self) -> str | None:
        """``<href>; rel=preload; as=image; ...``, or ``None`` when a value could not be
        carried safely in a header (a control or non-ASCII character, a ``>`` in the URL)."""
        if not _header_safe(self.href) or ">" in self.href:
            return None
        parts = [f"<{self.href}>"]
        for name, value in self._params():
            if not _header_safe(value or ""):
                return None
            quoted = value.replace("\\", "\\\\").replace('"', '\\"') if value else ""
            parts.append(f'{name}="{quoted}"' if name in _QUOTED else f"{name}={value}")
        return "; ".join(parts)

    def tag(self) -> Markup:
        """The same hint as ``<link>`` markup, for HTML that is cached without its headers."""
        attrs = [("href", self.href), *self._params()]
        return Markup("<link{}>").format(Markup("").join(
            Markup(' {}="{}"').format(name, value) for name, value in attrs))


#: Parameters whose values are quoted (token characters cannot carry spaces, commas, ``/``).
_QUOTED = frozenset({"type", "imagesrcset", "imagesizes", "integrity"})


def _header_safe(value: str) -> bool:
    return value.isascii() and all(" " <= char != "\x7f" for char in value)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, else ``None``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def with_preconnect(hints: Sequence[Hint], origin: str | None) -> list[Hint]:
    """``hints`` in header order, led by one ``preconnect`` to ``origin`` when a preload is
    fetched from there (``crossorigin`` when any of them is: that is the connection CSS/JS
    with SRI use; Chromium keeps separate connections for CORS and no-CORS requests, and the
    image preloads open their own)."""
    unique = list(dict.fromkeys(hints))
    from_origin = [h for h in unique if origin is not None and origin_of(h.href) == origin]
    lead = ([Hint(href=origin, rel="preconnect",
                  crossorigin=any(h.crossorigin for h in from_origin))]
            if origin is not None and from_origin else [])
    return lead + sorted(unique, key=lambda hint: hint.rank)


def link_header(hints: Iterable[Hint], *, max_bytes: int) -> tuple[str, int]:
    """One ``Link`` header value of the hints, in order, that fit in ``max_bytes`` (proxies
    refuse big response headers: nginx's default buffer for all of them is 4 KiB), and how
    many were left out."""
    kept: list[str] = []
    size = dropped = 0
    for hint in hints:
        value = hint.header_value()
        extra = len(value) + (2 if kept else 0) if value is not None else 0
        if value is None or size + extra > max_bytes:
            dropped += 1
            continue
        kept.append(value)
        size += extra
    return ", ".join(kept), dropped

