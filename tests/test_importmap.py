"""``{{ importmap() }}``: configured names and /static/ paths to CDN URLs, with integrity."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from pipeline import CDN, ConfigError, MissingAssetError
from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files
from pipeline.manifest import Manifest
from tests.helpers import write_tree

BASE = "https://cdn.example.com"
FILES = {"js/app.js": b'import "./util.js";', "js/util.js": b"export {};",
         "js/<odd>.mjs": b"export {};", "img/a.png": b"png"}


def make_app(tmp_path: Path, *, debug: bool = False, **config: Any) -> tuple[Flask, Manifest]:
    static = write_tree(tmp_path / "static", FILES)
    manifest = build_manifest(collect_files(static), prefix="static", cache=HashCache(None))
    manifest.save(tmp_path / "m.json")
    app = Flask(__name__, static_folder=str(static), root_path=str(tmp_path))
    app.config.update(DEBUG=debug, CDN_URL=BASE, CDN_MANIFEST=str(tmp_path / "m.json"), **config)
    CDN(app)
    return app, manifest


def rendered(app: Flask) -> dict[str, Any]:
    with app.test_request_context():
        html = render_template_string("{{ importmap() }}")
    match = re.fullmatch(r'<script type="importmap">(.*)</script>', html)
    assert match is not None, html
    assert "<" not in match[1]  # nothing in the JSON can close the element
    document: dict[str, Any] = json.loads(match[1])
    return document


def url(manifest: Manifest, path: str) -> str:
    return f"{BASE}/" + manifest.files[path].key.replace("<", "%3C").replace(">", "%3E")


def test_on_the_cdn_names_and_static_paths_map_to_fingerprinted_urls(tmp_path: Path) -> None:
    app, manifest = make_app(tmp_path, CDN_IMPORTMAP={"app": "js/app.js"})
    document = rendered(app)
    app_url, util_url, odd_url = (url(manifest, p) for p in
                                  ("js/app.js", "js/util.js", "js/<odd>.mjs"))
    assert document["imports"] == {
        "app": app_url,
        "/static/js/app.js": app_url,
        "/static/js/util.js": util_url,
        "/static/js/%3Codd%3E.mjs": odd_url,
    }
    assert document["integrity"] == {
        app_url: manifest.files["js/app.js"].integrity,
        util_url: manifest.files["js/util.js"].integrity,
        odd_url: manifest.files["js/<odd>.mjs"].integrity,
    }


def test_in_development_names_map_to_local_urls(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, debug=True, CDN_IMPORTMAP={"app": "js/app.js"})
    assert rendered(app) == {"imports": {"app": "/static/js/app.js"}}


def test_names_come_from_the_pyproject_table_the_deploy_reads(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nimportmap = { app = "js/app.js", util = "js/util.js" }\n')
    app, manifest = make_app(tmp_path)
    imports = rendered(app)["imports"]
    assert imports["app"] == url(manifest, "js/app.js")
    assert imports["util"] == url(manifest, "js/util.js")


def test_a_module_missing_from_the_manifest_is_an_error_in_strict_mode(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, CDN_IMPORTMAP={"gone": "js/gone.js"}, CDN_STRICT=True)
    with pytest.raises(MissingAssetError), app.test_request_context():
        render_template_string("{{ importmap() }}")


@pytest.mark.parametrize("value", [["js/app.js"], {"app": ""}, {"": "js/app.js"}])
def test_a_bad_setting_is_a_config_error(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="CDN_IMPORTMAP"):
        make_app(tmp_path, CDN_IMPORTMAP=value)


def test_modulepreload_names_the_cdn_url_with_its_integrity(tmp_path: Path) -> None:
    app, manifest = make_app(tmp_path, CDN_IMPORTMAP={"app": "js/app.js"})
    with app.test_request_context():
        html = render_template_string('{{ modulepreload("app", "js/util.js") }}')
    assert html.splitlines() == [
        f'<link rel="modulepreload" href="{url(manifest, path)}" integrity='
        f'"{manifest.files[path].integrity}" crossorigin="anonymous">'
        for path in ("js/app.js", "js/util.js")]


def test_modulepreload_in_development_is_local(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, debug=True, CDN_IMPORTMAP={"app": "js/app.js"})
    with app.test_request_context():
        html = render_template_string('{{ modulepreload("app") }}')
    assert html == '<link rel="modulepreload" href="/static/js/app.js">'
