"""Every static folder a Flask app serves, as the deploy mounts them.

One place decides where a blueprint's files sit in the manifest, so the deploy
(``flask cdn deploy``, ``cdn-deploy --app``) and ``url_for`` always agree:

* a blueprint folder inside the app's static folder is deployed with it, under its
  path there (``admin/`` for ``static/admin``);
* any other blueprint folder (one of an installed extension such as Flask-Admin, or
  beside the app's) is its own mount, named by the URL path of its ``<name>.static``
  rule as registered, so ``url_prefix`` and ``static_url_path`` count exactly as Flask
  applies them: ``admin/static/`` for ``/admin/static/<path:filename>``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

from ..build.mounts import Mount
from ..errors import ConfigError, PipelineError

log = logging.getLogger("pipeline.flaskext")

#: How Flask's static rules end (``Scaffold`` registers ``<static_url_path>/<path:filename>``).
_FILENAME_TAIL = "/<path:filename>"


def static_rule_path(app: Flask, endpoint: str) -> str | None:
    """The URL path the static rule of ``endpoint`` serves files under, or None.

    None when there is no such rule, or its URL has other variables (a ``url_prefix``
    with ``<lang>`` serves one folder at many URLs; the deploy cannot name them).
    """
    try:
        rules = list(app.url_map.iter_rules(endpoint))
    except KeyError:  # no rule for this endpoint
        return None
    for rule in rules:
        path = rule.rule
        if path.endswith(_FILENAME_TAIL) and "<" not in path[: -len(_FILENAME_TAIL)]:
            return path[: -len(_FILENAME_TAIL)] or "/"
    return None


def blueprint_mount(app: Flask, name: str) -> Mount | None:
    """The mount of a blueprint's static folder, if it has one Flask serves files from."""
    blueprint = app.blueprints.get(name)
    folder = blueprint.static_folder if blueprint is not None else None
    if folder is None or not os.path.isdir(folder):
        return None  # nothing to serve: Flask would answer 404 for every file
    url_path = static_rule_path(app, f"{name}.static")
    if url_path is None:
        log.info("blueprint %r has no static rule with a fixed URL path: Flask serves its "
                 "files, not the CDN", name)
        return None
    return Mount.blueprint(name, Path(folder), url_path)


def blueprint_mounts(app: Flask) -> tuple[Mount, ...]:
    """Every blueprint's static folder (registration order), for the deploy."""
    found = (blueprint_mount(app, name) for name in app.blueprints)
    return tuple(mount for mount in found if mount is not None)


def blueprint_prefix(app: Flask, name: str) -> str | None:
    """Where a blueprint's static files sit in the manifest: ``"admin/"`` for a folder in
    the app's static folder, else the blueprint's own mount (``"admin/static/"``)."""
    blueprint = app.blueprints.get(name)
    if blueprint is None or blueprint.static_folder is None:
        return None
    if app.static_folder is not None:
        folder = Path(blueprint.static_folder).resolve()
        if folder.is_relative_to(Path(app.static_folder).resolve()):
            relative = folder.relative_to(Path(app.static_folder).resolve())
            return "" if relative == Path(".") else relative.as_posix() + "/"
    mount = blueprint_mount(app, name)
    return None if mount is None else mount.logical_prefix


def load_app(spec: str, *, base: Path | None = None) -> Flask:
    """The app ``spec`` names (``module:factory``, ``module:app``, ``path/app.py``), loaded
    the way ``flask --app`` loads it; a relative module or file is looked up in ``base``
    (the folder of the ``pyproject.toml`` that named it) instead of the working directory."""
    from flask.cli import NoAppException, ScriptInfo

    module, colon, attribute = spec.partition(":")
    if base is not None and not os.path.isabs(module):
        module = str(base / module)
    try:
        return ScriptInfo(app_import_path=module + colon + attribute,
                          set_debug_flag=False).load_app()
    except NoAppException as exc:
        raise ConfigError(f"cannot load the app {spec!r}: {str(exc).splitlines()[0]}") from exc
    except PipelineError:
        raise  # the extension's own configuration errors keep their message and exit code
    except Exception as exc:  # the app's factory failed: say so in one line, not a traceback
        raise ConfigError(f"cannot load the app {spec!r}: {type(exc).__name__}: {exc}") from exc
