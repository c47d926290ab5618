"""What a visitor sees of the demo at desktop and phone widths: a styled nav whose Log out
button stays on one line, one legible brand icon, cards as tall as their content, and the
"open full size" arrow only on cards that are links."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from tests.e2e.artifacts import save_screenshot


def logged_in_gallery(stack: Any, page: Any) -> None:
    page.goto(stack.site_url + "/login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", stack.app.config["DEMO_USERS"]["demo"])
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    page.goto(stack.site_url + "/", wait_until="load")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("Array.from(document.images).every(img => img.complete)")
    page.wait_for_function("document.documentElement.dataset.galleryReady === 'yes'")


@pytest.mark.parametrize("width", [1280, 390])
def test_nav_brand_and_cards(prod_stack: Any, browser: Any, width: int) -> None:
    images = prod_stack.workdir / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (48, 32), (200, 80, 40)).save(images / "small.png")
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        logged_in_gallery(prod_stack, page)
        save_screenshot(page, f"layout-{width}")
        layout = page.evaluate("""() => {
          const box = el => el.getBoundingClientRect();
          const style = el => getComputedStyle(el);
          const button = document.querySelector('nav button');
          const first = document.querySelector('nav a');
          const brand = document.querySelector('.brand');
          const figures = Array.from(document.querySelectorAll('.grid figure'));
          return {
            button: {radius: style(button).borderRadius, height: box(button).height,
                     top: box(button).top, fontSize: parseFloat(style(button).fontSize),
                     bg: style(button).backgroundColor},
            linkTop: box(first).top, linkDecoration: style(first).textDecorationLine,
            brand: {width: box(brand).width, height: box(brand).height,
                    repeat: style(brand).backgroundRepeat, image: style(brand).backgroundImage},
            cards: figures.map(f => ({
              link: !!f.querySelector('a'), arrow: style(f).backgroundImage,
              height: box(f).height, content: box(f.querySelector('img')).height
                + box(f.querySelector('figcaption')).height,
            })),
          };
        }""")
    finally:
        context.close()
    # A styled nav: pill buttons, no underlined links, Log out on the links' line, one line tall.
    assert layout["button"]["radius"] not in ("0px", "")
    assert layout["linkDecoration"] == "none"
    assert abs(layout["button"]["top"] - layout["linkTop"]) < 8
    assert layout["button"]["height"] < 2.8 * layout["button"]["fontSize"]  # one line of text
    # The brand: one logo from the CDN, big enough to read, never tiled.
    assert layout["brand"]["width"] >= 40 and layout["brand"]["height"] >= 40
    assert layout["brand"]["repeat"] == "no-repeat"
    assert prod_stack.cdn_url in layout["brand"]["image"]
    # Cards fit their content (a 64 px spinner does not get a 200 px card) ...
    for card in layout["cards"]:
        assert card["height"] <= card["content"] + 40, card
    # ... and only cards that are links carry the "open full size" arrow.
    links = [card for card in layout["cards"] if card["link"]]
    plain = [card for card in layout["cards"] if not card["link"]]
    assert links and plain
    assert all("arrow" in card["arrow"] for card in links)
    assert all(card["arrow"] == "none" for card in plain)
