"""Placeholders in Chromium: painted while the image request hangs, covered once it loads, and
under a strict Content-Security-Policy shown only in the nonce mode."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string
from PIL import Image

from pipeline import CDN
from pipeline.manifest import Manifest
from tests.e2e.artifacts import save_screenshot
from tests.test_placeholders import BLUE, RED, deploy, make_static

#: Once: these pages come from a folder-target deploy; the e2e S3 server is not involved.
pytestmark = pytest.mark.moto_only("no S3 server is used: a folder target, requests routed")

SITE, CDN_HOST = "http://site.test/", "http://cdn.test"
STRICT_CSP = f"default-src 'none'; img-src {CDN_HOST} data:; style-src 'nonce-n0nce'"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("placeholders-browser")
    deploy(make_static(root), root / "build")
    return root / "build" / "cdn", Manifest.load(root / "build" / "manifest.json")


def page_html(deployed: tuple[Path, Manifest], tmp_path: Path, call: str, **config: Any) -> str:
    """The page a real app renders with ``call`` (a Jinja expression) in its body."""
    deployed[1].save(tmp_path / "manifest.json")
    app = Flask(__name__, static_folder=str(tmp_path / "static"))
    app.config.update(CDN_URL=CDN_HOST, CDN_MANIFEST=str(tmp_path / "manifest.json"),
                      CDN_ENABLED=True, **config)
    CDN(app)
    with app.test_request_context():
        return render_template_string("<!doctype html><html><body>{{ " + call + " }}</body></html>")


@pytest.fixture
def held(page: Any, deployed: tuple[Path, Manifest]) -> Iterator[list[Any]]:
    """Every request to the CDN, held unanswered until the test answers it from the target."""
    routes: list[Any] = []
    page.route(f"{CDN_HOST}/**", lambda route: routes.append(route))
    yield routes


def open_page(page: Any, html: str, held: list[Any], *, csp: str | None = None) -> None:
    headers = {"Content-Security-Policy": csp} if csp else {}
    page.route(SITE, lambda route: route.fulfill(body=html, content_type="text/html",
                                                 headers=headers))
    page.goto(SITE, wait_until="domcontentloaded")
    page.wait_for_function("document.images.length > 0")
    for _ in range(100):  # the image request is made (and hangs) once layout is done
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the image was never requested"


def pixels(page: Any, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Colours at a quarter, half and three quarters of the image's width (mid-height)."""
    box = page.locator("img").first.bounding_box()
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    save_screenshot(page, name)
    y = int(box["y"] + box["height"] / 2)
    return tuple(shot.getpixel((int(box["x"] + box["width"] * f), y))  # type: ignore[return-value]
                 for f in (0.25, 0.5, 0.75))


def release(page: Any, held: list[Any], cdn: Path) -> None:
    """Answer every held request from the deploy's target folder; wait for the image."""
    for route in held:
        route.fulfill(path=str(cdn / route.request.url.removeprefix(CDN_HOST + "/")))
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth)")
    page.evaluate("Promise.all(Array.from(document.images).map(i => i.decode()))")


def close(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def rgb(color: str) -> tuple[int, ...]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def test_the_colour_shows_until_the_image_loads_then_the_image_covers_it(
        page: Any, held: list[Any], deployed: tuple[Path, Manifest], tmp_path: Path) -> None:
    placeholder = deployed[1].files["img/photo.jpg"].placeholder
    assert placeholder is not None
    open_page(page, page_html(deployed, tmp_path, "picture('img/photo.jpg', 'photo')"), held)
    before = pixels(page, "placeholder-color-before")
    assert all(close(p, rgb(placeholder.color)) for p in before), before
    release(page, held, deployed[0])
    left, _, right = pixels(page, "placeholder-color-after")
    assert close(left, RED, 30) and close(right, BLUE, 30), (left, right)


def test_the_blurred_preview_shows_the_picture_s_layout(
        page: Any, held: list[Any], deployed: tuple[Path, Manifest], tmp_path: Path) -> None:
    html = page_html(deployed, tmp_path, "picture('img/photo.jpg', 'photo', placeholder='blur')")
    open_page(page, html, held)
    left, middle, right = pixels(page, "placeholder-blur-before")
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0], (left, right)  # red | blue
    assert middle not in (left, right)  # blurred across the edge
    release(page, held, deployed[0])
    left, _, right = pixels(page, "placeholder-blur-after")
    assert close(left, RED, 30) and close(right, BLUE, 30), (left, right)


def test_a_strict_csp_blocks_the_style_attribute_but_not_the_nonce_mode(
        page: Any, held: list[Any], deployed: tuple[Path, Manifest], tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text))
    plain = page_html(deployed, tmp_path, "picture('img/photo.jpg', 'photo')")
    open_page(page, plain, held, csp=STRICT_CSP)
    assert close(pixels(page, "placeholder-csp-blocked")[1], (255, 255, 255), 0)
    assert any("Content Security Policy" in text for text in errors)
    page.unroute(SITE)
    held.clear()
    errors.clear()
    nonced = page_html(deployed, tmp_path, "picture('img/photo.jpg', 'photo', placeholder='blur')",
                       CDN_STYLE_NONCE=lambda: "n0nce")
    open_page(page, nonced, held, csp=STRICT_CSP)
    left, _, right = pixels(page, "placeholder-csp-nonce")
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0], (left, right)
    assert not errors, errors
