"""``flask cdn check``: every static file the templates name, found before a deploy ships.

Each template of the app and of its blueprints is parsed with the app's own Jinja
environment (``env.parse``: Jinja's parser, so comments, strings and custom
delimiters are understood as when rendering) and its AST walked for calls of
``url_for``, ``picture``, ``srcset`` and ``asset_tags``. A call whose arguments are
literals is resolved the way :mod:`pipeline.flaskext.static` resolves it at run time
(``'gallery.static'`` -> the blueprint's folder and its manifest name); one whose
arguments are only known when rendering (a variable, a ``'.static'`` relative to the
request's blueprint, ``**kwargs``) is counted as dynamic and never guessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import BaseLoader, TemplateSyntaxError, nodes
from werkzeug.security import safe_join

from ..manifest import Manifest
from .mounts import blueprint_prefix

#: The template globals that name static files.
CHECKED = frozenset({"url_for", "picture", "srcset", "asset_tags"})


@dataclass(frozen=True)
class Problem:
    """A call naming a file that is not there: ``where`` is ``template:line``."""

    where: str
    call: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.call}: {self.reason}"


@dataclass(frozen=True)
class CheckReport:
    templates: int
    #: Calls with literal arguments, each resolved and checked.
    checked: int
    problems: tuple[Problem, ...]
    #: ``template:line`` of each call whose arguments are known only when rendering.
    dynamic: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Target:
    """What a literal call names: a file in ``folder`` and its manifest name."""

    folder: str | None
    filename: str
    logical: str | None
    bundle: bool = False


def check_templates(app: Flask, *, manifest: Manifest | None = None,
                    relative_to: Path | None = None) -> CheckReport:
    """Check every template of ``app`` and its blueprints (see the module docstring)."""
    checked, templates = 0, 0
    problems: list[Problem] = []
    dynamic: list[str] = []
    for source, filename, name in template_sources(app):
        templates += 1
        if not any(name in source for name in CHECKED):
            continue  # calling one by name needs its name in the text: nothing to parse
        shown = _shown(filename, relative_to)
        try:
            tree = app.jinja_env.parse(source, name, filename)
        except TemplateSyntaxError as exc:
            problems.append(Problem(f"{shown}:{exc.lineno}", "template", exc.message or "syntax"))
            continue
        for call in tree.find_all(nodes.Call):
            if not isinstance(call.node, nodes.Name) or call.node.name not in CHECKED:
                continue
            where = f"{shown}:{call.lineno}"
            target = _target(app, call)
            if target is None:
                continue  # url_for of a view, not of a static file
            if target == "dynamic":
                dynamic.append(where)
                continue
            assert isinstance(target, _Target)
            checked += 1
            reason = _missing(app, target, manifest)
            if reason is not None:
                problems.append(Problem(where, _display(call), reason))
    return CheckReport(templates, checked, tuple(problems), tuple(dynamic))


def template_sources(app: Flask) -> Iterator[tuple[str, str, str]]:
    """``(source, file name, template name)`` of each template file of the app and its
    blueprints, each file once (a blueprint may share the app's folder)."""
    loaders: list[BaseLoader | None] = [app.jinja_loader]
    loaders += [blueprint.jinja_loader for blueprint in app.iter_blueprints()]
    seen: set[str] = set()
    for loader in loaders:
        if loader is None:
            continue
        for name in loader.list_templates():
            try:
                source, filename, _ = loader.get_source(app.jinja_env, name)
            except UnicodeDecodeError:
                continue  # not a text file (an image beside the templates): nothing to render
            key = filename or name
            if key in seen:
                continue
            seen.add(key)
            yield source, key, name


def _target(app: Flask, call: nodes.Call) -> _Target | str | None:
    """What a checked call names, ``"dynamic"`` when only rendering can tell, or ``None``
    for a ``url_for`` of a view."""
    if call.dyn_args is not None or call.dyn_kwargs is not None:
        return "dynamic"
    func = call.node.name  # type: ignore[attr-defined]
    kwargs = {kw.key: kw.value for kw in call.kwargs}
    if func == "url_for":
        endpoint = _literal(call.args[0] if call.args else kwargs.get("endpoint"))
        if endpoint is None:
            return "dynamic"
        if endpoint != "static" and not endpoint.endswith(".static"):
            return None
        filename = _literal(kwargs.get("filename"))
        if filename is None or endpoint.startswith("."):
            return "dynamic"  # '.static' depends on the request's blueprint
        return _static_target(app, endpoint, filename)
    first = _literal(call.args[0] if call.args else kwargs.get(
        "name" if func == "asset_tags" else "filename"))
    if first is None:
        return "dynamic"
    if func == "asset_tags":
        return _Target(None, first, _bundle_output(app, first), bundle=True)
    return _static_target(app, "static", first)


def _static_target(app: Flask, endpoint: str, filename: str) -> _Target:
    if endpoint == "static":
        return _Target(app.static_folder, filename, filename)
    name = endpoint[: -len(".static")]
    blueprint = app.blueprints.get(name)
    folder = blueprint.static_folder if blueprint is not None else None
    prefix = blueprint_prefix(app, name)
    return _Target(folder, filename, None if prefix is None else prefix + filename)


def _bundle_output(app: Flask, name: str) -> str | None:
    """The output path of webassets bundle ``name``, or None when there is no such bundle."""
    environment: Any = getattr(app.jinja_env, "assets_environment", None)
    if environment is None:
        return None
    try:
        return str(environment[name].output or "") or None
    except KeyError:
        return None


def _missing(app: Flask, target: _Target, manifest: Manifest | None) -> str | None:
    """Why the target is not there, or None when it is (in its folder and the manifest)."""
    if target.bundle:
        if target.logical is None:
            return f"no bundle named {target.filename!r}"
    elif target.folder is None or target.logical is None:
        return "no static folder is served for that endpoint"
    else:
        path = safe_join(target.folder, target.filename)
        if path is None or not os.path.isfile(path):
            return f"{target.filename!r} is not in {target.folder}"
    if manifest is not None and target.logical not in manifest.files:
        return f"{target.logical!r} is not in the manifest"
    return None


def _literal(node: nodes.Node | None) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _display(call: nodes.Call) -> str:
    """``url_for('static', filename='x.png')``: the call as written, literals only."""
    func = call.node.name  # type: ignore[attr-defined]
    parts = [repr(arg.value) if isinstance(arg, nodes.Const) else "..." for arg in call.args]
    parts += [f"{kw.key}={kw.value.value!r}" if isinstance(kw.value, nodes.Const)
              else f"{kw.key}=..." for kw in call.kwargs]
    return f"{func}({', '.join(parts)})"


def _shown(filename: str, relative_to: Path | None) -> str:
    """A template's file relative to ``relative_to`` (the working directory) when inside it."""
    if relative_to is not None:
        try:
            return Path(filename).relative_to(relative_to).as_posix()
        except ValueError:
            pass
    return filename


def report_json(report: CheckReport) -> Mapping[str, Any]:
    return {
        "templates": report.templates,
        "checked": report.checked,
        "missing": [{"where": p.where, "call": p.call, "reason": p.reason}
                    for p in report.problems],
        "dynamic": list(report.dynamic),
    }
