"""The CDN Flask extension: url_for in both modes, fallback, strict, reload, dev static view,
CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, render_template_string, url_for
from werkzeug.routing import BuildError

from pipeline import CDN, ConfigError, ManifestError, MissingAssetError
from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.flaskext.state import BUILTIN_PLACEHOLDER_SVG, LOGGER_NAME, get_state
from pipeline.localfs import collect_files, scan_files
from pipeline.manifest import Manifest
from tests.helpers import write_tree

BASE = "https://cdn.example.com/"
LOGGER = LOGGER_NAME


def deploy_manifest(static: Path, path: Path) -> Manifest:
    """What a deploy leaves behind: the manifest of ``static`` at ``path``."""
    manifest = build_manifest(collect_files(static), prefix="static", cache=HashCache(None))
    manifest.save(path)
    return manifest


def make_app(static: Path, *, debug: bool = False, **config: Any) -> Flask:
    app = Flask(__name__, static_folder=str(static))
    app.config["DEBUG"] = debug
    app.config.update(config)
    CDN(app)
    return app


def key_url(manifest: Manifest, name: str) -> str:
    """The object's URL written out by hand: base + the key with Werkzeug-free quoting."""
    from urllib.parse import quote

    return "https://cdn.example.com/" + quote(manifest.files[name].key, safe="/")


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    return tmp_path / "build" / "cdn-manifest.json"


@pytest.fixture
def manifest(static_tree: Path, manifest_path: Path) -> Manifest:
    return deploy_manifest(static_tree, manifest_path)


@pytest.fixture
def cdn_app(static_tree: Path, manifest_path: Path, manifest: Manifest) -> Flask:
    """Production: CDN_URL set, manifest present, not debug."""
    return make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))


@pytest.fixture
def dev_app(static_tree: Path, manifest_path: Path, manifest: Manifest) -> Flask:
    """Development: same settings, debug on, so the CDN is off."""
    return make_app(static_tree, debug=True, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))


def static_url(app: Flask, filename: str, **kwargs: Any) -> str:
    with app.test_request_context("/"):
        return url_for("static", filename=filename, **kwargs)


# --- enabled: URLs in Python and in templates ------------------------------------------


def test_enabled_url_for_returns_fingerprinted_cdn_url(cdn_app: Flask, manifest: Manifest) -> None:
    url = static_url(cdn_app, "img/cat.jpg")
    assert url == key_url(manifest, "img/cat.jpg")
    assert url.startswith("https://cdn.example.com/static/img/cat.") and url.endswith(".jpg")
    assert get_state(cdn_app).enabled


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("img/odd/a+b #1 100%.gif", "img/odd/a%2Bb%20%231%20100%25."),
        ("img/photos/sunset beach.webp", "img/photos/sunset%20beach."),
        ("img/photos/caf\u00e9.png", "img/photos/caf%C3%A9."),
    ],
)
def test_awkward_names_are_percent_encoded(cdn_app: Flask, manifest: Manifest, name: str,
                                           encoded: str) -> None:
    url = static_url(cdn_app, name)
    assert url == key_url(manifest, name)
    assert url.startswith("https://cdn.example.com/static/" + encoded)
    assert "+" not in url and " " not in url


def test_template_uses_cdn_url(cdn_app: Flask, manifest: Manifest) -> None:
    template = "<img src=\"{{ url_for('static', filename='img/odd/a+b #1 100%.gif') }}\">"
    with cdn_app.test_request_context("/"):
        html = render_template_string(template)
    assert html == f'<img src="{key_url(manifest, "img/odd/a+b #1 100%.gif")}">'


def test_template_env_created_before_init_app_is_refreshed(
    static_tree: Path, manifest_path: Path, manifest: Manifest
) -> None:
    app = Flask(__name__, static_folder=str(static_tree))
    app.config.update(CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))
    assert app.jinja_env.globals["url_for"] is not None  # created now, binds the old url_for
    CDN(app)
    with app.test_request_context("/"):
        html = render_template_string("{{ url_for('static', filename='img/cat.jpg') }}")
    assert html == key_url(manifest, "img/cat.jpg")


def test_url_for_without_request_context(cdn_app: Flask, manifest: Manifest) -> None:
    """No SERVER_NAME needed: a CDN URL does not depend on the request."""
    assert cdn_app.url_for("static", filename="img/cat.jpg") == key_url(manifest, "img/cat.jpg")
    with cdn_app.app_context():
        assert url_for("static", filename="js/app.min.js") == key_url(manifest, "js/app.min.js")


def test_other_endpoints_are_untouched(cdn_app: Flask) -> None:
    cdn_app.add_url_rule("/hello/<name>", "hello", lambda name: name)
    with cdn_app.test_request_context("/"):
        assert url_for("hello", name="a b", q="1") == "/hello/a%20b?q=1"
        assert url_for("hello", name="x", _external=True) == "http://localhost/hello/x"
        with pytest.raises(BuildError):
            url_for("nowhere")


def test_external_anchor_scheme_and_query_args(cdn_app: Flask, manifest: Manifest) -> None:
    plain = key_url(manifest, "img/cat.jpg")
    assert static_url(cdn_app, "img/cat.jpg", _external=True) == plain
    assert static_url(cdn_app, "img/cat.jpg", _external=False) == plain
    assert static_url(cdn_app, "img/cat.jpg", _anchor="top part") == plain + "#top%20part"
    assert static_url(cdn_app, "img/cat.jpg", v="2", tag=["a b", "c&d"]) == (
        plain + "?v=2&tag=a+b&tag=c%26d")
    assert static_url(cdn_app, "img/cat.jpg", v=None) == plain
    assert static_url(cdn_app, "img/cat.jpg", _scheme="http", _external=True) == (
        "http" + plain[len("https"):])
    assert static_url(cdn_app, "img/cat.jpg", _method="GET") == plain


def test_query_and_anchor_match_flasks_own_encoding(cdn_app: Flask, static_tree: Path) -> None:
    plain_app = Flask(__name__, static_folder=str(static_tree))
    extras: dict[str, Any] = {"_anchor": "x y/ü#", "q": "a+b c", "n": [1, 2]}
    local = static_url(plain_app, "img/cat.jpg", **extras)
    cdn = static_url(cdn_app, "img/cat.jpg", **extras)
    assert cdn.partition("?")[2] == local.partition("?")[2]


def test_scheme_without_external_and_wrong_method_fail_like_flask(cdn_app: Flask) -> None:
    with pytest.raises(ValueError, match="_external"):
        static_url(cdn_app, "img/cat.jpg", _scheme="http", _external=False)
    with pytest.raises(BuildError):
        static_url(cdn_app, "img/cat.jpg", _method="POST")


# --- blueprints ------------------------------------------------------------------------


def test_blueprint_static_inside_app_static_is_on_the_cdn(
    static_tree: Path, manifest_path: Path, manifest: Manifest
) -> None:
    shop = Blueprint("shop", __name__, static_folder=str(static_tree / "img"),
                     url_prefix="/shop")
    shop.add_url_rule("/", "index", lambda: url_for(".static", filename="cat.jpg"))
    app = Flask(__name__, static_folder=str(static_tree))
    app.register_blueprint(shop)
    app.config.update(CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))
    CDN(app)
    with app.test_request_context("/"):
        assert url_for("shop.static", filename="cat.jpg") == key_url(manifest, "img/cat.jpg")
        assert url_for("shop.static", filename="icons/arrow.svg") == (
            key_url(manifest, "img/icons/arrow.svg"))
    assert app.test_client().get("/shop/").text == key_url(manifest, "img/cat.jpg")


def test_blueprint_static_outside_app_static_not_deployed_is_local_with_a_warning(
    static_tree: Path, manifest_path: Path, manifest: Manifest, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A folder deploy does not hold the blueprint's files: local URL, one WARNING naming the
    file (it used to be silent, issue 20), and strict mode raises."""
    own = write_tree(tmp_path / "admin-static", {"admin.css": b"body{}"})

    def make(**config: Any) -> Flask:
        admin = Blueprint("admin", __name__, static_folder=str(own), static_url_path="/static",
                          url_prefix="/admin")
        app = Flask(__name__, static_folder=str(static_tree))
        app.register_blueprint(admin)
        app.config.update(CDN_URL=BASE, CDN_MANIFEST=str(manifest_path), **config)
        CDN(app)
        return app

    app = make()
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with app.test_request_context("/"):
        assert url_for("admin.static", filename="admin.css") == "/admin/static/admin.css"
    with app.test_client().get("/admin/static/admin.css") as response:
        assert response.data == b"body{}"
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "'admin/static/admin.css'" in warned[0]
    strict = make(CDN_STRICT=True)
    with strict.test_request_context("/"), pytest.raises(MissingAssetError):
        url_for("admin.static", filename="admin.css")


def test_blueprint_static_outside_app_static_deployed_is_on_the_cdn(
    static_tree: Path, tmp_path: Path,
) -> None:
    """Deployed with the app (its URL path as the manifest prefix), url_for('bp.static')
    returns the CDN URL, with url_prefix applied as Flask registered the rule."""
    own = write_tree(tmp_path / "gallery-static", {"g.css": b"body{}"})
    gallery = Blueprint("gallery", __name__, static_folder=str(own),
                        static_url_path="/gallery-static", url_prefix="/gallery")
    app = Flask(__name__, static_folder=str(static_tree))
    app.register_blueprint(gallery)
    files = collect_files(static_tree) + scan_files(own, prefix="gallery/gallery-static/").files
    manifest = build_manifest(files, prefix="static", cache=HashCache(None))
    path = tmp_path / "m.json"
    manifest.save(path)
    app.config.update(CDN_URL=BASE, CDN_MANIFEST=str(path), CDN_STRICT=True)
    CDN(app)
    with app.test_request_context("/"):
        assert url_for("gallery.static", filename="g.css") == (
            key_url(manifest, "gallery/gallery-static/g.css"))
        assert url_for("static", filename="img/cat.jpg") == key_url(manifest, "img/cat.jpg")


def test_nested_blueprint_static(static_tree: Path, manifest_path: Path,
                                 manifest: Manifest) -> None:
    parent = Blueprint("parent", __name__, url_prefix="/p")
    child = Blueprint("child", __name__, static_folder=str(static_tree / "js"), url_prefix="/c")
    parent.register_blueprint(child)
    app = Flask(__name__, static_folder=str(static_tree))
    app.register_blueprint(parent)
    app.config.update(CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))
    CDN(app)
    with app.test_request_context("/"):
        assert url_for("parent.child.static", filename="app.min.js") == (
            key_url(manifest, "js/app.min.js"))


# --- the enabled rule --------------------------------------------------------------------


def test_disabled_in_debug(dev_app: Flask) -> None:
    assert not get_state(dev_app).enabled
    assert "url_for" not in vars(dev_app)
    assert static_url(dev_app, "img/cat.jpg") == "/static/img/cat.jpg"
    with dev_app.test_request_context("/"):
        assert render_template_string("{{ url_for('static', filename='a b.css') }}") == (
            "/static/a%20b.css")


def test_disabled_without_manifest(static_tree: Path, tmp_path: Path) -> None:
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(tmp_path / "none.json"))
    assert not get_state(app).enabled
    assert "no manifest" in get_state(app).settings.reason
    assert static_url(app, "img/cat.jpg") == "/static/img/cat.jpg"


def test_disabled_without_cdn_url(static_tree: Path, manifest_path: Path,
                                  manifest: Manifest) -> None:
    app = make_app(static_tree, CDN_MANIFEST=str(manifest_path))
    assert not get_state(app).enabled
    assert app.config["CDN_URL"] is None and app.config["CDN_STRICT"] is False


def test_default_manifest_path_is_relative_to_cwd(
    static_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    deploy_manifest(static_tree, tmp_path / "build" / "cdn-manifest.json")
    app = make_app(static_tree, CDN_URL=BASE)
    assert app.config["CDN_MANIFEST"] == "build/cdn-manifest.json"
    assert get_state(app).settings.manifest_path == tmp_path / "build" / "cdn-manifest.json"
    assert get_state(app).enabled


@pytest.mark.parametrize("flag", [True, "true", "1"])
def test_cdn_enabled_forces_on_in_debug(static_tree: Path, manifest_path: Path,
                                        manifest: Manifest, flag: Any) -> None:
    app = make_app(static_tree, debug=True, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path),
                   CDN_ENABLED=flag)
    assert static_url(app, "img/cat.jpg") == key_url(manifest, "img/cat.jpg")


@pytest.mark.parametrize("flag", [False, "off"])
def test_cdn_enabled_forces_off(static_tree: Path, manifest_path: Path, manifest: Manifest,
                                flag: Any) -> None:
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path), CDN_ENABLED=flag)
    assert static_url(app, "img/cat.jpg") == "/static/img/cat.jpg"


def test_forced_on_without_url_or_manifest_is_a_config_error(
    static_tree: Path, manifest_path: Path, manifest: Manifest, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="CDN_URL is not set"):
        make_app(static_tree, CDN_MANIFEST=str(manifest_path), CDN_ENABLED=True)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(tmp_path / "x.json"),
                 CDN_ENABLED=True)
    with pytest.raises(ConfigError, match="CDN_ENABLED"):
        make_app(static_tree, CDN_URL=BASE, CDN_ENABLED="maybe")
    with pytest.raises(ConfigError, match="CDN_URL"):
        make_app(static_tree, CDN_URL="cdn.example.com")


def test_corrupt_manifest_is_an_error_at_init_app(static_tree: Path, tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(bad))


def test_corrupt_manifest_in_development_only_warns(
    static_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text('{"version": 99}')
    caplog.set_level(logging.WARNING, logger=LOGGER)
    app = make_app(static_tree, debug=True, CDN_URL=BASE, CDN_MANIFEST=str(bad))
    assert get_state(app).manifest is None
    assert "version 1" in caplog.text


def test_one_extension_many_apps_and_no_double_registration(
    static_tree: Path, manifest_path: Path, manifest: Manifest
) -> None:
    cdn = CDN()
    on = Flask("on", static_folder=str(static_tree))
    on.config.update(CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))
    off = Flask("off", static_folder=str(static_tree))
    cdn.init_app(on)
    cdn.init_app(off)
    assert static_url(on, "img/cat.jpg") == key_url(manifest, "img/cat.jpg")
    assert static_url(off, "img/cat.jpg") == "/static/img/cat.jpg"
    assert not hasattr(cdn, "app")
    with pytest.raises(RuntimeError, match="already registered"):
        cdn.init_app(on)


# --- fallback and strict -----------------------------------------------------------------


def test_missing_asset_falls_back_with_one_warning_per_asset(
    cdn_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert static_url(cdn_app, "img/new dog.png") == "/static/img/new%20dog.png"
    assert static_url(cdn_app, "img/new dog.png", v="1") == "/static/img/new%20dog.png?v=1"
    with cdn_app.test_request_context("/"):
        render_template_string("{{ url_for('static', filename='img/new dog.png') }}"
                               "{{ url_for('static', filename='css/late.css') }}")
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'img/new dog.png'" in warnings[0].getMessage()
    assert "'css/late.css'" in warnings[1].getMessage()


def test_strict_raises_missing_asset_error(static_tree: Path, manifest_path: Path,
                                           manifest: Manifest) -> None:
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path), CDN_STRICT=True)
    assert static_url(app, "img/cat.jpg") == key_url(manifest, "img/cat.jpg")
    with pytest.raises(MissingAssetError) as info:
        static_url(app, "img/new.png")
    assert info.value.filename == "img/new.png"
    with app.test_request_context("/"), pytest.raises(MissingAssetError):
        render_template_string("{{ url_for('static', filename='gone.js') }}")


# --- reload --------------------------------------------------------------------------------


def reload_app(static_tree: Path, manifest_path: Path, *, reload: bool) -> Flask:
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path), CDN_RELOAD=reload)
    app.add_url_rule("/url", "url", lambda: url_for("static", filename="js/app.min.js"))
    return app


@pytest.mark.parametrize("reload", [True, False])
def test_reload_when_manifest_changes(static_tree: Path, manifest_path: Path,
                                      manifest: Manifest, reload: bool) -> None:
    app = reload_app(static_tree, manifest_path, reload=reload)
    client = app.test_client()
    before = client.get("/url").text
    assert before == key_url(manifest, "js/app.min.js")
    (static_tree / "js" / "app.min.js").write_bytes(b"console.log('v2');\n")
    changed = deploy_manifest(static_tree, manifest_path)
    after = client.get("/url").text
    if reload:
        assert after == key_url(changed, "js/app.min.js") != before
    else:
        assert after == before


def test_reload_keeps_old_manifest_when_new_one_is_corrupt(
    static_tree: Path, manifest_path: Path, manifest: Manifest, tmp_path: Path
) -> None:
    app = reload_app(static_tree, manifest_path, reload=True)
    client = app.test_client()
    broken = tmp_path / "broken.json"
    broken.write_text("[]")
    broken.replace(manifest_path)
    assert client.get("/url").text == key_url(manifest, "js/app.min.js")


# --- development static view ----------------------------------------------------------------


def test_dev_missing_local_file_redirects_to_cdn(dev_app: Flask, static_tree: Path,
                                                 manifest: Manifest) -> None:
    (static_tree / "img" / "odd" / "a+b #1 100%.gif").unlink()
    response = dev_app.test_client().get("/static/img/odd/a%2Bb%20%231%20100%25.gif")
    assert response.status_code == 302
    assert response.headers["Location"] == key_url(manifest, "img/odd/a+b #1 100%.gif")


def test_dev_missing_everywhere_gets_placeholder_with_404(dev_app: Flask) -> None:
    client = dev_app.test_client()
    response = client.get("/static/img/nothing.png")
    assert response.status_code == 404
    assert response.content_type == "image/svg+xml"
    assert response.data == BUILTIN_PLACEHOLDER_SVG
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.head("/static/img/nothing.webp").status_code == 404


def test_dev_missing_non_image_is_a_plain_404(dev_app: Flask) -> None:
    response = dev_app.test_client().get("/static/js/nothing.js")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")


def test_dev_traversal_is_never_served(dev_app: Flask, tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(b"secret")
    for path in ("/static/../secret.png", "/static/%2e%2e/secret.png", "/static/..%2fsecret.png"):
        response = dev_app.test_client().get(path)
        assert response.status_code == 404
        assert b"secret" not in response.data


def test_custom_placeholder(static_tree: Path, tmp_path: Path) -> None:
    png = tmp_path / "missing.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n placeholder")
    app = make_app(static_tree, debug=True, CDN_PLACEHOLDER=str(png))
    response = app.test_client().get("/static/img/none.jpg")
    assert (response.status_code, response.content_type) == (404, "image/png")
    assert response.data == png.read_bytes()
    with pytest.raises(ConfigError, match="CDN_PLACEHOLDER"):
        make_app(static_tree, CDN_PLACEHOLDER=str(tmp_path / "nope.png"))


def test_dev_existing_file_keeps_flask_semantics(dev_app: Flask, static_tree: Path) -> None:
    client = dev_app.test_client()
    data = (static_tree / "img" / "cat.jpg").read_bytes()
    with client.get("/static/img/cat.jpg") as response:
        assert (response.status_code, response.data) == (200, data)
        assert response.content_type == "image/jpeg"
        etag = response.headers["ETag"]
    with client.get("/static/img/cat.jpg", headers={"If-None-Match": etag}) as response:
        assert response.status_code == 304
    with client.get("/static/img/cat.jpg", headers={"Range": "bytes=0-3"}) as partial:
        assert (partial.status_code, partial.data) == (206, data[:4])
        assert partial.headers["Content-Range"] == f"bytes 0-3/{len(data)}"


def test_enabled_app_still_serves_local_static(cdn_app: Flask, static_tree: Path) -> None:
    """Fallback URLs point at Flask's static route, which must keep working."""
    with cdn_app.test_client().get("/static/LICENSE") as response:
        assert (response.status_code, response.data) == (200, b"MIT\n")


# --- flask cdn ... ------------------------------------------------------------------------


def test_cli_manifest_status_and_lookups(cdn_app: Flask, manifest_path: Path,
                                         manifest: Manifest) -> None:
    runner = cdn_app.test_cli_runner()
    result = runner.invoke(args=["cdn", "manifest", "img/cat.jpg"])
    assert result.exit_code == 0, result.output
    assert "CDN: enabled" in result.output
    assert f"Manifest: {manifest_path} ({len(manifest)} files" in result.output
    assert f"img/cat.jpg -> {key_url(manifest, 'img/cat.jpg')}" in result.output

    result = runner.invoke(args=["cdn", "manifest", "--json", "--all", "nope.css"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["enabled"] is True and report["files"] == len(manifest)
    assert report["lookups"]["nope.css"] is None
    assert report["lookups"]["img/photos/caf\u00e9.png"] == key_url(manifest,
                                                                     "img/photos/caf\u00e9.png")


def test_cli_manifest_when_disabled_and_missing(static_tree: Path, tmp_path: Path) -> None:
    app = make_app(static_tree, CDN_MANIFEST=str(tmp_path / "none.json"))
    result = app.test_cli_runner().invoke(args=["cdn", "manifest"])
    assert result.exit_code == 0
    assert "CDN: disabled (CDN_URL is not set)" in result.output
    assert "(missing)" in result.output


def test_cli_deploy_uses_app_settings(static_tree: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "manifest-from-flask.json"
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(target))
    result = app.test_cli_runner().invoke(
        args=["cdn", "deploy", "--target-dir", str(tmp_path / "bucket"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == 9 and summary["manifest"] == str(target)
    assert set(Manifest.load(target)) == {f.logical_path for f in collect_files(static_tree)}


def test_cli_deploy_rewrites_css_under_the_apps_static_url_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app serving its static folder at /assets: ``url(/assets/...)`` is one of its
    files, so ``flask cdn deploy`` fingerprints it; ``/static/...`` is not."""
    monkeypatch.chdir(tmp_path)
    static = write_tree(tmp_path / "assets", {
        "css/site.css": b"a{background:url(/assets/img/x.png)}b{background:url(/static/y.png)}",
        "img/x.png": b"\x89PNG x",
    })
    app = Flask(__name__, static_folder=str(static), static_url_path="/assets")
    app.config["CDN_MANIFEST"] = str(tmp_path / "m.json")
    CDN(app)
    result = app.test_cli_runner().invoke(
        args=["cdn", "deploy", "--target-dir", str(tmp_path / "out"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(tmp_path / "m.json")
    css = (tmp_path / "out" / manifest.files["css/site.css"].key).read_text()
    image_name = manifest.files["img/x.png"].key.rpartition("/")[2]
    assert f"url(../img/{image_name})" in css and "url(/static/y.png)" in css


def test_cli_deploy_command_line_beats_app_config(static_tree: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    other = write_tree(tmp_path / "other", {"only.txt": b"x"})
    app = make_app(static_tree, CDN_MANIFEST=str(tmp_path / "m.json"))
    result = app.test_cli_runner().invoke(args=[
        "cdn", "deploy", "--static-dir", str(other), "--target-dir", str(tmp_path / "out"),
        "--manifest", str(tmp_path / "cli.json"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert list(Manifest.load(tmp_path / "cli.json")) == ["only.txt"]
    assert not (tmp_path / "m.json").exists()


def test_cli_deploy_error_is_one_line_with_exit_code(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path / "no-such-static")
    result = app.test_cli_runner().invoke(args=["cdn", "deploy", "-q"])
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_cli_deploy_help_is_the_shared_command(cdn_app: Flask) -> None:
    result = cdn_app.test_cli_runner().invoke(args=["cdn", "deploy", "--help"])
    assert result.exit_code == 0
    assert "--static-dir" in result.output and "--dry-run" in result.output


def test_flask_cdn_deploy_json_failure_is_one_json_object(tmp_path: Path) -> None:
    import json as json_module

    app = Flask(__name__, static_folder=str(tmp_path / "missing-static"))
    CDN(app)
    result = app.test_cli_runner().invoke(args=["cdn", "deploy", "--json", "--no-assets",
                                                "--target-dir", str(tmp_path / "cdn")])
    assert result.exit_code == 2
    document = json_module.loads(result.stdout)
    assert document["exit_code"] == 2 and "missing-static" in document["error"]


# --- start-up checks a production app makes ----------------------------------------------


def test_cdn_url_without_manifest_logs_one_error_in_production(
    static_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "build" / "none.json"
    caplog.set_level(logging.WARNING, logger=LOGGER)
    app = make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(missing))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(missing) in errors[0].getMessage()
    assert static_url(app, "img/cat.jpg") == "/static/img/cat.jpg"
    caplog.clear()  # quiet where nothing is wrong: debug, forced off, no CDN_URL
    make_app(static_tree, debug=True, CDN_URL=BASE, CDN_MANIFEST=str(missing))
    make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(missing), CDN_ENABLED=False)
    make_app(static_tree, CDN_MANIFEST=str(missing))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with pytest.raises(ManifestError, match=r"none.json"):  # or refuse to start
        make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(missing), CDN_ENABLED=True)


@pytest.mark.parametrize(
    "key",
    ["../outside/x.css", "static/../../x.css", "/etc/x.css", "static//x.css", "static/./x.css",
     "static\\..\\x.css", "static/\r/x.css", "static/\t../x.css", ""],
)
def test_a_manifest_key_that_could_leave_the_cdn_path_is_refused(
    static_tree: Path, manifest_path: Path, manifest: Manifest, key: str
) -> None:
    document = json.loads(manifest_path.read_text())
    document["files"]["img/cat.jpg"]["key"] = key
    manifest_path.write_text(json.dumps(document))
    with pytest.raises(ManifestError, match="unsafe key"):
        Manifest.load(manifest_path)
    with pytest.raises(ManifestError, match=r"img/cat.jpg"):
        make_app(static_tree, CDN_URL=BASE, CDN_MANIFEST=str(manifest_path))


def test_awkward_but_safe_keys_still_load(manifest_path: Path, manifest: Manifest) -> None:
    document = json.loads(manifest_path.read_text())
    document["files"]["img/cat.jpg"]["key"] = "static/..a/b..c/%2e%2e/caf\u00e9 #1?.jpg"
    manifest_path.write_text(json.dumps(document))
    assert Manifest.load(manifest_path).files["img/cat.jpg"].key.endswith("?.jpg")
