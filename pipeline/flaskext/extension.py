"""The ``CDN`` Flask extension: static URLs on the CDN in production, local files in development.

``CDN(app)`` (or ``cdn = CDN(); cdn.init_app(app)``) reads these config keys, each
given a default with ``app.config.setdefault``:

``CDN_URL`` (``None``)
    Public base URL of the CDN, e.g. ``https://d111.cloudfront.net``.
``CDN_MANIFEST`` (``build/cdn-manifest.json``, :data:`pipeline.validate.DEFAULT_MANIFEST_PATH`)
    The manifest the deploy writes. A relative path is resolved against the current
    working directory when ``init_app`` runs (the folder ``flask run`` or the WSGI
    server starts in), exactly as the deploy command resolves it.
``CDN_ENABLED`` (``None`` = automatic)
    Automatic means on when ``CDN_URL`` is set, the manifest file exists when
    ``init_app`` runs, and the app is not in debug mode. ``True``/``False`` force it.
    Outside debug mode, ``CDN_URL`` set with no manifest file logs one ERROR at start-up
    naming the path (the app then serves ``static/`` itself); ``CDN_ENABLED=True``
    makes that a start-up failure instead.
``CDN_STRICT`` (``False``)
    An asset missing from the manifest raises :class:`~pipeline.errors.MissingAssetError`
    instead of falling back to the local URL (for CI checks of templates).
``CDN_PLACEHOLDER`` (``None`` = a built-in SVG)
    Path of the image served, with status 404, for a missing image in development
    (read once at ``init_app``; a relative path is resolved against the working directory).
``CDN_RELOAD`` (``app.debug``)
    Before each request, reload the manifest if its file changed (one ``stat``).
``CDN_RELEASE``, ``CDN_REFRESH``, ``CDN_ENDPOINT_URL``, ``CDN_REGION``,
``CDN_MANIFEST_CACHE``, ``CDN_FALLBACK_LOCAL``
    When ``CDN_MANIFEST`` is ``s3://bucket/prefix`` or an https URL: pin a release or
    follow the current manifest, refreshed in the background (see
    :mod:`pipeline.serving.source` and :mod:`pipeline.serving.refresher`).

Enabled, ``url_for('static', filename=...)`` in Python and in templates returns the
precomputed CDN URL of the fingerprinted object: one dict lookup, no URL building.
Disabled, ``url_for`` is untouched and Flask serves ``static/``; a missing local file
then redirects to its CDN copy when the manifest knows it, and a missing image gets
the placeholder, so pages never show a broken-image icon while tooling sees the 404.

Blueprint static files (endpoint ``<bp>.static``) are on the CDN when the blueprint's
static folder lies inside the app's static folder (the deploy uploads only that
folder): their logical path is their path relative to the app's static folder. Any
other blueprint static folder is served by Flask, without a warning.

URL defaults (``app.url_defaults``) are not applied to CDN URLs: a fingerprinted
object has no use for them. A CDN URL is always absolute, even with
``_external=False``; ``_scheme`` replaces its scheme.

This module holds the config, the enabled rule and the per-app state; the URL
override and the development static view are in :mod:`pipeline.flaskext.static`, the
``flask cdn`` commands in :mod:`pipeline.flaskext.commands`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from ..errors import ConfigError, ManifestError, MissingAssetError
from ..manifest import Manifest
from ..media_types import content_type_for
from ..serving.refresher import ManifestRefresher, initial_load
from ..serving.source import CONFIG_DEFAULTS, SourceSettings, open_source, read_source_settings
from ..urls import cdn_url
from ..validate import DEFAULT_MANIFEST_PATH, validate_url
from .pictures import install_pictures
from .static import dev_static_view, install_url_for

log = logging.getLogger(__name__)

#: Key of the per-app :class:`CDNState` in ``app.extensions``.
EXTENSION_KEY = "cdn"

#: Shown for a missing image in development: neutral grey with a cross, no script.
BUILTIN_PLACEHOLDER_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
    b'<rect width="320" height="240" fill="#e5e7eb"/>'
    b'<path d="M0 0L320 240M320 0L0 240" stroke="#9ca3af" stroke-width="3"/>'
    b'<text x="160" y="128" font-family="sans-serif" font-size="16" text-anchor="middle" '
    b'fill="#4b5563">missing image</text></svg>\n'
)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

_Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class Placeholder:
    """The bytes and type answered for a missing image in development."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class CDNSettings:
    """The extension's config for one app, read and validated once in ``init_app``."""

    cdn_url: str | None
    manifest_path: Path
    enabled: bool
    #: Why the CDN is on or off, for ``flask cdn manifest`` and logs.
    reason: str
    strict: bool
    reload: bool
    placeholder: Placeholder
    #: A bucket or CDN manifest (``manifest_path`` is then its last-known-good copy).
    source: SourceSettings | None = None


def set_defaults(app: Flask) -> None:
    """Give every ``CDN_*`` key its default, so the app's config shows what is in effect."""
    app.config.setdefault("CDN_URL", None)
    app.config.setdefault("CDN_MANIFEST", str(DEFAULT_MANIFEST_PATH))
    app.config.setdefault("CDN_ENABLED", None)
    app.config.setdefault("CDN_STRICT", False)
    app.config.setdefault("CDN_PLACEHOLDER", None)
    app.config.setdefault("CDN_RELOAD", app.debug)
    for key, value in CONFIG_DEFAULTS.items():
        app.config.setdefault(key, value)


def read_settings(app: Flask) -> CDNSettings:
    """Validate the app's ``CDN_*`` config and decide whether the CDN is enabled."""
    config = app.config
    base = validate_url(config["CDN_URL"] or None, "CDN_URL")
    fallback = bool(parse_flag(config["CDN_FALLBACK_LOCAL"], "CDN_FALLBACK_LOCAL"))
    source = read_source_settings(config, fallback_local=fallback)
    forced = parse_flag(config["CDN_ENABLED"], "CDN_ENABLED")
    if source is not None:
        manifest_path = source.last_good
        enabled, reason = decide_remote_enabled(forced, base, source, debug=app.debug)
    else:
        manifest_path = Path(config["CDN_MANIFEST"] or DEFAULT_MANIFEST_PATH).absolute()
        enabled, reason = decide_enabled(forced, base, manifest_path, debug=app.debug)
    if enabled and base is None:
        raise ConfigError("CDN_ENABLED is on but CDN_URL is not set: set CDN_URL to the "
                          "CDN's base URL (e.g. https://cdn.example.com)")
    return CDNSettings(
        cdn_url=base,
        manifest_path=manifest_path,
        enabled=enabled,
        reason=reason,
        strict=bool(parse_flag(config["CDN_STRICT"], "CDN_STRICT")),
        # A remote manifest is refreshed by its own thread, never by the file-stat hook.
        reload=bool(parse_flag(config["CDN_RELOAD"], "CDN_RELOAD")) and source is None,
        placeholder=load_placeholder(config["CDN_PLACEHOLDER"]),
        source=source,
    )


def decide_enabled(
    forced: bool | None, base: str | None, manifest_path: Path, *, debug: bool
) -> tuple[bool, str]:
    """The enabled rule: an explicit ``CDN_ENABLED`` wins, otherwise URL + manifest + not debug."""
    if forced is not None:
        return forced, f"CDN_ENABLED is {forced}"
    if base is None:
        return False, "CDN_URL is not set"
    if not manifest_path.is_file():
        return False, f"no manifest at {str(manifest_path)!r} (run `flask cdn deploy`)"
    if debug:
        return False, "the app is in debug mode"
    return True, "CDN_URL is set and the manifest exists"


def decide_remote_enabled(
    forced: bool | None, base: str | None, source: SourceSettings, *, debug: bool
) -> tuple[bool, str]:
    """The enabled rule for a bucket or CDN manifest: as for a file, minus the file check."""
    if forced is not None:
        return forced, f"CDN_ENABLED is {forced}"
    if base is None:
        return False, "CDN_URL is not set"
    if debug:
        return False, "the app is in debug mode"
    return True, f"CDN_URL is set and the manifest is read from {source.mode} source"


def parse_flag(value: Any, name: str) -> bool | None:
    """Accept booleans and the usual strings (``"true"``, ``"0"``...) from env-based config."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def load_placeholder(value: str | os.PathLike[str] | None) -> Placeholder:
    """Read the configured placeholder once; a bad path fails at start-up, not per request."""
    if not value:
        return Placeholder(BUILTIN_PLACEHOLDER_SVG, "image/svg+xml")
    path = Path(value)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"CDN_PLACEHOLDER {str(path)!r} cannot be read: {exc.strerror}") from exc
    return Placeholder(body, content_type_for(path.name))


def url_table(base: str | None, manifest: Manifest | None) -> dict[str, str]:
    """Logical path -> full CDN URL, computed once so ``url_for`` is a dict lookup."""
    if base is None or manifest is None:
        return {}
    return {name: cdn_url(base, entry.key) for name, entry in manifest.files.items()}


def file_stamp(path: Path) -> _Stamp | None:
    """What identifies one version of the manifest file.

    The inode is part of it because the deploy replaces the file atomically: two
    deploys within one timestamp tick still differ by inode.
    """
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class CDNState:
    """Per-app state in ``app.extensions["cdn"]``: settings, manifest and the URL table.

    The manifest is read once in ``init_app``; with ``CDN_RELOAD`` it is re-read when
    its file changes. Readers never lock: a reload swaps whole objects.
    """

    def __init__(self, settings: CDNSettings, manifest: Manifest | None, stamp: _Stamp | None):
        self.settings = settings
        self.manifest = manifest
        self.urls = url_table(settings.cdn_url, manifest)
        self._stamp = stamp
        self._warned: set[str] = set()
        self._reload_lock = threading.Lock()
        self._warn_lock = threading.Lock()
        #: Blueprint name -> its logical-path prefix, or None when served locally.
        self.blueprint_prefixes: dict[str, str | None] = {}
        #: Polls a bucket or CDN manifest (``None`` for a local file).
        self.refresher: ManifestRefresher | None = None

    @classmethod
    def load(cls, settings: CDNSettings) -> CDNState:
        """Read the manifest the settings call for (stat first, so a change is never missed)."""
        stamp = file_stamp(settings.manifest_path)
        return cls(settings, initial_manifest(settings), stamp)

    @classmethod
    def load_remote(cls, settings: CDNSettings) -> CDNState:
        """Load a bucket or CDN manifest now; the refresher thread starts on the first request."""
        assert settings.source is not None
        source = open_source(settings.source)
        loaded, status = initial_load(source, settings.source)
        state = cls(settings, loaded.manifest if loaded else None, None)
        state.refresher = ManifestRefresher(
            source, interval=settings.source.refresh_seconds,
            last_good=settings.source.last_good, apply=state.swap, current=loaded, status=status,
        )
        return state

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def swap(self, manifest: Manifest) -> None:
        """Serve ``manifest`` from now on. ``url_for`` reads ``urls`` once per call, so
        replacing that one reference is atomic for it: no lock, no request waits."""
        self.manifest, self.urls = manifest, url_table(self.settings.cdn_url, manifest)

    def reload_if_changed(self) -> bool:
        """Re-read the manifest if its file changed; keep the old one if the new one is bad."""
        stamp = file_stamp(self.settings.manifest_path)
        if stamp is None or stamp == self._stamp:
            return False
        with self._reload_lock:
            if stamp == self._stamp:
                return False
            self._stamp = stamp  # a bad file is reported once, not on every request
            try:
                manifest = Manifest.load(self.settings.manifest_path)
            except ManifestError as exc:
                log.error("%s; keeping the manifest loaded before", exc)
                return False
            self.swap(manifest)
        log.info("reloaded CDN manifest %s (%d files)", self.settings.manifest_path, len(manifest))
        return True

    def report_missing(self, logical_path: str) -> None:
        """Strict: raise. Otherwise log one WARNING per asset for the life of the process."""
        if self.manifest is None:
            return  # no manifest could be loaded: the CDN is off, which was logged as an ERROR
        if self.settings.strict:
            raise MissingAssetError(logical_path)
        with self._warn_lock:
            if logical_path in self._warned:
                return
            self._warned.add(logical_path)
        log.warning("static asset %r is not in the CDN manifest %s: serving the local copy; "
                    "deploy again to put it on the CDN", logical_path, self.settings.manifest_path)


def initial_manifest(settings: CDNSettings) -> Manifest | None:
    """The manifest at start-up: required when enabled, optional (dev redirects) otherwise."""
    path = settings.manifest_path
    if settings.enabled:
        try:
            return Manifest.load(path)
        except ManifestError as exc:
            # Not `flask cdn deploy`: that needs this very app to load.
            raise ManifestError(f"{exc}; the CDN is enabled, so the app cannot build static "
                                "URLs: deploy again (python deploy.py), fix CDN_MANIFEST, "
                                "or set CDN_ENABLED to False") from exc
    if settings.cdn_url is None or not path.is_file():
        return None
    try:
        return Manifest.load(path)
    except ManifestError as exc:
        log.warning("%s; development redirects to the CDN are off", exc)
        return None


class CDN:
    """Flask extension: ``CDN(app)`` or ``cdn = CDN(); cdn.init_app(app)``.

    Holds no app: everything per app lives in ``app.extensions["cdn"]`` (a
    :class:`CDNState`), so one instance can serve several apps (factories, tests).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read config, load the manifest, and install the URL override or the dev static view.

        Raises :class:`~pipeline.errors.ConfigError` (or its subclass ``ManifestError``)
        when the config is invalid or the CDN is enabled with an unreadable manifest.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("the CDN extension is already registered on this app")
        set_defaults(app)
        settings = read_settings(app)
        remote = settings.source is not None and settings.enabled
        state = CDNState.load_remote(settings) if remote else CDNState.load(settings)
        app.extensions[EXTENSION_KEY] = state
        if parse_flag(app.config["CDN_ENABLED"], "CDN_ENABLED") is None:  # automatic
            _report_missing_manifest(state.settings, debug=app.debug)
        if state.refresher is not None:  # lazily, so no thread exists before a pre-fork
            app.before_request(state.refresher.ensure_started)
        if state.enabled:
            install_url_for(app, state)
        elif "static" in app.view_functions:
            app.view_functions["static"] = dev_static_view(state, app.view_functions["static"])
        if state.settings.reload and state.settings.cdn_url:
            app.before_request(_reload_hook(state))
        install_pictures(app, state)
        from .commands import cdn_group

        app.cli.add_command(cdn_group)

    @staticmethod
    def state(app: Flask) -> CDNState:
        """The extension's state for ``app`` (``KeyError`` names the fix when not registered)."""
        return get_state(app)


def _report_missing_manifest(settings: CDNSettings, *, debug: bool) -> None:
    """A production app given a CDN but no manifest would quietly serve every asset itself."""
    if settings.cdn_url and not settings.enabled and not debug \
            and not settings.manifest_path.is_file():
        log.error("CDN_URL is set but there is no manifest at %s: static files are served by "
                  "this app, not the CDN; deploy (python deploy.py), fix CDN_MANIFEST, or set "
                  "CDN_ENABLED=True to refuse to start without it", settings.manifest_path)


def get_state(app: Flask) -> CDNState:
    try:
        state: CDNState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise KeyError("the CDN extension is not registered on this app: call CDN(app)") from None
    return state


def _reload_hook(state: CDNState) -> Callable[[], None]:
    def reload_cdn_manifest() -> None:
        state.reload_if_changed()

    return reload_cdn_manifest
