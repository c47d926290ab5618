"""First paint in Chromium through the nginx CDN: the Link header's preloads are the requests
the page makes (each once, no "preloaded but not used" or integrity warning), and a 3x screen
fetches the files a 2x screen fetches (the DPR cap), for the eager photo and the lazy ones."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.artifacts import save_screenshot

#: Every picture's chosen file, in page order, once all are loaded.
CHOSEN = """
async () => {
  for (const img of document.querySelectorAll('picture img')) {
    img.scrollIntoView({block: 'center'});
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  }
  await Promise.all(Array.from(document.querySelectorAll('picture img'))
    .map(img => img.decode().catch(() => null)));
  return Array.from(document.querySelectorAll('picture img')).map(img => img.currentSrc);
}
"""


def open_gallery(browser: Any, url: str, *, scale: int) -> tuple[dict[str, Any], Any, Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  device_scale_factor=scale)
    page = context.new_page()
    page.set_default_timeout(30_000)
    seen: dict[str, Any] = {"requests": [], "console": []}
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    seen["response"] = page.goto(url, wait_until="load")
    return seen, page, context


def test_preloads_are_used_once_without_warnings(prod_stack: Any, browser: Any) -> None:
    seen, page, context = open_gallery(browser, prod_stack.site_url + "/", scale=2)
    try:
        # Chromium reports an unused preload about 3 s after the load event.
        page.wait_for_timeout(4000)
        save_screenshot(page, "first-paint-390")
        hero = page.evaluate("document.querySelector('picture img').currentSrc")
        html = page.content()
    finally:
        context.close()
    link = seen["response"].headers["link"]
    assert re.match(rf"<{re.escape(prod_stack.cdn_url)}>; rel=preconnect; crossorigin", link)
    kinds = re.findall(r"rel=preload; as=(\w+)", link)
    assert kinds == ["style", "image", "script"], link
    for url in re.findall(r"<([^>]*)>;\s*rel=preload; as=(?:style|script)", link):
        assert seen["requests"].count(url) == 1, (url, seen["requests"])
    image = re.search(r'imagesrcset="([^"]*)"', link)
    assert image is not None
    candidates = [candidate.split(" ")[0] for candidate in image.group(1).split(", ")]
    # the browser fetched one file of the preloaded set, once, and shows it
    assert [url for url in seen["requests"] if url in candidates] == [hero]
    assert all(url in html for url in candidates)  # a hint names only URLs the page uses
    complaints = [text for kind, text in seen["console"]
                  if kind in ("warning", "error") and re.search("preload|integrity", text, re.I)]
    assert complaints == [], complaints


def test_a_3x_screen_fetches_what_a_2x_screen_fetches(prod_stack: Any, browser: Any) -> None:
    chosen = {}
    for scale in (2, 3):
        _, page, context = open_gallery(browser, prod_stack.site_url + "/", scale=scale)
        try:
            chosen[scale] = page.evaluate(CHOSEN)
        finally:
            context.close()
    assert len(chosen[2]) >= 5 and all(chosen[2]), chosen
    assert chosen[3] == chosen[2]


def test_lazy_auto_pictures_use_the_laid_out_width_and_the_cap(prod_stack: Any,
                                                               browser: Any) -> None:
    """A lazy picture() given no sizes ("auto, 100vw", the cap in <source media>) in a 160 px
    slot: Chromium picks by the laid-out width (the smallest rung at 1x, not 100vw's), and a
    3x screen the file a 2x screen picks."""
    from pipeline.flaskext.pictures import picture

    with prod_stack.app.test_request_context():
        markup = str(picture("img/photos/moss.jpg", "moss"))
    assert 'sizes="auto, 100vw"' in markup and "min-resolution" in markup
    # Put into a page of the site (a page made up by the test would be a "public" document,
    # which Chromium's Private Network Access then forbids to load from the loopback CDN).
    slot = (f'<div style="width: 160px">{markup}</div>'
            "<style>img { width: 100%; height: auto }</style>")
    chosen = {}
    for scale in (1, 2, 3):
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      device_scale_factor=scale)
        page = context.new_page()
        try:
            page.goto(prod_stack.site_url + "/login", wait_until="load")
            page.evaluate("html => { document.body.innerHTML = html }", slot)
            page.wait_for_function("document.images[0].complete && document.images[0].naturalWidth")
            chosen[scale] = page.evaluate("document.images[0].currentSrc")
        finally:
            context.close()
    widths = {scale: int(re.search(r"\.(\d+)w\.", url).group(1))  # type: ignore[union-attr]
              for scale, url in chosen.items()}
    assert widths[1] == 320 and widths[2] == 320  # 160 px laid out, not 100vw = 1280 px
    assert chosen[3] == chosen[2]
