"""Flask-Assets bundles on the CDN, with Subresource Integrity.

``init_bundles(app, BUNDLES)`` registers the bundles with Flask-Assets and adds a
Jinja helper, ``asset_tags(name)``:

* CDN on: one ``<link>``/``<script>`` for the bundle's deployed output, pointing at
  its fingerprinted object, with ``integrity`` (sha384 from the manifest) and
  ``crossorigin="anonymous"`` so the browser refuses altered bytes;
* CDN off: whatever Flask-Assets serves locally (the joined output, or each source
  file with ``ASSETS_DEBUG``), built on demand as usual in development.

``{% assets %}`` blocks keep working too: Flask-Assets builds their URLs with
``url_for('static')``, which the :class:`~pipeline.flaskext.extension.CDN` extension answers.
Call :func:`init_bundles` after ``CDN(app)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app
from markupsafe import Markup, escape

from ..extras import needs_extra
from ..hints import Hint
from .firstpaint import add_hint
from .state import get_state

with needs_extra("pipeline.flaskext.bundles"):
    from flask_assets import Environment


def init_bundles(app: Flask, bundles: Mapping[str, Any]) -> Environment:
    """Register ``bundles`` (name -> ``webassets.Bundle``) and the ``asset_tags`` helper."""
    on_cdn = get_state(app).enabled
    # On the CDN the deploy has built, fingerprinted and uploaded the outputs already:
    # no build at request time, and no ``?version`` query (the name carries the hash).
    app.config.setdefault("ASSETS_AUTO_BUILD", not on_cdn)
    app.config.setdefault("ASSETS_URL_EXPIRE", not on_cdn)
    # bool(): while the app is created under `flask run`, `app.debug` may be the 0 that
    # `from_prefixed_env` read from FLASK_DEBUG, and webassets refuses any non-bool.
    app.config.setdefault("ASSETS_DEBUG", bool(app.debug) and not on_cdn)
    env = Environment(app)
    env.register(dict(bundles))
    app.jinja_env.globals["asset_tags"] = asset_tags
    return env


def asset_tags(name: str) -> Markup:
    """The tag(s) that load bundle ``name`` (see the module docstring)."""
    env = current_app.jinja_env.assets_environment  # type: ignore[attr-defined]
    bundle = env[name]
    state = get_state(current_app)
    output = str(bundle.output or "")
    if state.enabled and state.manifest is not None:
        entry = state.manifest.get(output)
        url = state.urls.get(output)
        if entry is not None and url is not None:
            _preload(output, url, integrity=entry.integrity)
            return _tag(output, url, integrity=entry.integrity)
        state.report_missing(output)
    return Markup("\n").join(_tag(output, url) for url in bundle.urls())


def _preload(output: str, url: str, *, integrity: str | None) -> None:
    """Preload what the tag loads, with its ``integrity`` and CORS mode: a preload that
    differs in either is not reused, and the browser fetches the file twice."""
    add_hint(Hint(href=url, as_="style" if output.endswith(".css") else "script",
                  integrity=integrity or None, crossorigin=bool(integrity)))


def _tag(output: str, url: str, *, integrity: str | None = None) -> Markup:
    attributes = ""
    if integrity:
        attributes = f' integrity="{escape(integrity)}" crossorigin="anonymous"'
    if output.endswith(".css"):
        return Markup(f'<link rel="stylesheet" href="{escape(url)}"{attributes}>')
    return Markup(f'<script src="{escape(url)}"{attributes} defer></script>')
