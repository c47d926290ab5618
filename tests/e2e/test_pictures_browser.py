"""picture() in a real browser: AVIF chosen, a variant sized for the screen, no layout shift."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.artifacts import save_screenshot

VIEWPORTS = [({"width": 390, "height": 844}, 2), ({"width": 1280, "height": 900}, 1)]

#: Per <img> in a <picture>: what the browser chose and how big it is shown.
READ_PICTURES = """
() => Array.from(document.querySelectorAll('picture img')).map(img => {
  const sets = [img, ...img.parentElement.querySelectorAll('source')]
    .map(el => el.getAttribute('srcset') || '').join(', ');
  const widths = sets.split(',').map(c => parseInt(c.trim().split(' ')[1])).filter(w => w > 0);
  return {src: img.currentSrc, natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
          largest: Math.max(...widths), alt: img.alt};
})
"""


@pytest.fixture(params=VIEWPORTS, ids=["390x844@2", "1280x900@1"])
def sized_page(request: pytest.FixtureRequest, browser: Any) -> Iterator[tuple[Any, int]]:
    viewport, scale = request.param
    context = browser.new_context(viewport=viewport, device_scale_factor=scale)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page, scale
    finally:
        context.close()


#: Bring every image near the viewport in turn: a lazy image is fetched only then, and
#: ``complete`` is already true for one whose fetch is still deferred.
SCROLL_THROUGH_IMAGES = """
async () => {
  for (const img of document.images) {
    img.scrollIntoView({block: 'center'});
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  }
  window.scrollTo(0, 0);
}
"""
ALL_IMAGES_DECODED = """
() => Array.from(document.images).every(
  img => img.complete && (img.naturalWidth > 0 || img.currentSrc.endsWith('.svg')))
"""


def load(page: Any, url: str) -> None:
    """The page with every image fetched and decoded, so the screenshot shows them all."""
    page.goto(url, wait_until="load")
    page.evaluate(SCROLL_THROUGH_IMAGES)
    page.wait_for_function(ALL_IMAGES_DECODED)
    page.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => 0)))")


def test_gallery_pictures_pick_avif_sized_for_the_screen(prod_stack: Any,
                                                         sized_page: tuple[Any, int]) -> None:
    page, scale = sized_page
    load(page, prod_stack.site_url + "/")
    save_screenshot(page, f"pictures-{page.viewport_size['width']}")
    pictures = page.evaluate(READ_PICTURES)
    assert len(pictures) >= 5, pictures  # the demo's photos
    for image in pictures:
        assert image["src"].startswith(prod_stack.cdn_url + "/static/_v/"), image
        assert image["src"].endswith(".avif"), image  # the browser picks AVIF
        assert image["natural"] > 0, image
        assert (image["natural"] <= 1.5 * image["shown"] * scale
                or image["natural"] == image["largest"]), image
    missing = page.evaluate(
        "Array.from(document.images).filter(img => !img.classList.contains('svg') && "
        "!(img.hasAttribute('width') && img.hasAttribute('height'))).map(img => img.src)")
    gallery = [src for src in missing if "/static/img/" in src or "/_v/" in src]
    assert gallery == [], gallery  # every static gallery image reserves its space
