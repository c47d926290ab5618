"""``{{ importmap() }}``: a ``<script type="importmap">`` from the manifest.

Relative and ``/static/...`` specifiers inside deployed modules are rewritten by the
deploy (:mod:`pipeline.build.jsmodules`); what it cannot rewrite is a page's own code
and bare names. The import map answers both (HTML spec, "import maps"):

* each configured logical name (``CDN_IMPORTMAP = {"app": "js/app.js"}``, or the
  ``importmap`` table of the ``pyproject.toml`` nearest the app, the one the deploy
  reads) maps to the module's URL, so ``import "app"`` works;
* on the CDN, every deployed module's ``/static/...`` path (the app's
  ``static_url_path``) maps to its fingerprinted CDN URL, so an inline
  ``import "/static/js/app.js"`` loads the deployed copy;
* on the CDN, ``integrity`` gives each module URL its sha384 from the manifest, so the
  browser checks every module it loads, also the ones imported by other modules
  (Chromium 127+, Firefox 138+, Safari 18+; older browsers ignore the key).

In development the names map to the local ``/static/`` URLs and nothing else is needed.
The map is built once per loaded manifest. A configured module missing from the manifest
is reported like any missing asset (``CDN_STRICT``: an error) and maps to its local URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, url_for
from markupsafe import Markup, escape

from ..errors import ConfigError
from ..manifest import Manifest
from .state import get_state

_KEY = "cdn.importmap"
#: The ``pyproject.toml`` key, read as the deploy reads it.
TABLE_KEYS = {"importmap": ("importmap", "mapping")}
_MODULE_SUFFIXES = (".js", ".mjs")
# Inside <script>, "</script>" or "<!--" in a JSON string would end or change the element.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


class _ImportMaps:
    """Per app: the configured names and the last map built (per manifest object)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)
        self.cached: tuple[Manifest | None, Markup] | None = None


def read_importmap_names(value: Any, *, where: str = "CDN_IMPORTMAP") -> dict[str, str]:
    """Validate a mapping of module name -> logical path of a deployed module."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of module name to static file, "
                          f"not {value!r}")
    names: dict[str, str] = {}
    for name, path in value.items():
        if not (isinstance(name, str) and name and isinstance(path, str) and path):
            raise ConfigError(f"{where}: {name!r} = {path!r}: both must be non-empty strings")
        names[name] = path.lstrip("/")
    return names


def app_importmap_names(app: Flask) -> dict[str, str]:
    """``CDN_IMPORTMAP`` when the app sets it, else the ``importmap`` key of the nearest
    ``pyproject.toml`` table, else nothing."""
    configured = app.config.get("CDN_IMPORTMAP")
    if configured is not None:
        return read_importmap_names(configured)
    from ..pyproject import load_project_config

    project = load_project_config(Path(app.root_path), TABLE_KEYS, others=True)
    if project is None or "importmap" not in project.values:
        return {}
    return read_importmap_names(project.values["importmap"], where=project.label)


def install_importmap(app: Flask) -> None:
    """Read the names once and register the ``importmap`` Jinja global."""
    app.config.setdefault("CDN_IMPORTMAP", None)
    app.extensions[_KEY] = _ImportMaps(app_importmap_names(app))
    app.add_template_global(importmap)
    app.add_template_global(modulepreload)


def importmap() -> Markup:
    """The ``<script type="importmap">`` element for the current app (module docstring)."""
    maps: _ImportMaps = current_app.extensions[_KEY]
    state = get_state(current_app)
    manifest = state.manifest if state.enabled else None
    cached = maps.cached
    if cached is not None and cached[0] is manifest:
        return cached[1]
    document = _document(maps.names, manifest, state.urls)
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    markup = Markup(f'<script type="importmap">{text.translate(_SCRIPT_SAFE)}</script>')
    maps.cached = (manifest, markup)
    return markup


def modulepreload(*modules: str) -> Markup:
    """``<link rel="modulepreload">`` for each module (a configured name or a logical path),
    so the browser fetches it in parallel with the entry instead of after parsing it.

    On the CDN each link carries the module's ``integrity`` (a preload whose integrity
    differs from the import's is fetched twice) and ``crossorigin="anonymous"``, the mode
    module scripts are fetched in.
    """
    maps: _ImportMaps = current_app.extensions[_KEY]
    state = get_state(current_app)
    links = []
    for module in modules:
        path = maps.names.get(module, module.lstrip("/"))
        entry = state.manifest.get(path) if state.enabled and state.manifest else None
        url = state.urls.get(path) if entry is not None else None
        if url is None or entry is None:
            if state.enabled:
                state.report_missing(path)
            local = url_for("static", filename=path)
            links.append(f'<link rel="modulepreload" href="{escape(local)}">')
            continue
        integrity = f' integrity="{escape(entry.integrity)}"' if entry.integrity else ""
        links.append(f'<link rel="modulepreload" href="{escape(url)}"{integrity} '
                     'crossorigin="anonymous">')
    return Markup("\n".join(links))


def _document(names: Mapping[str, str], manifest: Manifest | None,
              urls: Mapping[str, str]) -> dict[str, Any]:
    imports: dict[str, str] = {}
    integrity: dict[str, str] = {}
    state = get_state(current_app)
    for name, path in names.items():
        url = urls.get(path) if manifest is not None else None
        if url is None:
            if manifest is not None:
                state.report_missing(path)
            url = url_for("static", filename=path)
        imports[name] = url
    if manifest is not None:
        root = (current_app.static_url_path or "").rstrip("/") + "/"
        for path, entry in manifest.files.items():
            url = urls.get(path)
            if url is None or not path.lower().endswith(_MODULE_SUFFIXES):
                continue
            imports[root + quote(path, safe="/")] = url
            if entry.integrity:
                integrity[url] = entry.integrity
    return {"imports": imports, "integrity": integrity} if integrity else {"imports": imports}
