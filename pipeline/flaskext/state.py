"""The extension's per-app config and state: what ``init_app`` reads, what requests use.

:class:`CDNSettings` is the app's ``CDN_*`` config read and validated once;
:class:`CDNState` (in ``app.extensions["cdn"]``) holds it with the manifest and the
URL table. The other modules of the extension (``extension``, ``static``,
``commands``, ``status``, ``bundles``) import their types and the logger from here,
so none of them imports another.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from ..errors import ConfigError, ManifestError, MissingAssetError
from ..manifest import Manifest
from ..media_types import content_type_for
from ..serving.deadline import BoundedFetch
from ..serving.refresher import ManifestRefresher, initial_load
from ..serving.source import (
    CONFIG_DEFAULTS,
    ManifestSource,
    SourceSettings,
    open_source,
    read_source_settings,
)
from ..urls import cdn_url, quote_key
from ..validate import DEFAULT_MANIFEST_PATH, validate_url

#: The one logger of the whole extension (configure it to see reloads and missing assets).
LOGGER_NAME = "pipeline.flaskext"
log = logging.getLogger(LOGGER_NAME)

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
    #: ``CDN_ENABLED`` is unset: the CDN is on when a URL and a manifest are there.
    automatic: bool = True


@dataclass(frozen=True)
class StartUp:
    """What ``init_app`` reads once: the settings and, for a bucket or CDN manifest, its
    source, opened once (which also checks its location)."""

    settings: CDNSettings
    source: ManifestSource | None


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


def read_startup(app: Flask) -> StartUp:
    """Validate the app's ``CDN_*`` config, decide whether the CDN is enabled, and open a
    remote manifest source: every setting is read once."""
    settings = read_settings(app)
    return StartUp(settings, open_source(settings.source) if settings.source else None)


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
        automatic=forced is None,
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
    root = cdn_url(base, "")  # the same URLs as cdn_url(base, key), the base trimmed once
    return {name: root + quote_key(entry.key) for name, entry in manifest.files.items()}


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
    def load_remote(cls, settings: CDNSettings, source: ManifestSource) -> CDNState:
        """Load a bucket or CDN manifest now; the refresher thread starts on the first request."""
        assert settings.source is not None
        fetcher = BoundedFetch(source)  # one read at a time, from start-up on
        loaded, status = initial_load(source, settings.source, fetcher=fetcher)
        state = cls(settings, loaded.manifest if loaded else None, None)
        state.refresher = ManifestRefresher(
            source, interval=settings.source.refresh_seconds,
            last_good=settings.source.last_good, apply=state.swap, current=loaded, status=status,
            deadline=settings.source.refresh_deadline, fetcher=fetcher,
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
                                "URLs: deploy again (cdn-deploy), fix CDN_MANIFEST, "
                                "or set CDN_ENABLED to False") from exc
    if settings.cdn_url is None or not path.is_file():
        return None
    try:
        return Manifest.load(path)
    except ManifestError as exc:
        log.warning("%s; development redirects to the CDN are off", exc)
        return None


def get_state(app: Flask) -> CDNState:
    """The extension's state for ``app``; the ``KeyError`` names the fix when not registered."""
    try:
        state: CDNState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise KeyError("the CDN extension is not registered on this app: call CDN(app)") from None
    return state
