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

This module only wires the pieces into an app: the config, the enabled rule and the
per-app state are in :mod:`pipeline.flaskext.state`, the URL override and the
development static view in :mod:`pipeline.flaskext.static`, the ``flask cdn``
commands in :mod:`pipeline.flaskext.commands`.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from .firstpaint import install_first_paint
from .importmap import install_importmap
from .pictures import install_pictures
from .state import (
    EXTENSION_KEY,
    CDNSettings,
    CDNState,
    get_state,
    log,
    read_startup,
    set_defaults,
)
from .static import dev_static_view, install_url_for
from .vite import install_vite


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
        startup = read_startup(app)
        settings, source = startup.settings, startup.source
        state = (CDNState.load_remote(settings, source) if source is not None and settings.enabled
                 else CDNState.load(settings))
        app.extensions[EXTENSION_KEY] = state
        if settings.automatic:
            _report_missing_manifest(settings, debug=app.debug)
        if state.refresher is not None:  # lazily, so no thread exists before a pre-fork
            app.before_request(state.refresher.ensure_started)
        if state.enabled:
            install_url_for(app, state)
        elif "static" in app.view_functions:
            app.view_functions["static"] = dev_static_view(state, app.view_functions["static"],
                                                           folder=app.static_folder)
        if state.settings.reload and state.settings.cdn_url:
            app.before_request(_reload_hook(state))
        install_first_paint(app)
        install_pictures(app, state)
        install_importmap(app)
        install_vite(app)
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
                  "this app, not the CDN; deploy (cdn-deploy), fix CDN_MANIFEST, or set "
                  "CDN_ENABLED=True to refuse to start without it", settings.manifest_path)


def _reload_hook(state: CDNState) -> Callable[[], None]:
    def reload_cdn_manifest() -> None:
        state.reload_if_changed()

    return reload_cdn_manifest
