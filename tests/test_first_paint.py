"""First paint through a Flask test client: priority pictures and their preload, the CSS/JS
preloads and the CDN preconnect in the ``Link`` header, the DPR cap and ``sizes="auto"``."""

from __future__ import annotations

import logging
import re
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, render_template_string, request

from pipeline import CDN
from pipeline.build.bundles import load_bundles
from pipeline.dprcap import buckets, capped_sizes, scaled_srcset
from pipeline.errors import ConfigError
from pipeline.flaskext.bundles import init_bundles
from pipeline.flaskext.pictures import srcset
from pipeline.hints import Hint, link_header
from pipeline.manifest import Entry, Manifest
from tests.installed import InstalledTool
from tests.test_pictures import CDN_BASE, dev_app, parse, prod_app

ROOT = Path(__file__).resolve().parent.parent
SIZES = "(max-width: 480px) calc(100vw - 3rem), 16rem"
CSS_SRI = "sha384-" + "A" * 64
JS_SRI = "sha384-" + "B" * 64


def page_app(tmp_path: Path, template: str, **config: Any) -> Flask:
    """The test manifest's app with ``/`` rendering ``template`` (and ``/data`` as JSON)."""
    app = prod_app(tmp_path, **config)

    @app.route("/")
    def index() -> str:
        return render_template_string(template)

    @app.route("/data")
    def data() -> Any:
        return jsonify(html=render_template_string(template))

    return app


def link_params(header: str) -> list[dict[str, str]]:
    """The ``Link`` header's hints as dicts: ``href`` and each parameter, quotes removed."""
    hints = []
    for value in re.findall(r'<[^>]*>(?:\s*;\s*[a-z]+=(?:"(?:[^"\\]|\\.)*"|[^;,]*))*', header):
        href, _, rest = value.partition(">")
        params = dict(re.findall(r';\s*([a-z]+)=("(?:[^"\\]|\\.)*"|[^;,]*)', rest))
        hints.append({"href": href.lstrip("<"),
                      **{k: v.strip('"').replace('\\"', '"') for k, v in params.items()}})
    return hints


def urls_in(html: str) -> set[str]:
    """Every URL the page's tags name (``src``, ``href``, each ``srcset`` candidate)."""
    found: set[str] = set()
    for _, attrs in parse(html).tags:
        found.update(v for k, v in attrs.items() if k in ("src", "href") and v)
        for candidate in (attrs.get("srcset") or "").split(", "):
            if candidate:
                found.add(candidate.rsplit(" ", 1)[0])
    return found


def test_priority_picture_is_eager_and_preloaded_in_the_link_header(tmp_path: Path) -> None:
    app = page_app(tmp_path, f"{{{{ picture('img/p.jpg', 'hero', sizes='{SIZES}', "
                             "priority=True) }}{{ picture('img/p.jpg', 'other') }}")
    response = app.test_client().get("/")
    html = response.get_data(as_text=True)
    hero = parse(html).tags[:4]
    avif, img = hero[1][1], hero[3][1]
    assert (img["loading"], img["fetchpriority"]) == ("eager", "high")
    preconnect, preload = link_params(response.headers["Link"])
    assert preconnect == {"href": CDN_BASE, "rel": "preconnect"}  # images: no CORS
    # The preload is the first <source>: the AVIF set a browser that decodes AVIF picks.
    assert (preload["rel"], preload["as"], preload["type"]) == ("preload", "image", "image/avif")
    assert preload["imagesrcset"] == avif["srcset"] and preload["imagesizes"] == avif["sizes"]
    assert preload["href"] in avif["srcset"]
    assert {preload["href"], *(c.rsplit(" ", 1)[0] for c in preload["imagesrcset"].split(", "))
            } <= urls_in(html)
    assert len(response.headers.getlist("Link")) == 1


def test_a_page_without_priority_images_gets_no_link_header(tmp_path: Path) -> None:
    response = page_app(tmp_path, "{{ picture('img/p.jpg', 'x') }}").test_client().get("/")
    assert response.status_code == 200 and "Link" not in response.headers


def test_no_hints_on_json_or_304_responses(tmp_path: Path) -> None:
    app = page_app(tmp_path, "{{ picture('img/p.jpg', 'x', priority=True) }}")

    @app.route("/cached")
    def cached() -> Any:
        response = app.make_response(render_template_string(
            "{{ picture('img/p.jpg', 'x', priority=True) }}"))
        response.set_etag("v1")
        return response.make_conditional(request)

    client = app.test_client()
    assert "Link" not in client.get("/data").headers  # rendered, but not an HTML response
    assert "Link" in client.get("/cached").headers
    not_modified = client.get("/cached", headers={"If-None-Match": '"v1"'})
    assert not_modified.status_code == 304 and "Link" not in not_modified.headers


def test_the_link_header_is_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    many = "".join(f"{{{{ picture('img/p.jpg', 'x{i}', sizes='{i + 10}vw', priority=True) }}}}"
                   for i in range(40))
    app = page_app(tmp_path, many, CDN_LINK_HEADER_MAX=1500)
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        headers = [client.get("/").headers["Link"] for _ in range(2)]
    assert all(len(value) <= 1500 for value in headers)
    assert 1 < len(link_params(headers[0])) < 41  # the preconnect and the hints that fit
    assert caplog.text.count("left out of the Link header") == 1  # once, not per request
    off = page_app(tmp_path / "off", many, CDN_LINK_HEADER_MAX=0)
    assert "Link" not in off.test_client().get("/").headers


def test_link_values_are_quoted_and_unsafe_ones_dropped() -> None:
    hint = Hint(href="https://c.example/a.avif", as_="image", imagesizes='x"y\\z')
    assert hint.header_value() == ('<https://c.example/a.avif>; rel=preload; as=image; '
                                   'imagesizes="x\\"y\\\\z"')
    bad = [Hint(href="https://c.example/a>b"), Hint(href="https://c.example/a", type="x\r\ny"),
           Hint(href="https://c.example/é")]
    assert link_header(bad, max_bytes=10_000) == ("", 3)


def bundle_app(tmp_path: Path) -> Flask:
    """The demo's bundles, on the CDN with the integrity values of a hand-made manifest."""
    manifest = Manifest({
        "gen/site.css": Entry("static/gen/site.aaaaaaaaaaaa.css", "a" * 64, 10, "text/css",
                              integrity=CSS_SRI),
        "gen/app.js": Entry("static/gen/app.bbbbbbbbbbbb.js", "b" * 64, 10,
                            "text/javascript", integrity=JS_SRI),
    })
    manifest.save(tmp_path / "m.json")
    app = Flask(__name__, static_folder=str(ROOT / "static"))
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=str(tmp_path / "m.json"),
                      CDN_ENABLED=True, ASSETS_DEBUG=False)
    CDN(app)
    init_bundles(app, load_bundles(ROOT / "site" / "assets.py"))

    @app.route("/")
    def index() -> str:
        return render_template_string('{{ asset_tags("css_all") }}{{ asset_tags("js_all") }}')

    return app


def test_asset_preloads_carry_the_tags_integrity_and_crossorigin(tmp_path: Path) -> None:
    response = bundle_app(tmp_path).test_client().get("/")
    html = response.get_data(as_text=True)
    preconnect, css, js = link_params(response.headers["Link"])
    assert preconnect == {"href": CDN_BASE, "rel": "preconnect", "crossorigin": "anonymous"}
    tags = {attrs.get("href") or attrs.get("src"): attrs for _, attrs in parse(html).tags}
    for hint, kind, sri in ((css, "style", CSS_SRI), (js, "script", JS_SRI)):
        assert (hint["as"], hint["integrity"], hint["crossorigin"]) == (kind, sri, "anonymous")
        tag = tags[hint["href"]]  # the URL the page uses, with the same SRI and CORS mode
        assert (tag["integrity"], tag["crossorigin"]) == (hint["integrity"], "anonymous")


def test_dpr_cap_scales_sizes_above_the_cap_only(tmp_path: Path) -> None:
    app = prod_app(tmp_path)
    with app.test_request_context():
        html = str(render_template_string(
            f"{{{{ picture('img/p.jpg', 'x', sizes='{SIZES}', loading='eager') }}}}"))
        custom = render_template_string(f"{{{{ image_sizes('{SIZES}') }}}}")
    sizes = parse(html).tags[-1][1]["sizes"]
    assert sizes == custom == (
        "(min-resolution: 3.01dppx) and (max-width: 480px) calc(calc(100vw - 3rem) * 0.5), "
        "(min-resolution: 3.01dppx) calc(16rem * 0.5), "
        "(min-resolution: 2.01dppx) and (max-width: 480px) calc(calc(100vw - 3rem) * 0.6666), "
        "(min-resolution: 2.01dppx) calc(16rem * 0.6666), " + SIZES)
    uncapped = prod_app(tmp_path / "u", CDN_MAX_DPR=None)
    with uncapped.test_request_context():
        html = str(render_template_string(
            f"{{{{ picture('img/p.jpg', 'x', sizes='{SIZES}', loading='eager') }}}}"))
    assert parse(html).tags[-1][1]["sizes"] == SIZES


@pytest.mark.parametrize("cap", [1, 1.5, 2, 3])
def test_every_screen_above_the_cap_asks_for_at_most_cap_times_the_slot(cap: float) -> None:
    """The arithmetic the browser does: width wanted = DPR x the slot ``sizes`` gives."""
    caps = buckets(cap)
    for dpr in (1, 1.25, 1.5, 2, 2.25, 2.625, 2.75, 3, 3.5, 4):
        bucket = next((b for b in caps if dpr >= b.above + 0.01), None)
        factor = bucket.factor if bucket else 1
        assert dpr * factor <= max(cap, 1) + 1e-9, (cap, dpr)
        if dpr <= cap:
            assert factor == 1  # screens up to the cap are untouched
        if dpr in (2, 3, 4) and dpr > cap:
            assert dpr * factor == pytest.approx(cap, rel=1e-3)  # whole ratios: exactly the cap
    assert buckets(None) == buckets(4) == ()
    assert capped_sizes("auto", buckets(2)) == "auto"
    assert capped_sizes("(max-width: 10px)", buckets(2)) == "(max-width: 10px)"  # unreadable


def test_lazy_pictures_get_sizes_auto_and_capped_sources(tmp_path: Path) -> None:
    app = prod_app(tmp_path)
    with app.test_request_context():
        doc = parse(str(render_template_string("{{ picture('img/p.jpg', 'x') }}")))
        explicit = parse(str(render_template_string(
            f"{{{{ picture('img/p.jpg', 'x', sizes='auto, {SIZES}') }}}}")))
    sources = [attrs for tag, attrs in doc.tags if tag == "source"]
    img = doc.tags[-1][1]
    # sizes not given: the laid-out width where "auto" is known, else 100vw (capped)
    assert img["loading"] == "lazy" and img["sizes"] == (
        "auto, (min-resolution: 3.01dppx) calc(100vw * 0.5), "
        "(min-resolution: 2.01dppx) calc(100vw * 0.6666), 100vw")
    assert all(s["sizes"] == "auto, 100vw" for s in sources)
    avif = [s for s in sources if s["type"] == "image/avif"]
    assert [s.get("media") for s in avif] == ["(min-resolution: 3.01dppx)",
                                              "(min-resolution: 2.01dppx)", None]
    # the same files, described as 2x and 1.5x wider: denser screens pick smaller ones
    real = [(url, int(width[:-1])) for url, width in
            (c.rsplit(" ", 1) for c in avif[2]["srcset"].split(", "))]
    assert avif[0]["srcset"] == scaled_srcset(real, buckets(2)[0])
    assert [c.rsplit(" ", 1)[1] for c in avif[0]["srcset"].split(", ")] == ["32w", "60w"]
    assert {a["sizes"] for t, a in explicit.tags if t == "source"} == {f"auto, {SIZES}"}
    plain = prod_app(tmp_path / "p", CDN_SIZES_AUTO=False, CDN_MAX_DPR=None)
    with plain.test_request_context():
        doc = parse(str(render_template_string(
            f"{{{{ picture('img/p.jpg', 'x', sizes='{SIZES}') }}}} "
            "{{ picture('img/p.jpg', 'x') }}")))
    assert [attrs["sizes"] for tag, attrs in doc.tags if tag in ("source", "img")] == \
        [SIZES] * 3 + ["100vw"] * 3


def test_an_explicit_sizes_on_a_lazy_picture_is_capped_in_sizes(tmp_path: Path) -> None:
    """The author's sizes is kept (no "auto"), and capped in it: no extra sources."""
    app = prod_app(tmp_path)
    with app.test_request_context():
        doc = parse(str(render_template_string(
            f"{{{{ picture('img/p.jpg', 'x', sizes='{SIZES}') }}}}")))
        capped = render_template_string(f"{{{{ image_sizes('{SIZES}') }}}}")
    tags = [(tag, attrs) for tag, attrs in doc.tags if tag in ("source", "img")]
    assert [tag for tag, _ in tags] == ["source", "source", "img"]
    assert all(attrs["sizes"] == capped and "media" not in attrs for _, attrs in tags)


@pytest.mark.parametrize("key,value", [("CDN_MAX_DPR", 0.5), ("CDN_MAX_DPR", "2"),
                                       ("CDN_SIZES_AUTO", "yes"), ("CDN_LINK_HEADER_MAX", -1)])
def test_bad_first_paint_settings_are_config_errors(tmp_path: Path, key: str,
                                                    value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        prod_app(tmp_path, **{key: value})


def test_srcset_priority_and_preload_image_markup_match_the_header(tmp_path: Path) -> None:
    app = page_app(tmp_path, "{{ preload_image('img/p.jpg', sizes='50vw') }}"
                             "<img srcset=\"{{ srcset('img/p.jpg', 'avif', priority=True, "
                             "sizes='50vw') }}\" sizes=\"{{ image_sizes('50vw') }}\">")
    response = app.test_client().get("/")
    link, img = (attrs for _, attrs in parse(response.get_data(as_text=True)).tags)
    _, hint = link_params(response.headers["Link"])
    assert img["srcset"] == hint["imagesrcset"] == link["imagesrcset"]
    assert img["sizes"] == hint["imagesizes"] == link["imagesizes"]
    assert (link["rel"], link["as"], link["type"], link["href"]) == \
        ("preload", "image", "image/avif", hint["href"])
    with app.test_request_context(), pytest.raises(TypeError, match="sizes"):
        srcset("img/p.jpg", priority=True)


def test_development_priority_preloads_local_urls_without_preconnect(tmp_path: Path) -> None:
    app = dev_app(tmp_path)

    @app.route("/")
    def index() -> str:
        return render_template_string("{{ picture('img/a b.jpg', 'x', priority=True) }}")

    response = app.test_client().get("/")
    (hint,) = link_params(response.headers["Link"])
    assert hint["href"].startswith("/_variants/_v/") and hint["type"] == "image/avif"
    assert hint["href"] in urls_in(response.get_data(as_text=True))



THEIR_APP = """\
from flask import Flask, render_template_string
from pipeline import CDN

app = Flask(__name__)
app.config["CDN_URL"] = "https://cdn.example.com"
CDN(app)


@app.get("/")
def index() -> str:
    return render_template_string(
        "{{ picture('img/photo.jpg', 'hero', sizes='100vw', priority=True) }}")
"""


def test_installed_deploy_then_the_apps_page_preloads_its_priority_image(
        installed: InstalledTool, project: Path) -> None:
    """From a user's project: deploy with variants, run the app with ``flask run``, and the
    page's response carries the preconnect and the preload of the AVIF set it shows."""
    from PIL import Image

    Image.new("RGB", (800, 600), "teal").save(project / "static" / "img" / "photo.jpg")
    (project / "app.py").write_text(THEIR_APP)
    (project / "pyproject.toml").write_text(
        "[tool.flask-cdn-pipeline]\nvariants = true\nvariant-widths = [200, 400]\n"
        'variant-include = ["img/*.jpg"]\n')
    deployed = installed.run("cdn-deploy", "--json", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = installed.popen("python", "-m", "flask", "--app", "app.py", "run", "--port",
                             str(port), cwd=project)
    try:
        response = _get_when_up(f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=20)
    assert "Traceback" not in errors, errors
    link, html = response
    preconnect, preload = link_params(link)
    assert preconnect == {"href": "https://cdn.example.com", "rel": "preconnect"}
    assert (preload["as"], preload["type"]) == ("image", "image/avif")
    assert [c.rsplit(" ", 1)[1] for c in preload["imagesrcset"].split(", ")] == ["200w", "400w"]
    assert f'srcset="{preload["imagesrcset"]}"' in html


def _get_when_up(url: str) -> tuple[str, str]:
    """The ``Link`` header and body of ``url``, retried while the server starts (<= 30 s)."""
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.headers.get("Link", ""), response.read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")
