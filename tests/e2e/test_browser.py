"""The demo site in a real browser, in production (CDN) and development modes."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from tests.e2e.artifacts import save_screenshot

FINGERPRINTED = re.compile(r"\.[0-9a-f]{12}\.[a-z0-9]+$")
#: A responsive variant's key (picture()): content hash, width, parameters digest.
VARIANT = re.compile(r"/static/_v/[0-9a-f]{2}/[0-9a-f]{16}\.\d+w\.[0-9a-f]{10}\.[a-z]+$")


def load_all_images(page: Any, url: str) -> list[dict[str, Any]]:
    """Open ``url``, scroll so lazy images load, and return what the browser made of each."""
    page.goto(url, wait_until="load")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("Array.from(document.images).every(img => img.complete)")
    return page.evaluate(
        "Array.from(document.images).map(img => "
        "({src: img.currentSrc, width: img.naturalWidth, alt: img.alt}))"
    )


def watch_requests(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_production_images_come_from_the_cdn_with_fingerprinted_names(
    prod_stack: Any, page: Any
) -> None:
    requests = watch_requests(page)
    images = load_all_images(page, prod_stack.site_url + "/")
    save_screenshot(page, "production-gallery")
    static_images = [img for img in images if img["src"].startswith(prod_stack.cdn_url)]
    assert len(static_images) >= 7, images
    for image in images:
        assert image["width"] > 0, f"{image} did not render"
    for image in static_images:
        src = image["src"].split("?")[0]
        assert FINGERPRINTED.search(src) or VARIANT.search(src), image["src"]
    assert not [url for url in requests if url.startswith(prod_stack.site_url + "/static/")]


def test_css_backgrounds_and_fonts_load_from_the_cdn(prod_stack: Any, page: Any) -> None:
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    load_all_images(page, prod_stack.site_url + "/")
    page.wait_for_function("document.documentElement.dataset.galleryReady === 'yes'")
    font_loaded = page.evaluate(
        "document.fonts.ready.then(() => document.fonts.check('700 16px \"Demo Sans\"'))")
    assert font_loaded, "the web font from the CDN did not load"
    hero = page.evaluate("getComputedStyle(document.querySelector('.hero')).backgroundImage")
    assert prod_stack.cdn_url in hero and FINGERPRINTED.search(hero.split('"')[1]), hero
    ok = {r.url.split("?")[0] for r in responses if r.ok and r.url.startswith(prod_stack.cdn_url)}
    for expected in ("/static/gen/site.", "/static/gen/app.", "/static/fonts/demo-bold.",
                     "/static/img/photos/sunset%20beach.", "/static/img/icons/arrow."):
        assert any(expected in url for url in ok), f"nothing like {expected} loaded: {ok}"
    link = page.get_attribute("link[rel=stylesheet]", "integrity")
    assert link and link.startswith("sha384-")  # the browser checked it, or nothing would style


def test_reload_is_served_from_a_cache(prod_stack: Any, page: Any) -> None:
    # What the first load finished fetching is what a cache can have: Chromium asks for the
    # favicon only after the load event, so a reload that follows at once may be its first.
    first_load: set[str] = set()
    page.on("requestfinished", lambda request: first_load.add(request.url))
    load_all_images(page, prod_stack.site_url + "/")
    loaded_before = set(first_load)
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    # Chromium's own word on which answers came from its cache (Playwright's timing does
    # not always say: a favicon from the disk cache still has a requestStart).
    from_disk_cache: set[str] = set()
    devtools = page.context.new_cdp_session(page)
    devtools.on("Network.responseReceived", lambda event: from_disk_cache.add(
        event["response"]["url"]) if event["response"].get("fromDiskCache") else None)
    devtools.send("Network.enable")
    page.reload(wait_until="load")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("Array.from(document.images).every(img => img.complete)")
    cdn_responses = [r for r in responses
                     if r.url.startswith(prod_stack.cdn_url) and r.url in loaded_before]
    assert len(cdn_responses) >= 5, "the reload must load the CDN images again"
    for response in cdn_responses:
        # Either the browser answered from its own cache (immutable: no request at all,
        # requestStart -1), or the request reached nginx and nginx answered from its cache.
        from_browser_cache = (response.request.timing["requestStart"] == -1
                              or response.url in from_disk_cache)
        assert from_browser_cache or response.header_value("x-cache-status") == "HIT", response.url
    # And the CDN itself now has every image: a direct request is a HIT. It offers what
    # Chromium offers: nginx caches each coding of an SVG apart (issue 23).
    for image in load_all_images(page, prod_stack.site_url + "/"):
        if image["src"].startswith(prod_stack.cdn_url):
            request = urllib.request.Request(image["src"], headers={
                "Accept-Encoding": "gzip, deflate, br, zstd"})
            with urllib.request.urlopen(request, timeout=10) as direct:
                assert direct.headers["X-Cache-Status"] == "HIT"
                assert direct.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_development_mode_loads_local_files_and_a_placeholder(dev_stack: Any, page: Any) -> None:
    images = load_all_images(page, dev_stack.site_url + "/")
    static_images = [img for img in images if "/static/" in img["src"]]
    variants = [img for img in images if "/_variants/" in img["src"]]  # photos, via picture()
    assert len(static_images) >= 5 and len(variants) >= 5
    for image in static_images + variants:
        assert image["src"].startswith((dev_stack.site_url + "/static/",
                                        dev_stack.site_url + "/_variants/_v/"))
        assert image["width"] > 0
    statuses: dict[str, int] = {}
    page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
    page.evaluate(
        "new Promise(done => { const img = new Image(); img.id = 'missing';"
        " img.onload = img.onerror = done; img.src = '/static/img/not-deployed.png';"
        " document.body.prepend(img); })"
    )
    width = page.evaluate("document.getElementById('missing').naturalWidth")
    save_screenshot(page, "development-gallery")
    assert width > 0, "a missing image must show the placeholder, not a broken icon"
    assert statuses[dev_stack.site_url + "/static/img/not-deployed.png"] == 404


def test_private_image_needs_login_then_renders_via_presigned_redirect(
    prod_stack: Any, page: Any
) -> None:
    denied = page.goto(prod_stack.site_url + "/private/secret-plan.png")
    assert denied is not None and denied.status in (401, 403)

    page.goto(prod_stack.site_url + "/login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", prod_stack.app.config["DEMO_USERS"]["demo"])
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("load")
    images = load_all_images(page, prod_stack.site_url + "/")
    save_screenshot(page, "production-logged-in")
    private = [img for img in images if "secret-plan" in img["src"]]
    assert private and private[0]["width"] > 0, images
    redirects = [r for r in responses if r.url.endswith("/private/secret-plan.png")]
    assert redirects and all(r.status == 302 for r in redirects)
    # The last one: the page load after the login may be cut short by load_all_images's own
    # navigation before its image request finishes (seen under load on SeaweedFS).
    location = redirects[-1].header_value("location")
    assert location.startswith(prod_stack.s3_endpoint + "/demo-private/private/secret-plan.png?")
    assert "X-Amz-Expires=" in location and "X-Amz-Signature=" in location
    final = [r for r in responses if r.url == location]
    assert final and final[0].status == 200


def test_css_and_js_arrive_brotli_compressed_from_the_cdn(prod_stack: Any, page: Any) -> None:
    """Issue 23: Chromium offers br; nginx answers with the deploy's stored .br siblings."""
    responses: list[Any] = []
    errors: list[str] = []
    page.on("response", lambda r: responses.append(r))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(prod_stack.site_url + "/", wait_until="load")
    page.wait_for_function("document.documentElement.dataset.galleryReady === 'yes'")
    save_screenshot(page, "production-brotli")
    scripts_and_styles = [r for r in responses if r.url.startswith(prod_stack.cdn_url)
                          and r.url.split("?")[0].endswith((".css", ".js"))]
    names = {r.url.rsplit("/", 1)[1].split(".")[0] for r in scripts_and_styles}
    assert {"site", "app"} <= names, names
    for response in scripts_and_styles:
        headers = response.all_headers()
        assert "br" in response.request.all_headers()["accept-encoding"]
        assert (headers.get("content-encoding"), headers.get("vary")) == ("br", "Accept-Encoding")
        assert response.ok
    hero = page.evaluate("getComputedStyle(document.querySelector('.hero')).backgroundImage")
    assert prod_stack.cdn_url in hero, f"site.css was not applied: {hero}"
    assert errors == []
