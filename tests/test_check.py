"""``flask cdn check`` (issue 20, item 2): the static files templates name, checked with
Jinja's parser against the folders and, when given, the deployed manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskCliRunner

from pipeline import CDN
from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files
from tests.app_project import write_blog_project
from tests.helpers import write_tree
from tests.installed import InstalledTool

PAGE = b"""<!doctype html>
<link rel=stylesheet href="{{ url_for('static', filename='css/site.css') }}">
{# url_for('static', filename='in/a/comment.png') is not a call #}
<p>{{ "url_for('static', filename='in/a/string.png')" }}</p>
<img src="{{ url_for('static', filename='img/gone.png') }}">
{{ picture('img/cat.png', 'A cat') }}
<a href="{{ url_for('index') }}">home</a>
"""

SHOP_PAGE = b"""{% extends "page.html" %}
{% block body %}
<link rel=stylesheet href="{{ url_for('shop.static', filename='shop.css') }}">
<script src="{{ url_for('shop.static', filename='missing.js') }}"></script>
{% endblock %}
"""

DYNAMIC = b"""{% for name in names %}{{ url_for('static', filename=name) }}{% endfor %}
{{ picture(photo.path, photo.alt) }}
{{ url_for('.static', filename='x.css') }}
{{ url_for(endpoint, filename='x.css') }}
{{ url_for('static', **args) }}
"""


def make_app(root: Path, templates: dict[str, bytes], *, shop: bool = True) -> Flask:
    write_tree(root / "static", {"css/site.css": b"body{}", "img/cat.png": b"cat"})
    write_tree(root / "templates", templates)
    app = Flask("checked", root_path=str(root))
    app.add_url_rule("/", "index", lambda: "")
    if shop:
        write_tree(root / "shop", {"static/shop.css": b"a{}",
                                   "templates/shop/page.html": SHOP_PAGE})
        app.register_blueprint(Blueprint(
            "shop", "checked.shop", root_path=str(root / "shop"), static_folder="static",
            template_folder="templates", url_prefix="/shop"))
    CDN(app)
    return app


def run_check(app: Flask, *args: str) -> tuple[int, str]:
    runner: FlaskCliRunner = app.test_cli_runner()
    result = runner.invoke(args=["cdn", "check", *args])
    return result.exit_code, result.output


def test_a_missing_file_is_listed_with_its_template_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, {"page.html": PAGE}, shop=False)

    code, out = run_check(app)

    assert code == 1
    lines = out.splitlines()
    assert lines[0] == ("templates/page.html:5: url_for('static', filename='img/gone.png'): "
                        f"'img/gone.png' is not in {tmp_path / 'static'}")
    # Jinja's parser: a comment and a string that look like calls are not calls.
    assert "comment.png" not in out and "string.png" not in out
    assert lines[-1].startswith("Checked 1 template(s): 3 static reference(s) against the "
                                "folders, 1 missing; 0 dynamic")


def test_a_blueprint_template_is_checked_against_the_blueprint_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, {"page.html": b"{% block body %}{% endblock %}"})

    code, out = run_check(app, "--json")

    assert code == 1
    report = json.loads(out)
    assert report["templates"] == 2 and report["checked"] == 2
    assert report["missing"] == [{
        "where": "shop/templates/shop/page.html:4",
        "call": "url_for('shop.static', filename='missing.js')",
        "reason": f"'missing.js' is not in {tmp_path / 'shop' / 'static'}",
    }]


def test_dynamic_calls_are_counted_never_guessed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, {"dynamic.html": DYNAMIC}, shop=False)

    code, out = run_check(app, "--json")

    assert code == 0
    report = json.loads(out)
    assert report["checked"] == 0 and report["missing"] == []
    assert report["dynamic"] == [f"templates/dynamic.html:{line}" for line in (1, 2, 3, 4, 5)]


def test_the_manifest_must_hold_every_file_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, {"page.html": b"{{ url_for('static', filename='css/site.css') }}\n"
                                           b"{{ url_for('shop.static', filename='shop.css') }}"})
    manifest = build_manifest(collect_files(tmp_path / "static"), prefix="static",
                              cache=HashCache(None))
    manifest.save(tmp_path / "app-only.json")

    code, out = run_check(app, "--manifest", "app-only.json")

    assert code == 1
    assert "templates/page.html:2: url_for('shop.static', filename='shop.css'): 'shop/static/" \
           "shop.css' is not in the manifest" in out
    assert "page.html:1" not in out


def test_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, {"ok.html": b"{{ url_for('static', filename='img/cat.png') }}",
                              "bundle.html": b"{{ asset_tags('css_all') }}"}, shop=False)
    code, out = run_check(app)
    assert code == 1 and "templates/bundle.html:1: asset_tags('css_all'): no bundle" in out

    (tmp_path / "templates" / "bundle.html").unlink()
    assert run_check(app)[0] == 0
    code, out = run_check(app, "--manifest", "nowhere.json")
    assert code == 2 and "cannot read manifest" in out and "Traceback" not in out
    (tmp_path / "templates" / "broken.html").write_text("line 1\n{{ url_for( }}\n")
    code, out = run_check(app)
    assert code == 1 and "templates/broken.html:2: template:" in out


def test_the_installed_flask_command_checks_a_foreign_project(
        installed: InstalledTool, project: Path) -> None:
    write_blog_project(project)
    result = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "check", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr

    page = project / "templates" / "gallery.html"
    page.write_text(page.read_text() + "{{ url_for('gallery.static', filename='gone.css') }}\n")
    result = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "check", cwd=project)

    assert result.returncode == 1
    assert result.stdout.startswith(
        "templates/gallery.html:2: url_for('gallery.static', filename='gone.css'): 'gone.css' "
        f"is not in {project / 'gallery_assets'}")
