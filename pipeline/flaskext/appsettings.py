"""What a deploy takes from a Flask app: its settings, as layers of the precedence, and
its blueprints' static folders (:mod:`pipeline.flaskext.mounts`).

Shared by ``flask --app APP cdn deploy`` and ``cdn-deploy --app APP`` (which loads the
app here), so both deploy the same folders to the place the app reads its manifest from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from ..serving.source import bucket_location
from .mounts import blueprint_mounts, load_app
from .state import EXTENSION_KEY, get_state

if TYPE_CHECKING:
    from ..build.mounts import Mount
    from ..cli.settings import Layer


def app_deploy_context(spec: str, *, base: Path | None) -> tuple[Layer, Layer, tuple[Mount, ...]]:
    """What ``cdn-deploy --app SPEC`` takes from the app: the same settings layers and
    blueprint folders as ``flask --app SPEC cdn deploy``."""
    app = load_app(spec, base=base)
    with app.app_context():
        return (*app_layers(app), blueprint_mounts(app))


def app_layers(app: Flask) -> tuple[Layer, Layer]:
    """The app's settings for ``flask cdn deploy``, as two layers of the precedence.

    Above the environment: the manifest path and CDN URL the app itself reads, and the
    bucket and prefix of an ``s3://`` CDN_MANIFEST, so the deploy publishes where this
    app looks for it. Below the project's ``pyproject.toml``: the app's static folder,
    the default folder to deploy, and the URL path it is served at (``/`` for Flask's
    ``""``), which root-absolute CSS references start with.
    """
    from ..cli.settings import Layer

    static: dict[str, Any] = {}
    if app.static_folder:
        static["static_dir"] = Path(app.static_folder)
        static["static_url_path"] = app.static_url_path or "/"
    below = Layer("the app's static folder", static)
    if EXTENSION_KEY not in app.extensions:  # an app without CDN(app): its folders only
        return Layer("the app's CDN_* config", {}), below
    settings = get_state(app).settings
    reads: dict[str, Any] = {"manifest": settings.manifest_path}
    if settings.cdn_url is not None:
        reads["cdn_url"] = settings.cdn_url
    source = settings.source
    location = bucket_location(source) if source is not None else None
    if source is not None and location is not None:  # publish where the app reads
        reads.update(bucket=location[0], prefix=location[1])
        if source.endpoint_url is not None:
            reads["endpoint_url"] = source.endpoint_url
    return Layer("the app's CDN_* config", reads), below


