"""picture()/srcset() markup, parsed with an HTML parser, and the development variant route."""

from __future__ import annotations

import io
import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from PIL import Image

from pipeline import CDN
from pipeline.build.variants import VariantSettings, variant_key
from pipeline.errors import ConfigError, MissingAssetError
from pipeline.flaskext.pictures import picture, srcset
from pipeline.manifest import Entry, Manifest, Variant
from tests.installed import InstalledTool

SETTINGS = {"widths": [16, 32, 64], "formats": ["avif", "webp"]}
SMALL = VariantSettings(widths=(16, 32, 64))
CDN_BASE = "https://cdn.example.com"


class Tags(HTMLParser):
    """(tag, attributes) in document order, attributes unescaped by the parser."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ends: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def photo(path: Path, size: tuple[int, int] = (100, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((200, 40, 40), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image.save(path, quality=90)
    return path


def dev_app(tmp_path: Path, **config: object) -> Flask:
    static = tmp_path / "static"
    photo(static / "img" / "a b.jpg")
    (static / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    app = Flask(__name__, static_folder=str(static))
    app.config.update({"CDN_VARIANTS": SETTINGS,
                       "CDN_VARIANT_CACHE": str(tmp_path / "build" / "v"), "DEBUG": True,
                       **config})
    CDN(app)
    return app


def prod_app(tmp_path: Path, **config: object) -> Flask:
    def v(width: int, fmt: str, ctype: str, size: int) -> Variant:
        return Variant(f"static/{variant_key('cd' * 32, width, fmt, SMALL)}", width,
                       width * 2 // 3, ctype, size)

    variants = (v(16, "avif", "image/avif", 100), v(16, "webp", "image/webp", 300),
                v(16, "jpeg", "image/jpeg", 200), v(30, "avif", "image/avif", 150),
                v(30, "webp", "image/webp", 180), v(30, "jpeg", "image/jpeg", 400))
    manifest = Manifest({
        "img/p.jpg": Entry("static/img/p.cdcdcdcdcdcd.jpg", "cd" * 32, 5000, "image/jpeg",
                           width=30, height=20, variants=variants),
        "img/tiny.png": Entry("static/img/tiny.efefefefefef.png", "ef" * 32, 50, "image/png",
                              width=8, height=4),
    })
    path = tmp_path / "m.json"
    manifest.save(path)
    app = Flask(__name__, static_folder=str(tmp_path / "static"))
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=str(path), CDN_ENABLED=True, **config)
    CDN(app)
    return app


def test_production_picture_structure_sizes_and_ratio(tmp_path: Path) -> None:
    # The plain structure; the DPR cap and sizes="auto" are tested in test_first_paint.py.
    app = prod_app(tmp_path, CDN_MAX_DPR=None, CDN_SIZES_AUTO=False)
    with app.test_request_context():
        html = str(
            picture(
                "img/p.jpg",
                alt='a "cat" & <dog>',
                sizes="(min-width: 40em) 50vw, 100vw",
                class_="photo",
                fetchpriority="high",
            )
        )
    doc = parse(html)
    assert [t for t, _ in doc.tags] == ["picture", "source", "source", "img"]
    assert doc.ends == ["picture"]
    (_, avif), (_, webp), (_, img) = doc.tags[1:]
    assert avif["type"] == "image/avif" and webp["type"] == "image/webp"
    for attrs in (avif, webp, img):
        assert attrs["sizes"] == "(min-width: 40em) 50vw, 100vw"  # w descriptors need sizes
        assert attrs["srcset"] and all(part.startswith(CDN_BASE + "/static/_v/")
                                       for part in attrs["srcset"].split(", "))
    assert [c.rsplit(" ", 1)[1] for c in avif["srcset"].split(", ")] == ["16w", "30w"]
    # a WebP no smaller than the JPEG at 16 px is not offered; the one at 30 px is
    assert [c.rsplit(" ", 1)[1] for c in webp["srcset"].split(", ")] == ["30w"]
    assert img["srcset"].endswith(".jpg 30w") and img["src"].endswith(".jpg")
    assert (img["width"], img["height"]) == ("30", "20")
    assert img["alt"] == 'a "cat" & <dog>'
    assert 'alt="a &#34;cat&#34; &amp; &lt;dog&gt;"' in html
    assert (img["loading"], img["decoding"], img["fetchpriority"], img["class"]) == \
        ("lazy", "async", "high", "photo")


def test_image_without_variants_gets_a_plain_img_with_dimensions(tmp_path: Path) -> None:
    app = prod_app(tmp_path)
    with app.test_request_context():
        doc = parse(str(picture("img/tiny.png", alt="")))
        assert srcset("img/tiny.png") == ""
    assert [t for t, _ in doc.tags] == ["img"]
    img = doc.tags[0][1]
    with app.test_request_context():  # a known size is not overridden; an unknown one is given
        assert 'width="8"' in picture("img/tiny.png", alt="", width=99)
        assert 'width="5" height="6"' in picture("img/gone.png", alt="", width=5, height=6)
    assert img["src"] == CDN_BASE + "/static/img/tiny.efefefefefef.png"
    assert (img["width"], img["height"], img["alt"]) == ("8", "4", "")
    assert "srcset" not in img and "sizes" not in img


def test_srcset_helper_and_jinja_global(tmp_path: Path) -> None:
    app = prod_app(tmp_path)
    with app.test_request_context():
        assert srcset("img/p.jpg", "avif") == srcset("img/p.jpg", type="image/avif")
        assert srcset("img/p.jpg", "avif").count("w, ") == 1
        assert srcset("img/p.jpg").endswith(".jpg 30w")
        html = render_template_string("{{ picture('img/p.jpg', 'x', sizes='50vw') }}|"
                                      "{{ srcset('img/p.jpg', 'webp') }}")
    assert html.startswith("<picture><source") and html.endswith(".webp 30w")


def test_missing_image_warns_or_raises_in_strict_mode(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    app = prod_app(tmp_path)
    with app.test_request_context(), caplog.at_level(logging.WARNING):
        doc = parse(str(picture("img/gone.jpg", alt="gone")))
    assert doc.tags[0][1]["src"] == "/static/img/gone.jpg"
    assert "img/gone.jpg" in caplog.text
    strict = prod_app(tmp_path / "s", CDN_STRICT=True)
    with strict.test_request_context(), pytest.raises(MissingAssetError):
        picture("img/gone.jpg", alt="gone")


def _dev_urls(app: Flask) -> tuple[Tags, list[str]]:
    with app.test_request_context():
        doc = parse(str(picture("img/a b.jpg", alt="a", sizes="50vw")))
    urls = [c.rsplit(" ", 1)[0] for _, attrs in doc.tags if attrs.get("srcset")
            for c in str(attrs["srcset"]).split(", ")]
    return doc, urls


def test_development_variants_render_on_demand_with_the_deploy_encoder(tmp_path: Path) -> None:
    app = dev_app(tmp_path)
    doc, urls = _dev_urls(app)
    img = doc.tags[-1][1]
    assert (img["width"], img["height"]) == ("100", "60")
    # one <source> per modern format (beside the DPR cap's <source media> of a lazy image)
    assert [t for t, a in doc.tags if "media" not in a] == ["picture", "source", "source", "img"]
    assert all(url.startswith("/_variants/_v/") for url in urls)
    client = app.test_client()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        fmt = url.rsplit(".", 1)[1]
        assert response.mimetype == {"avif": "image/avif", "webp": "image/webp",
                                     "jpg": "image/jpeg"}[fmt]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        image = Image.open(io.BytesIO(response.data))
        assert image.format == {"avif": "AVIF", "webp": "WEBP", "jpg": "JPEG"}[fmt]
        width = int(url.split(".")[-3].removesuffix("w"))
        assert image.size == (width, round(60 * width / 100))
        response.close()
    # cached on disk under the configured build folder, same keys as a deploy
    assert all((tmp_path / "build" / "v" / url.removeprefix("/_variants/")).is_file()
               for url in urls)


def test_development_route_refuses_unplanned_keys(tmp_path: Path) -> None:
    app = dev_app(tmp_path)
    _, urls = _dev_urls(app)
    client = app.test_client()
    good = urls[0].removeprefix("/_variants/")
    h2, name = good.split("/")[1:]
    other = VariantSettings(widths=(16, 32, 64), avif_quality=90)
    bad = [
        good.replace(".16w.", ".17w."),                        # width not configured
        good.replace(".16w.", ".128w."),                       # wider than the source
        f"_v/{h2}/{name.rsplit('.', 1)[0]}.gif",               # unknown format
        variant_key(("0" * 64), 16, "avif", SMALL),            # no such source
        variant_key(_hash_of(app), 16, "avif", other),         # other parameters
        "../../static/img/a b.jpg", "_v/../../etc/passwd", "_v/%2e%2e/x.avif",
    ]
    for key in bad:
        response = client.get(f"/_variants/{key}")
        assert response.status_code == 404, key
        response.close()
    assert not (tmp_path / "build" / "v").exists() or not any(
        p.is_file() for p in (tmp_path / "build" / "v").rglob("*"))


def _hash_of(app: Flask) -> str:
    import hashlib

    return hashlib.sha256(
        (Path(app.static_folder or "") / "img" / "a b.jpg").read_bytes()
    ).hexdigest()


def test_development_route_after_a_restart_finds_the_source(tmp_path: Path) -> None:
    _, urls = _dev_urls(dev_app(tmp_path))
    fresh = dev_app(tmp_path)  # no page rendered in this process yet
    response = fresh.test_client().get(urls[0])
    assert response.status_code == 200
    response.close()


def test_svg_in_development_is_a_plain_img(tmp_path: Path) -> None:
    app = dev_app(tmp_path)
    with app.test_request_context():
        doc = parse(str(picture("logo.svg", alt="logo")))
    assert doc.tags == [("img", {"src": "/static/logo.svg", "alt": "logo", "loading": "lazy",
                                 "decoding": "async"})]


# -- the development route: only in development, and bounded work per request -----------------


def test_the_variant_route_is_not_offered_outside_development(tmp_path: Path) -> None:
    """A production app with the CDN off (no manifest yet, say) used to register
    ``/_variants/``, which encodes on request for anyone; it now renders plain ``<img>``."""
    key = variant_key(("0" * 64), 16, "avif", SMALL)
    production = dev_app(tmp_path, DEBUG=False)
    assert production.test_client().get(f"/_variants/{key}").status_code == 404
    assert "cdn_variant" not in production.view_functions
    with production.test_request_context():
        doc = parse(str(picture("img/a b.jpg", alt="a")))
    assert doc.tags == [("img", {"src": "/static/img/a%20b.jpg", "width": "100",
                                 "height": "60", "alt": "a", "loading": "lazy",
                                 "decoding": "async"})]
    for config in ({"DEBUG": True}, {"DEBUG": False, "TESTING": True},
                   {"DEBUG": False, "CDN_VARIANT_ROUTE": True}):
        app = dev_app(tmp_path, **config)
        _, urls = _dev_urls(app)
        assert urls, config
        with app.test_client().get(urls[0]) as response:
            assert response.status_code == 200, config
    never = dev_app(tmp_path, CDN_VARIANT_ROUTE=False)
    assert "cdn_variant" not in never.view_functions and not _dev_urls(never)[1]
    with pytest.raises(ConfigError, match="CDN_VARIANT_ROUTE"):
        dev_app(tmp_path, CDN_VARIANT_ROUTE="yes")


def test_unknown_keys_hash_the_static_folder_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request for a well-formed key of no known source used to hash every candidate in
    the static folder again: a loop of such requests kept a core busy reading the folder."""
    import pipeline.flaskext.pictures as pictures_module

    for n in range(5):
        photo(tmp_path / "static" / "img" / f"p{n}.jpg", (40 + n, 30))
    hashed: list[Path] = []
    real = pictures_module.hash_file

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(pictures_module, "hash_file", counting)
    client = dev_app(tmp_path).test_client()  # a fresh process: no page rendered yet
    for n in range(20):
        key = variant_key(f"{n:02d}" * 32, 16, "avif", SMALL)
        assert client.get(f"/_variants/{key}").status_code == 404
    assert len(hashed) == 6  # the six candidates, once
    _, urls = _dev_urls(client.application)
    with client.get(urls[0]) as response:
        assert response.status_code == 200  # known sources are still found


def test_variants_off_in_the_table_or_config_give_plain_img(tmp_path: Path) -> None:
    """``variants = false`` in the pyproject table (no deploy publishes variants) or
    ``CDN_VARIANTS = False``: development renders what production will, a plain ``<img>``."""
    project = tmp_path / "project"
    photo(project / "static" / "img" / "a.jpg")
    (project / "pyproject.toml").write_text(
        "[tool.flask-cdn-pipeline]\nvariants = false\nvariant-widths = [16]\n")
    from_table = Flask("their_app", root_path=str(project),
                       static_folder=str(project / "static"))
    from_table.config.update(DEBUG=True)
    CDN(from_table)
    from_config = dev_app(tmp_path, CDN_VARIANTS=False)
    for app, name in ((from_table, "img/a.jpg"), (from_config, "img/a b.jpg")):
        with app.test_request_context():
            doc = parse(str(picture(name, alt="a")))
        assert [tag for tag, _ in doc.tags] == ["img"]
        assert (doc.tags[0][1]["width"], doc.tags[0][1]["height"]) == ("100", "60")
        assert "cdn_variant" not in app.view_functions


def test_installed_flask_offers_the_variant_route_only_with_debug(
        installed: InstalledTool, project: Path) -> None:
    """What a user sees from their own project: ``flask routes`` lists ``/_variants/`` under
    ``--debug`` only, and not at all when their table turns variants off."""
    (project / "app.py").write_text("from flask import Flask\nfrom pipeline import CDN\n"
                                    "app = Flask(__name__)\nCDN(app)\n")
    listed = {flags: installed.run("python", "-m", "flask", "--app", "app.py", *flags,
                                   "routes", cwd=project)
              for flags in ((), ("--debug",))}
    for result in listed.values():
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "/_variants/" not in listed[()].stdout
    assert "/_variants/<path:key>" in listed[("--debug",)].stdout
    (project / "pyproject.toml").write_text("[tool.flask-cdn-pipeline]\nvariants = false\n")
    off = installed.run("python", "-m", "flask", "--app", "app.py", "--debug", "routes",
                        cwd=project)
    assert off.returncode == 0 and "/_variants/" not in off.stdout, off.stderr
