"""``{{ vite_tags("src/main.ts") }}``: a Vite entry's tags, from the CDN or the dev server.

With the CDN on, the deploy recorded Vite's chunks in our manifest
(:mod:`pipeline.vitemanifest`), and the entry's tags come from there, in pinned and follow
modes alike (the manifest in effect is read on each call):

* one ``<link rel="stylesheet">`` per stylesheet of the entry and of the chunks it imports;
* one ``<link rel="modulepreload">`` per chunk it imports statically, transitively (not the
  dynamic imports, which load on demand), so the browser fetches them in parallel;
* the entry's ``<script type="module">``;

each on the CDN with the file's ``integrity`` and ``crossorigin="anonymous"`` (module
scripts are fetched in CORS mode; a preload in another mode or with another integrity would
be fetched twice). This is Vite's "backend integration" recipe.

With ``CDN_VITE_DEV_SERVER = "http://localhost:5173"`` the tags point at Vite's dev server
instead (``@vite/client``, which runs hot module replacement, plus the entry), and
``{{ vite_react_refresh() }}`` adds the preamble ``@vitejs/plugin-react`` needs in a page
it did not render. With the CDN off and no dev server, the tags name the build in the app's
own static folder (``static/.vite/manifest.json`` or ``static/<dir>/.vite/...``).

An entry missing from the manifest: ``CDN_STRICT`` raises, otherwise one warning per entry
and an HTML comment in its place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from urllib.parse import quote

from flask import Flask, current_app, url_for
from markupsafe import Markup, escape

from ..build.vite import local_vite_manifest
from ..errors import ConfigError, MissingAssetError
from ..manifest import Manifest
from ..validate import validate_url
from ..vitemanifest import Closure, ViteManifest
from .state import CDNState, get_state

log = logging.getLogger(__name__)

_KEY = "cdn.vite"
DEV_SERVER_SETTING = "CDN_VITE_DEV_SERVER"


class _Vite:
    """Per app: the dev server (or ``None``), tags per manifest object, entries warned of."""

    def __init__(self, dev_server: str | None, static_folder: str | None) -> None:
        self.dev_server = dev_server
        self.static_folder = static_folder
        self.local: tuple[ViteManifest | None] | None = None  # read once, on first use
        self.cached: tuple[Manifest | None, dict[str, Markup]] = (None, {})
        self.warned: set[str] = set()


def install_vite(app: Flask) -> None:
    """Validate ``CDN_VITE_DEV_SERVER`` once and register the Jinja helpers."""
    app.config.setdefault(DEV_SERVER_SETTING, None)
    server = app.config[DEV_SERVER_SETTING]
    if server is not None and not isinstance(server, str):
        raise ConfigError(f"{DEV_SERVER_SETTING} must be a URL string, not {server!r}")
    server = validate_url(server, DEV_SERVER_SETTING)
    app.extensions[_KEY] = _Vite(server.rstrip("/") if server else None, app.static_folder)
    app.add_template_global(vite_tags)
    app.add_template_global(vite_react_refresh)


def vite_tags(entry: str) -> Markup:
    """The tags that load Vite entry ``entry`` (its key in Vite's manifest, such as
    ``src/main.ts``); see the module docstring."""
    vite: _Vite = current_app.extensions[_KEY]
    if vite.dev_server is not None:
        return Markup(f'<script type="module" src="{escape(vite.dev_server)}/@vite/client">'
                      f'</script>\n<script type="module" src="{escape(_dev_url(vite, entry))}">'
                      "</script>")
    state = get_state(current_app)
    if not state.enabled:
        return _local_tags(vite, state, entry)
    manifest, urls = state.manifest, state.urls  # one pair, even if a refresh swaps them
    cached_for, tags = vite.cached
    if cached_for is not manifest:
        tags = {}
        vite.cached = (manifest, tags)
    if entry not in tags:
        closure = manifest.vite.closure(entry) if manifest and manifest.vite else None
        markup = None if closure is None or manifest is None else _tags(
            closure, partial(_on_cdn, manifest, urls))
        if markup is None:
            return _missing(vite, state, entry)
        tags[entry] = markup  # bounded: only entries the manifest has
    return tags[entry]


def _on_cdn(manifest: Manifest, urls: Mapping[str, str], path: str
            ) -> tuple[str, str | None] | None:
    """The CDN URL and integrity of a deployed file, or ``None``."""
    found = manifest.files.get(path)
    url = urls.get(path)
    return None if found is None or url is None else (url, found.integrity)


def vite_react_refresh() -> Markup:
    """``@vitejs/plugin-react``'s preamble, with the dev server on (its fast refresh needs it
    before any module runs, and Vite only adds it to pages Vite serves); nothing otherwise."""
    vite: _Vite = current_app.extensions[_KEY]
    if vite.dev_server is None:
        return Markup("")
    return Markup(
        '<script type="module">\n'
        f'import RefreshRuntime from "{escape(vite.dev_server)}/@react-refresh"\n'
        "RefreshRuntime.injectIntoGlobalHook(window)\n"
        "window.$RefreshReg$ = () => {}\n"
        "window.$RefreshSig$ = () => (type) => type\n"
        "window.__vite_plugin_react_preamble_installed__ = true\n"
        "</script>")


#: ``(url, integrity)`` of a logical path, or ``None`` when it cannot be named.
_Locate = Callable[[str], "tuple[str, str | None] | None"]


def _tags(closure: Closure, locate: _Locate) -> Markup | None:
    """Stylesheets, preloads, then the entry; ``None`` if a file cannot be located."""
    found = [(kind, locate(path)) for kind, paths in
             (("css", closure.css), ("preload", closure.preloads), ("script", (closure.script,)))
             for path in paths]
    lines = []
    for kind, where in found:
        if where is None:
            return None
        url, integrity = where
        extra = f' integrity="{escape(integrity)}"' if integrity else ""
        extra += ' crossorigin="anonymous"'
        if kind == "css":
            lines.append(f'<link rel="stylesheet" href="{escape(url)}"{extra}>')
        elif kind == "preload":
            lines.append(f'<link rel="modulepreload" href="{escape(url)}"{extra}>')
        else:
            lines.append(f'<script type="module" src="{escape(url)}"{extra}></script>')
    return Markup("\n".join(lines))


def _local_tags(vite: _Vite, state: CDNState, entry: str) -> Markup:
    """The CDN off and no dev server: the build in the app's own static folder."""
    if vite.local is None:
        folder = vite.static_folder
        vite.local = (local_vite_manifest(Path(folder)) if folder else None,)
    local = vite.local[0]
    closure = local.closure(entry) if local is not None else None
    markup = None if closure is None else _tags(
        closure, lambda path: (url_for("static", filename=path), None))
    return markup if markup is not None else _missing(vite, state, entry)


def _missing(vite: _Vite, state: CDNState, entry: str) -> Markup:
    """Strict: raise. Otherwise warn once per entry and leave a comment in the page."""
    if state.settings.strict:
        raise MissingAssetError(f"vite:{entry}")
    if entry not in vite.warned:
        vite.warned.add(entry)  # a set add is atomic; a rare second warning is harmless
        log.warning("Vite entry %r is not in the manifest: build with build.manifest: true "
                    "and deploy again, or fix the name", entry)
    name = str(escape(entry)).replace("--", "-&#45;")  # "--" could end the comment early
    return Markup(f"<!-- vite_tags: entry {name} is not in the manifest -->")


def _dev_url(vite: _Vite, entry: str) -> str:
    return f"{vite.dev_server}/{quote(entry.lstrip('/'), safe='/')}"
