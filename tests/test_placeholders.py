"""Placeholders: made at deploy (bounded, deterministic, never made twice), stored in the
manifest (validated), and painted behind the image by picture() (escaped, off for transparent
images and when turned off, in a <style nonce> under a strict CSP)."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from contextlib import chdir, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string
from PIL import Image

import pipeline.build.variant_placeholder
import pipeline.build.variant_pool
from pipeline import CDN
from pipeline.errors import ConfigError, ManifestError
from pipeline.flaskext.pictures import picture, placeholder_style
from pipeline.manifest import Entry, Manifest, Placeholder
from tests.installed import InstalledTool
from tests.test_pictures import parse

WIDTHS = ["--variants", "--variant-widths", "160,320"]
RED, BLUE = (220, 30, 30), (30, 30, 220)


def halves(path: Path, size: tuple[int, int] = (640, 400)) -> Path:
    """A photo whose left half is red and right half blue: its average is purple."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    image.save(path, quality=95)
    return path


def make_static(root: Path) -> Path:
    static = root / "static"
    halves(static / "img" / "photo.jpg")
    cut = Image.new("RGBA", (200, 120), (*RED, 255))
    cut.paste((0, 0, 0, 0), (0, 0, 100, 120))  # transparent left half
    cut.save(static / "img" / "cut.png")
    Image.new("RGB", (200, 120), (10, 200, 90)).save(static / "img" / "green.png")
    (static / "site.css").write_text("body{}")
    return static


def deploy(static: Path, build: Path, *extra: str) -> dict[str, Any]:
    """A deploy to a folder target, in this process; its JSON result."""
    from pipeline.cli.main import main

    out = io.StringIO()
    with redirect_stdout(out), chdir(static.parent):  # not this repository's pyproject.toml
        code = main(["--static-dir", str(static), "--target-dir", str(build / "cdn"),
                     "--manifest", str(build / "manifest.json"), "--no-hash-cache",
                     "--variant-cache", str(build / "variants"), "--no-assets",
                     *WIDTHS, "--json", "-q", *extra])
    result: dict[str, Any] = json.loads(out.getvalue())
    assert code == 0, result
    return result


def entries(build: Path) -> dict[str, Any]:
    manifest = build / "manifest.json"
    document = json.loads((manifest if manifest.exists() else build / "cdn-manifest.json")
                          .read_text())
    assert document["version"] == 3
    files: dict[str, Any] = document["files"]
    return files


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("placeholders")
    static = make_static(root)
    deploy(static, root / "a")
    yield static, root / "a"


@pytest.mark.slow  # two deploys that encode variants on every core
def test_deploy_stores_a_bounded_deterministic_placeholder(
        deployed: tuple[Path, Path], tmp_path: Path) -> None:
    static, first = deployed
    files = entries(first)
    photo = files["img/photo.jpg"]["placeholder"]
    assert set(photo) == {"color", "preview"}
    red, green, blue = (int(photo["color"][i:i + 2], 16) for i in (1, 3, 5))
    assert abs(red - 125) < 12 and green < 45 and abs(blue - 125) < 12  # red + blue, averaged
    assert len(photo["preview"]) <= 400  # a few hundred bytes in the page, at most
    preview = Image.open(io.BytesIO(base64.b64decode(photo["preview"].split(",", 1)[1])))
    assert preview.format == "WEBP" and preview.size == (16, 10)
    left, right = preview.convert("RGB").getpixel((2, 5)), preview.convert("RGB").getpixel((13, 5))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]  # a preview, not a blur of it
    assert files["img/green.png"]["placeholder"]["color"] == "#0ac85a"
    assert "placeholder" not in files["img/cut.png"]  # transparent: nothing behind it
    assert "placeholder" not in files["site.css"]
    deploy(static, tmp_path / "b")  # another machine, from nothing: the same bytes
    assert entries(tmp_path / "b") == files


@pytest.mark.slow  # deploys that encode variants on every core
def test_a_redeploy_decodes_nothing_even_without_the_local_caches(
        deployed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    static, build = deployed
    before = (build / "manifest.json").read_bytes()

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("an unchanged image was decoded again")

    monkeypatch.setattr(pipeline.build.variant_pool, "encode_many", refuse)  # every encode job
    monkeypatch.setattr(pipeline.build.variant_placeholder, "placeholder_of", refuse)
    assert deploy(static, build)["encoded"] == 0
    shutil.rmtree(build / "variants")  # a fresh CI checkout: the release has them
    result = deploy(static, build)
    assert result["encoded"] == 0 and result["uploaded"] == 0
    assert (build / "manifest.json").read_bytes() == before


@pytest.mark.slow  # a deploy that encodes variants on every core
def test_an_older_release_without_placeholders_gets_them_without_encoding(
        tmp_path: Path) -> None:
    static = make_static(tmp_path)
    deploy(static, tmp_path / "a")
    manifest = Manifest.load(tmp_path / "a" / "manifest.json")
    stripped = Manifest({name: Entry(e.key, e.hash, e.size, e.content_type, e.integrity,
                                     e.width, e.height, e.variants)
                         for name, e in manifest.files.items()})
    assert stripped.lowest_version() == 2  # what a deploy before placeholders wrote
    (tmp_path / "a" / "variants" / "placeholders.json").unlink()
    stripped.save(tmp_path / "a" / "manifest.json")
    # the variants are in the local cache and the target: only the placeholders are made
    result = deploy(static, tmp_path / "a")
    assert result["encoded"] == 0
    assert entries(tmp_path / "a")["img/photo.jpg"]["placeholder"] == \
        manifest.files["img/photo.jpg"].placeholder.to_json()  # type: ignore[union-attr]


GOOD = {"color": "#7f1e7f", "preview": "data:image/webp;base64,UklGRg=="}


def entry_doc(placeholder: object, version: int = 3) -> dict[str, Any]:
    return {"version": version, "files": {"img/p.jpg": {
        "key": "static/img/p.abababababab.jpg", "hash": "ab" * 32, "size": 10,
        "content_type": "image/jpeg", "width": 30, "height": 20, "placeholder": placeholder}}}


def test_the_manifest_round_trips_and_writes_the_lowest_version() -> None:
    manifest = Manifest.from_document(entry_doc(GOOD))
    assert manifest.files["img/p.jpg"].placeholder == Placeholder(**GOOD)
    assert json.loads(manifest.to_json())["version"] == 3
    assert Manifest.from_json(manifest.to_json()) == manifest
    # a version 2 document's stray field is not read: version 2 has no placeholders
    assert Manifest.from_document(entry_doc(GOOD, 2)).files["img/p.jpg"].placeholder is None


@pytest.mark.parametrize("placeholder", [
    {"color": "red;background:url(//evil.example/x)", "preview": GOOD["preview"]},
    {"color": "#7F1E7F", "preview": GOOD["preview"]},
    {"color": "#7f1e7f", "preview": 'data:image/webp;base64,AA")}body{background:red'},
    {"color": "#7f1e7f", "preview": "data:image/svg+xml;base64,PHN2Zz4="},
    {"color": "#7f1e7f", "preview": "data:image/webp;base64," + "A" * 4000},
    {"color": "#7f1e7f"},
    {**GOOD, "extra": 1},
    {"color": 7, "preview": GOOD["preview"]},
    "#7f1e7f",
])
def test_hostile_placeholders_are_refused(placeholder: object) -> None:
    with pytest.raises(ManifestError, match=r"img/p\.jpg"):
        Manifest.from_document(entry_doc(placeholder))


PHOTO = Placeholder("#7f1e7f", GOOD["preview"])


def app_with(tmp_path: Path, placeholder: Placeholder | None = PHOTO, **config: object) -> Flask:
    manifest = Manifest({"img/p.jpg": Entry("static/img/p.cdcdcdcdcdcd.jpg", "cd" * 32, 5000,
                                            "image/jpeg", width=30, height=20,
                                            placeholder=placeholder)})
    manifest.save(tmp_path / "m.json")
    app = Flask(__name__, static_folder=str(tmp_path / "static"))
    app.config.update(CDN_URL="https://cdn.example.com", CDN_MANIFEST=str(tmp_path / "m.json"),
                      CDN_ENABLED=True, **config)
    CDN(app)
    return app


def img_of(html: str) -> dict[str, str | None]:
    return next(attrs for tag, attrs in parse(html).tags if tag == "img")


def test_color_by_default_blur_on_request_and_none_when_off(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    with app.test_request_context():
        assert img_of(picture("img/p.jpg", "p"))["style"] == "background-color:#7f1e7f"
        blur = img_of(picture("img/p.jpg", "p", placeholder="blur", style="border:0"))["style"]
        assert "placeholder" not in img_of(picture("img/p.jpg", "p", placeholder=None))
        assert "style" not in img_of(picture("img/p.jpg", "p", placeholder=None))
        assert placeholder_style("img/p.jpg") == "background-color:#7f1e7f"
    assert blur is not None and blur.endswith(";border:0")  # the caller's own style kept
    head, url, tail = blur.split('"')
    assert head == "background:#7f1e7f url(" and tail == ") center/cover no-repeat;border:0"
    assert url.startswith("data:image/svg+xml,%3Csvg ") and GOOD["preview"] in url
    assert not set("<>#\"") & set(url.removeprefix("data:image/svg+xml,"))
    with app_with(tmp_path, CDN_IMAGE_PLACEHOLDER=None).test_request_context():
        assert "style" not in img_of(picture("img/p.jpg", "p"))
    with app_with(tmp_path, CDN_IMAGE_PLACEHOLDER="blur").test_request_context():
        assert "url(" in str(img_of(picture("img/p.jpg", "p"))["style"])


def test_the_style_attribute_is_escaped(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    with app.test_request_context():
        html = str(picture("img/p.jpg", "p", placeholder="blur"))
    assert 'url(&#34;data:image/svg+xml,' in html and "&#39;http://www.w3.org/2000/svg&#39;" in html
    assert html.count('"') % 2 == 0 and "<svg" not in html


def test_no_placeholder_without_one_in_the_manifest(tmp_path: Path) -> None:
    app = app_with(tmp_path, placeholder=None)  # e.g. a transparent PNG
    with app.test_request_context():
        assert "style" not in img_of(picture("img/p.jpg", "p", placeholder="blur"))
        assert placeholder_style("img/p.jpg", "blur") == ""


def test_with_a_nonce_the_placeholder_is_a_style_element(tmp_path: Path) -> None:
    app = app_with(tmp_path, CDN_STYLE_NONCE=lambda: "n0nce")
    with app.test_request_context():
        html = render_template_string(
            "{{ picture('img/p.jpg', 'p', class_='hero') }}"
            "{{ picture('img/p.jpg', 'p', nonce='other', placeholder=None) }}")
    doc = parse(html)
    styles = [attrs for tag, attrs in doc.tags if tag == "style"]
    assert styles == [{"nonce": "n0nce"}]
    first = next(attrs for tag, attrs in doc.tags if tag == "img")
    name = str(first["class"]).split()[0]
    assert first["class"] == f"{name} hero" and "style" not in first
    assert f"img.{name}{{background-color:#7f1e7f}}</style>" in html


@pytest.mark.parametrize("config", [{"CDN_IMAGE_PLACEHOLDER": "blurry"},
                                    {"CDN_STYLE_NONCE": "static-nonce"}])
def test_bad_settings_stop_init_app(tmp_path: Path, config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(config))):
        app_with(tmp_path, **config)


def test_a_bad_placeholder_argument_is_an_error(tmp_path: Path) -> None:
    with app_with(tmp_path).test_request_context(), pytest.raises(ConfigError):
        picture("img/p.jpg", "p", placeholder="colour")


RENDER = """
from flask import Flask, render_template_string
from pipeline import CDN

app = Flask(__name__)
app.config.update(CDN_URL="https://cdn.example.com")
CDN(app)
with app.test_request_context():
    print(render_template_string(
        "{{ picture('img/photo.jpg', 'p', placeholder='blur') }}\\n"
        "{{ picture('img/cut.png', 'c', placeholder='blur') }}"))
"""


def test_installed_deploy_then_render_from_a_foreign_project(
        installed: InstalledTool, project: Path) -> None:
    make_static(project)
    deployed = installed.run("cdn-deploy", "--variants", "--variant-widths", "160,320",
                             "--variant-exclude", "img/cat.png", "--json", cwd=project)
    assert deployed.returncode == 0 and "Traceback" not in deployed.stderr, deployed.stderr
    stored = entries(project / "build")["img/photo.jpg"]["placeholder"]
    (project / "render.py").write_text(RENDER)
    rendered = installed.run("python", "render.py", cwd=project)
    assert rendered.returncode == 0 and "Traceback" not in rendered.stderr, rendered.stderr
    photo, cut = rendered.stdout.strip().splitlines()
    style = str(img_of(photo)["style"])
    assert style.startswith(f"background:{stored['color']} url(\"data:image/svg+xml,")
    assert stored["preview"] in style
    assert "style" not in img_of(cut)  # transparent: nothing painted behind it
