"""The markup of ``picture()``: ``<source>``/``<img>`` tags from an image's facts, with the
DPR cap (:mod:`pipeline.dprcap`), ``sizes="auto"`` for lazy images and, for a priority image,
the preload hint of the set the browser will pick (:mod:`pipeline.hints`).

Shared by :mod:`pipeline.flaskext.pictures` (static images) and apps that gather the facts
themselves (the demo's uploads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from ..build.variants import FORMATS, MODERN_FORMATS
from ..dprcap import capped_sizes, scaled_srcset
from ..hints import Hint
from ..manifest import Placeholder, Variant
from .firstpaint import add_hint, first_paint
from .placeholders import placeholder_css, with_placeholder

MODERN_TYPES = tuple(FORMATS[f][1] for f in MODERN_FORMATS)
#: Width the fallback ``src`` aims at, for the rare browser that ignores ``srcset``.
SRC_WIDTH = 1280


@dataclass(frozen=True)
class ImageFacts:
    """What markup needs about one image: intrinsic size (when known) and usable variants."""

    src: str
    width: int | None
    height: int | None
    #: (url, variant), narrowest first.
    variants: tuple[tuple[str, Variant], ...] = ()
    #: Shown behind the image until it loads; static images with variants only (never an
    #: upload's: a private image's preview in a public page would leak its content).
    placeholder: Placeholder | None = None


def by_type(facts: ImageFacts) -> dict[str, list[tuple[str, Variant]]]:
    groups: dict[str, list[tuple[str, Variant]]] = {}
    for url, variant in facts.variants:
        groups.setdefault(variant.content_type, []).append((url, variant))
    return groups


def srcset_text(items: Sequence[tuple[str, Variant]]) -> str:
    return ", ".join(f"{url} {variant.width}w" for url, variant in items)


def image_sizes(sizes: str) -> str:
    """``sizes`` with the app's DPR cap (``CDN_MAX_DPR``) applied, for custom markup."""
    return capped_sizes(sizes, first_paint().caps)


def picture_markup(facts: ImageFacts, alt: str, *, sizes: str | None = None,
                   loading: str = "lazy", fetchpriority: str | None = None,
                   priority: bool = False, placeholder: str | None = None,
                   nonce: str | None = None, **attrs: Any) -> Markup:
    """The markup of :func:`picture` for facts gathered elsewhere (e.g. uploaded images);
    ``placeholder`` is a mode here (no app default)."""
    if priority:
        loading, fetchpriority = "eager", fetchpriority or "high"
    groups = by_type(facts)
    fallback = next((items for t, items in groups.items() if t not in MODERN_TYPES), [])
    given, in_sources = sizes_for(sizes, lazy=loading == "lazy")
    capped = capped_sizes(given, first_paint().caps)
    img: dict[str, Any] = {}
    if fallback:
        under = [item for item in fallback if item[1].width <= SRC_WIDTH] or fallback[:1]
        img.update(src=under[-1][0], srcset=srcset_text(fallback), sizes=capped)
    else:
        img["src"] = facts.src
    img.update(width=facts.width, height=facts.height, alt=alt, loading=loading,
               decoding="async", fetchpriority=fetchpriority)
    for name, value in attrs.items():
        name = name.rstrip("_").replace("_", "-")
        if name in ("width", "height") and img.get(name) is not None:
            continue  # the recorded intrinsic size wins; these only fill in when unknown
        img[name] = value
    if priority:
        add_hint(picture_hint(facts, capped))
    style = Markup("")
    if facts.placeholder is not None and placeholder is not None:
        css = placeholder_css(facts.placeholder, placeholder, width=facts.width,
                              height=facts.height)
        style = with_placeholder(img, css, nonce=nonce)
    tag = f"<img{_attributes(img)}>"
    if not fallback:
        return style + Markup(tag)
    sources = "".join(_sources(groups[t], t, sizes=given if in_sources else capped,
                               scaled=in_sources) for t in MODERN_TYPES if t in groups)
    return style + Markup(f"<picture>{sources}{tag}</picture>")


def sizes_for(sizes: str | None, *, lazy: bool) -> tuple[str, bool]:
    """The picture's ``sizes`` (not given: ``auto, 100vw`` for a lazy image when
    ``CDN_SIZES_AUTO`` is on, where browsers that know ``auto`` use the laid-out width, else
    ``100vw``) and whether the DPR cap goes into ``<source media>`` rather than ``sizes``:
    for a lazy ``auto`` image, whose slot the browser measures itself. An explicit ``sizes``
    is the author's knowledge of the layout and is kept (and capped in ``sizes``, which
    costs far less markup than the extra sources: 17 vs 38 KB of HTML for the demo)."""
    settings = first_paint()
    if sizes is None:
        sizes = "auto, 100vw" if lazy and settings.sizes_auto else "100vw"
    return sizes, lazy and sizes.startswith("auto") and bool(settings.caps)


def _sources(items: Sequence[tuple[str, Variant]], type_: str, *, sizes: str,
             scaled: bool) -> str:
    """The ``<source>`` tags of one type. With ``sizes="auto"`` the cap cannot scale the slot,
    so denser screens get ``<source media>`` with scaled descriptors first (see
    :mod:`pipeline.dprcap`)."""
    sets: list[tuple[str | None, str]] = []
    if scaled:
        pairs = [(url, variant.width) for url, variant in items]
        sets = [(bucket.media, scaled_srcset(pairs, bucket)) for bucket in first_paint().caps]
    sets.append((None, srcset_text(items)))
    tags = [f"<source{_attributes({'type': type_, 'media': media, 'srcset': text})}"
            f"{_attributes({'sizes': sizes})}>" for media, text in sets]
    return "".join(tags)


def picture_hint(facts: ImageFacts, sizes: str) -> Hint:
    """The preload of what the browser fetches for this picture: the first ``<source>``'s
    set (the type a browser that supports it picks; one that does not skips the preload)."""
    groups = by_type(facts)
    for type_ in (*MODERN_TYPES, *groups):
        if type_ in groups:
            return image_hint(groups[type_], type_, sizes)
    return Hint(href=facts.src, as_="image", fetchpriority="high")


def image_hint(items: Sequence[tuple[str, Variant]], type_: str | None, sizes: str) -> Hint:
    # href: a candidate of the set itself, for a browser that reads href but not imagesrcset.
    under = [item for item in items if item[1].width <= SRC_WIDTH] or list(items[:1])
    return Hint(href=under[-1][0], as_="image", type=type_, imagesrcset=srcset_text(items),
                imagesizes=sizes, fetchpriority="high")


def _attributes(values: Mapping[str, Any]) -> str:
    parts = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        parts.append(f" {escape(name)}" if value is True else f' {escape(name)}="{escape(value)}"')
    return "".join(parts)
