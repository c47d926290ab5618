"""``picture()`` and ``srcset()``: responsive image markup, and the development variant route.

Production: the manifest entry of a source image names its variants (version 2, written by the
deploy); URLs are their CDN URLs. Development: the source in ``static/`` is hashed and probed
(header only) and its variants planned with the same pure code as the deploy
(:func:`pipeline.build.variants.plan_variants`); their URLs point at ``/_variants/<key>``, which
encodes them on first request with the deploy's own encoder
(:func:`pipeline.build.variant_codec.encode_source`), cached on disk under ``build/``: the same
keys and the same pixels as after a deploy, without one.

The route only serves keys :func:`~pipeline.build.variants.parse_key` accepts for the configured
settings and that a source in the static folder plans, so no one can ask for arbitrary sizes or
paths. It encodes on request, so it exists only where that is wanted: with the CDN off, in debug
or testing mode, or when ``CDN_VARIANT_ROUTE`` is ``True`` (``False``: never); without it, and
with variants turned off, development pages get a plain ``<img>``. A key whose source is not
known yet makes the static folder be hashed once per process, never again: later misses are
dictionary look-ups (a page rendered since names its new sources itself).

Config (read at ``init_app``): ``CDN_VARIANTS`` (a
:class:`~pipeline.build.variants.VariantSettings`, a mapping of its fields, or ``False`` for
none; unset, the deploy's: the ``variant-*`` keys of the project's ``pyproject.toml`` table over
the defaults, and none when that table says ``variants = false``), ``CDN_VARIANT_CACHE``
(``build/variants``, relative to the working directory), ``CDN_VARIANT_ROUTE`` (above).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, send_from_directory, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..build.fingerprint import hash_file
from ..build.variants import (
    FORMATS,
    VARIANT_TABLE_KEYS,
    VariantSettings,
    has_dimensions,
    is_candidate,
    parse_key,
    plan_variants,
    usable,
)
from ..errors import ConfigError, ImageSourceError
from ..manifest import Variant
from ..media_types import IMMUTABLE_CACHE_CONTROL
from ..urls import cdn_url
from .firstpaint import add_hint
from .picturetags import (
    MODERN_TYPES,
    ImageFacts,
    by_type,
    image_hint,
    image_sizes,
    picture_hint,
    picture_markup,
    srcset_text,
)
from .placeholders import APP_DEFAULT, PlaceholderSettings, dev_placeholder, placeholder_css
from .placeholders import read_settings as read_placeholder_settings
from .state import CDNState, log

#: Key of the per-app :class:`Pictures` in ``app.extensions``.
EXTENSION_KEY = "cdn_pictures"
DEFAULT_CACHE = Path("build/variants")
ROUTE = "/_variants/<path:key>"
ENDPOINT = "cdn_variant"


@dataclass
class Pictures:
    """Per-app state: settings, and in development the planned sources by content hash."""

    state: CDNState
    settings: VariantSettings
    cache_dir: Path
    static_dir: Path | None
    #: Development variants (``/_variants/`` URLs): variants on and the route registered.
    dev_variants: bool = True
    placeholders: PlaceholderSettings = field(default_factory=PlaceholderSettings)
    _indexed: bool = False
    _dev: dict[str, tuple[tuple[int, int], ImageFacts, str, Path]] = field(default_factory=dict)
    _by_hash: dict[str, Path] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _index_lock: threading.Lock = field(default_factory=threading.Lock)

    def facts(self, filename: str) -> ImageFacts | None:
        """The image's facts, or ``None`` when it is not known (missing from the manifest)."""
        if self.state.enabled:
            return self._production(filename)
        return self._development(filename)

    def _production(self, filename: str) -> ImageFacts | None:
        manifest, base = self.state.manifest, self.state.settings.cdn_url
        entry = manifest.get(filename) if manifest is not None else None
        if entry is None or base is None:
            return None
        return ImageFacts(src=cdn_url(base, entry.key), width=entry.width, height=entry.height,
                          variants=tuple((cdn_url(base, v.key), v) for v in usable(entry.variants)),
                          placeholder=entry.placeholder)

    def _development(self, filename: str) -> ImageFacts | None:
        if self.static_dir is None:
            return None
        path = (self.static_dir / filename)
        try:
            path.resolve().relative_to(self.static_dir.resolve())
            info = path.stat()
        except (OSError, ValueError):
            return None
        stamp = (info.st_size, info.st_mtime_ns)
        cached = self._dev.get(filename)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        facts, digest = self._plan_dev(filename, path)
        with self._lock:
            self._dev[filename] = (stamp, facts, digest, path)
            self._by_hash[digest[:16]] = path
        return facts

    def _plan_dev(self, filename: str, path: Path) -> tuple[ImageFacts, str]:
        src = url_for("static", filename=filename)
        digest = hash_file(path)
        if not has_dimensions(filename):
            return ImageFacts(src=src, width=None, height=None), digest
        from ..build.variant_codec import probe  # pyvips only when images are rendered

        try:
            info = probe(path, self.settings)
        except ImageSourceError as exc:
            log.warning("%s: serving it without variants", exc)
            return ImageFacts(src=src, width=None, height=None), digest
        if not self.dev_variants or not is_candidate(filename, self.settings):
            return ImageFacts(src=src, width=info.width, height=info.height), digest
        variants = tuple(
            (url_for(ENDPOINT, key=spec.key),
             Variant(spec.key, spec.width, spec.height, spec.content_type, 0))
            for spec in plan_variants(digest, info, self.settings))
        placeholder = dev_placeholder(path, wanted=bool(variants) and not info.has_alpha)
        return ImageFacts(src=src, width=info.width, height=info.height, variants=variants,
                          placeholder=placeholder), digest

    def source_for(self, hash16: str) -> Path | None:
        """The static file whose content hash starts with ``hash16``: planned by a page, or
        found in the index of the candidates, made on the first miss of the process (after a
        restart). Never re-hashed on a miss: requests for unknown keys must not make the
        server read the whole static folder each time."""
        found = self._by_hash.get(hash16)
        if found is not None or self.static_dir is None or self._indexed:
            return found
        with self._index_lock:
            if not self._indexed:
                self._index(self.static_dir)
                self._indexed = True
        return self._by_hash.get(hash16)

    def _index(self, static_dir: Path) -> None:
        for path in sorted(static_dir.rglob("*")):
            logical = path.relative_to(static_dir).as_posix()
            if path.is_file() and is_candidate(logical, self.settings):
                digest = hash_file(path)
                with self._lock:
                    self._by_hash.setdefault(digest[:16], path)


def read_variant_settings(value: Any) -> VariantSettings:
    """``CDN_VARIANTS``: ``None`` (the defaults), a ``VariantSettings``, or a mapping of fields
    (``False``, no variants, is handled by :func:`app_variant_settings`)."""
    if value is None:
        return VariantSettings()
    if isinstance(value, VariantSettings):
        return value
    if isinstance(value, Mapping):
        fields: dict[str, Any] = {k.replace("-", "_"): tuple(v) if isinstance(v, list) else v
                  for k, v in value.items()}
        try:
            return VariantSettings(**fields)
        except TypeError as exc:
            raise ConfigError(f"CDN_VARIANTS: {exc}") from exc
    raise ConfigError(f"CDN_VARIANTS must be a mapping or VariantSettings, not {value!r}")


#: The table's on/off switch, read beside the ``variant-*`` keys.
_SWITCH = {"variants": ("variants", "bool")}


def app_variant_settings(app: Flask) -> tuple[VariantSettings, bool]:
    """The variant settings of ``app`` and whether variants are on: ``CDN_VARIANTS`` when the
    app sets it (``False``: off), else the deploy's, from the ``variant-*`` keys of the
    ``pyproject.toml`` table nearest the app's folder, read and validated as the deploy reads
    them, so development plans the keys and widths a deploy with variants publishes (whether
    the table or ``--variants`` turns them on); off when the table says ``variants = false``,
    as no deploy of it publishes any. No table: the defaults, on."""
    configured = app.config.get("CDN_VARIANTS")
    if configured is False:
        return VariantSettings(), False
    if configured is not None:
        return read_variant_settings(configured), True
    from ..pyproject import load_project_config

    project = load_project_config(Path(app.root_path), {**VARIANT_TABLE_KEYS, **_SWITCH},
                                  others=True)
    values = dict(project.values) if project is not None else {}
    enabled = values.pop("variants", True)
    if not values:
        return VariantSettings(), enabled
    try:
        return VariantSettings(**values), enabled
    except ConfigError as exc:
        label = project.label if project is not None else "pyproject.toml"
        raise ConfigError(f"{exc} (from {label})") from None


def variant_route_wanted(app: Flask) -> bool:
    """``CDN_VARIANT_ROUTE`` if set, else debug or testing mode: the route encodes on
    request, which a production server must not offer to every client."""
    configured = app.config.get("CDN_VARIANT_ROUTE")
    if configured is not None:
        if not isinstance(configured, bool):
            raise ConfigError(f"CDN_VARIANT_ROUTE must be True or False, not {configured!r}")
        return configured
    return app.debug or app.testing


def install_pictures(app: Flask, state: CDNState) -> None:
    """Register ``picture``/``srcset`` as Jinja globals and, in development, the variant route."""
    app.config.setdefault("CDN_VARIANTS", None)
    app.config.setdefault("CDN_VARIANT_CACHE", str(DEFAULT_CACHE))
    app.config.setdefault("CDN_VARIANT_ROUTE", None)
    static = Path(app.static_folder).absolute() if app.static_folder else None
    settings, enabled = app_variant_settings(app)
    route = variant_route_wanted(app) and enabled and not state.enabled
    pictures = Pictures(state=state, settings=settings,
                        cache_dir=Path(app.config["CDN_VARIANT_CACHE"]).absolute(),
                        static_dir=static, dev_variants=route,
                        placeholders=read_placeholder_settings(app.config))
    app.extensions[EXTENSION_KEY] = pictures
    app.add_template_global(picture)
    app.add_template_global(srcset)
    app.add_template_global(image_sizes)
    app.add_template_global(placeholder_style)
    app.add_template_global(preload_image)
    if route:
        app.add_url_rule(ROUTE, endpoint=ENDPOINT, view_func=variant_view)


def _pictures() -> Pictures:
    try:
        found: Pictures = current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise KeyError("the CDN extension is not registered on this app: call CDN(app)") from None
    return found


def _known(filename: str) -> ImageFacts:
    """The facts, or (missing: warn once, or raise in strict mode) a plain local URL."""
    pictures = _pictures()
    facts = pictures.facts(filename)
    if facts is not None:
        return facts
    if pictures.state.settings.strict:
        from ..errors import MissingAssetError

        raise MissingAssetError(filename)
    log.warning("image %r is not in the CDN manifest or the static folder: no variants, "
                "no dimensions", filename)
    return ImageFacts(src=url_for("static", filename=filename), width=None, height=None)


def srcset(filename: str, type: str | None = None, *, priority: bool = False,
           sizes: str | None = None) -> str:
    """The ``w``-descriptor ``srcset`` of ``filename``'s variants of one type (``"image/avif"``
    or ``"avif"``; default: the fallback format), for custom markup (pair it with
    ``image_sizes(sizes)``, which applies the DPR cap). Empty when the image has no such
    variants. ``priority=True`` (with the ``sizes`` of the tag) also preloads this set
    through the response's ``Link`` header; the tag should then be eager."""
    groups = by_type(_known(filename))
    if type is None:
        fallback = [t for t in groups if t not in MODERN_TYPES]
        wanted = fallback[0] if fallback else None
    else:
        wanted = FORMATS[type][1] if type in FORMATS else type
    items = groups.get(wanted, []) if wanted else []
    if priority:
        if sizes is None:
            raise TypeError("srcset(..., priority=True) needs the tag's sizes= to preload it")
        if items:
            add_hint(image_hint(items, wanted, image_sizes(sizes)))
    return srcset_text(items)


def placeholder_style(filename: str, placeholder: str | None = APP_DEFAULT) -> str:
    """The CSS (``background...``) of ``filename``'s placeholder, for custom markup
    (``<img ... style="{{ placeholder_style('img/a.jpg') }}">``); empty when it has none."""
    facts, mode = _known(filename), _mode(placeholder)
    if facts.placeholder is None or mode is None:
        return ""
    return placeholder_css(facts.placeholder, mode, width=facts.width, height=facts.height)


def _mode(placeholder: str | None) -> str | None:
    return _pictures().placeholders.resolve_mode(placeholder)


def _nonce(nonce: str | None) -> str | None:
    return _pictures().placeholders.resolve_nonce(nonce)


def picture(filename: str, alt: str, sizes: str | None = None, loading: str = "lazy",
            fetchpriority: str | None = None, priority: bool = False,
            placeholder: str | None = APP_DEFAULT, nonce: str | None = None,
            **attrs: Any) -> Markup:
    """``<picture>`` with one ``<source>`` per modern format and the fallback ``<img>`` (with
    intrinsic ``width``/``height``, so no layout shift). An image with no variants gets a plain
    ``<img>``. Extra keyword arguments become ``<img>`` attributes (``class_`` -> ``class``;
    ``None``/``False`` omitted, ``True`` a bare attribute); ``width``/``height`` given here
    are used only when the image's own size is not known (e.g. an ICO). ``sizes`` not given:
    ``auto, 100vw`` for a lazy image (``CDN_SIZES_AUTO``), else ``100vw``. ``priority=True``
    (the image that is likely the page's largest paint): ``loading="eager"``,
    ``fetchpriority="high"`` and a preload in the response's ``Link`` header.

    ``placeholder`` (``"color"``, ``"blur"``, ``None``; default ``CDN_IMAGE_PLACEHOLDER``)
    paints the image's deploy-time placeholder behind it; ``nonce`` (default from
    ``CDN_STYLE_NONCE``) puts it in a ``<style nonce>`` element instead of a ``style``
    attribute, for a strict Content-Security-Policy (:mod:`pipeline.flaskext.placeholders`)."""
    return picture_markup(_known(filename), alt, sizes=sizes, loading=loading,
                          fetchpriority=fetchpriority, priority=priority,
                          placeholder=_mode(placeholder), nonce=_nonce(nonce), **attrs)


def preload_image(filename: str, sizes: str = "100vw") -> Markup:
    """The ``<link rel="preload">`` that ``picture(filename, sizes=sizes, priority=True)``
    sends as a header, as markup for the ``<head>`` of pages cached without their headers."""
    return picture_hint(_known(filename), image_sizes(sizes)).tag()


def variant_view(key: str) -> Response:
    """Development: the variant ``key``, encoded on first request by the deploy's encoder."""
    pictures = _pictures()
    parsed = parse_key(key, pictures.settings)
    if parsed is None:
        abort(404)  # not a key of the configured widths/formats/parameters
    source = pictures.source_for(parsed[0])
    if source is None:
        abort(404)
    logical = source.relative_to(pictures.static_dir).as_posix()  # type: ignore[arg-type]
    facts = pictures.facts(logical)
    if facts is None or not any(v.key == key for _, v in facts.variants):
        abort(404)  # e.g. a width this source does not plan (never upscaled)
    target = pictures.cache_dir / key
    if not target.is_file():
        _encode_dev(pictures, source, logical)
    fmt = parsed[2]
    response = send_from_directory(pictures.cache_dir, key, mimetype=FORMATS[fmt][1],
                                   conditional=True)
    response.headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL  # content-addressed
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


_ENCODE_LOCK = threading.Lock()


def _encode_dev(pictures: Pictures, source: Path, logical: str) -> None:
    """Encode every variant of ``source`` at once (one decode), in this process; one at a time,
    so a page of many images does not start many decodes on a laptop."""
    from ..build.variant_codec import encode_source, probe

    with _ENCODE_LOCK:
        digest = hash_file(source)
        specs = plan_variants(digest, probe(source, pictures.settings), pictures.settings)
        missing = [s for s in specs if not (pictures.cache_dir / s.key).is_file()]
        if missing:
            log.info("encoding %d variant(s) of %s", len(missing), logical)
            encode_source(source, missing, pictures.settings, out_dir=pictures.cache_dir)
