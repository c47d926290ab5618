"""First paint of the demo gallery with and without the first-paint kit (issue 24), in Chromium.

    PYTHONPATH=. python bench/bench_first_paint.py [--rounds 7]

One demo stack (moto, the real deploy, nginx as the CDN) and two instances of the site on it,
the same page and templates, differing only in the kit's settings:

* **on**: the defaults: the first photo preloaded by the ``Link`` header (with the CSS/JS
  preloads and the CDN preconnect), the DPR cap (``CDN_MAX_DPR = 2``), ``sizes="auto"`` on
  lazy pictures given no ``sizes``, the deploy-time colour placeholders;
* **off**: the page without the kit: ``CDN_LINK_HEADER_MAX = 0``, ``CDN_MAX_DPR = None``,
  ``CDN_SIZES_AUTO = False``, ``CDN_IMAGE_PLACEHOLDER = None`` and the first photo lazy like
  the others
  (``GALLERY_PRIORITY = False``);
* **eager**: "off" with the first photo ``loading="eager"`` and ``fetchpriority="high"`` by
  hand (what the demo did before), for how much the preload and the cap add to that.

Each round opens each page (in turn, a fresh browser context each time, so a cold cache)
at 390x844 @2x under ``Network.emulateNetworkConditions`` (150 ms latency, 1.6 Mbps down,
750 kbps up) and reads: LCP (the last ``largest-contentful-paint`` entry), whether the LCP
image's request started before the CSS finished (Resource Timing), CLS (``layout-shift``
entries without recent input), console warnings about preloads or integrity, and how often
each preloaded URL was requested. Then each page once at 390x844 @3x without throttling,
scrolled to the end: the bytes of every image response. One warm-up load of each page first
(fills nginx's cache), not counted. Prints one JSON object; medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_pictures import CHROMIUM_ARGS, _stack_module

#: 150 ms round trip, 1.6 Mbps down, 750 kbps up (Lighthouse's "slow 4G"); bytes per second.
THROTTLE = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8,
            "uploadThroughput": 750_000 / 8}
KIT_OFF = {"CDN_LINK_HEADER_MAX": 0, "CDN_MAX_DPR": None, "CDN_SIZES_AUTO": False,
           "CDN_IMAGE_PLACEHOLDER": None}
#: The pages compared with the kit's ("on", the stack's own site): without the kit, and
#: without it but with the first photo eager and fetchpriority="high" by hand.
VARIANTS = {"off": {**KIT_OFF, "GALLERY_PRIORITY": False}, "eager": KIT_OFF}
#: The stack's app config that a second instance of the site needs to be the same site.
SHARED_KEYS = ("CDN_URL", "CDN_MANIFEST", "CDN_ENABLED", "IMAGES_DIR", "PRIVATE_DIR",
               "SECRET_KEY", "DEMO_USERS", "SESSION_COOKIE_SECURE", "PRIVATE_BUCKET",
               "PRIVATE_ENDPOINT_URL")

OBSERVE = """
window.__fp = {lcp: null, cls: 0};
new PerformanceObserver(list => {
  for (const e of list.getEntries())
    window.__fp.lcp = {time: e.startTime, url: e.url, size: e.size,
                       tag: e.element ? e.element.tagName : null};
}).observe({type: 'largest-contentful-paint', buffered: true});
new PerformanceObserver(list => {
  for (const e of list.getEntries()) if (!e.hadRecentInput) window.__fp.cls += e.value;
}).observe({type: 'layout-shift', buffered: true});
"""
READ = """
() => {
  const entries = performance.getEntriesByType('resource');
  const css = entries.find(e => e.name.endsWith('.css'));
  const lcp = window.__fp.lcp;
  const image = lcp && entries.find(e => e.name === lcp.url);
  return {lcp, cls: window.__fp.cls, html: document.documentElement.outerHTML.length,
          css_end: css ? css.responseEnd : null, image_start: image ? image.startTime : null};
}
"""
WARNING = re.compile(r"preload|integrity", re.IGNORECASE)


def one_load(browser: Any, url: str, *, scale: int, throttle: bool,
             scroll: bool = False) -> dict[str, Any]:
    """Open ``url`` in a fresh context; what the page reports and what went over the wire."""
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  device_scale_factor=scale)
    page = context.new_page()
    page.set_default_timeout(120_000)
    requests: dict[str, int] = {}
    image_bytes: dict[str, int] = {}
    warnings: list[str] = []
    page.on("request", lambda r: requests.__setitem__(r.url, requests.get(r.url, 0) + 1))
    page.on("console", lambda m: warnings.append(m.text)
            if m.type in ("warning", "error") and WARNING.search(m.text) else None)

    def record(response: Any) -> None:
        if response.request.resource_type == "image" and response.ok:
            image_bytes[response.url] = len(response.body())

    page.on("response", record)
    page.add_init_script(OBSERVE)
    if throttle:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", THROTTLE)
    response = page.goto(url, wait_until="load")
    assert response is not None
    link = response.headers.get("link", "")
    if scroll:
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.wait_for_timeout(3500)  # Chromium warns about an unused preload ~3 s after load
    facts = page.evaluate(READ)
    context.close()
    return {**facts, "warnings": warnings, "link_bytes": len(link),
            "preloaded_requests": preloaded_requests(link, requests),
            "image_bytes": sum(image_bytes.values()), "images": len(image_bytes)}


def preloaded_requests(link: str, requests: dict[str, int]) -> dict[str, int]:
    """How often each preload was fetched: a CSS/JS URL itself; for an image preload, the
    files of its ``imagesrcset`` together (the browser fetches the one it picks)."""
    counts = {url: requests.get(url, 0)
              for url in re.findall(r"<([^>]*)>;\s*rel=preload; as=(?:style|script)", link)}
    for found in re.findall(r'imagesrcset="([^"]*)"', link):
        urls = [candidate.split(" ")[0] for candidate in found.split(", ")]
        counts[found] = sum(requests.get(url, 0) for url in urls)
    return counts


def summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    lcps = [load["lcp"]["time"] for load in loads if load["lcp"]]
    return {
        "lcp_ms_median": round(statistics.median(lcps)), "lcp_ms": [round(t) for t in lcps],
        "lcp_element": sorted({f"{(load['lcp'] or {}).get('tag')} "
                               f"{(load['lcp'] or {}).get('url', '').rsplit('/', 1)[-1]}"
                               for load in loads}),
        "image_before_css_end": sum(1 for load in loads if load["image_start"] is not None
                                    and load["css_end"] is not None
                                    and load["image_start"] < load["css_end"]),
        "cls_max": round(max(load["cls"] for load in loads), 4),
        "warnings": sorted({w for load in loads for w in load["warnings"]}),
        "preloaded_requested": sorted({n for load in loads
                                       for n in load["preloaded_requests"].values()}),
        "html_chars": loads[0]["html"], "link_header_bytes": loads[0]["link_bytes"],
    }


def run(rounds: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    stack_module = _stack_module()
    with tempfile.TemporaryDirectory() as work, \
            stack_module.running_stack(Path(work), cdn_enabled=True) as stack, \
            ExitStack() as servers, sync_playwright() as playwright:
        site = sys.modules["demo_site_app"]
        shared = {k: stack.app.config[k] for k in SHARED_KEYS if k in stack.app.config}
        urls = {"on": stack.site_url + "/"}
        for name, config in VARIANTS.items():
            app = site.create_app({**shared, **config})
            urls[name] = servers.enter_context(
                stack_module.serve(app, on_stop=site.shutdown_app)) + "/"
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        for url in urls.values():  # warm nginx's cache
            one_load(browser, url, scale=2, throttle=False, scroll=True)
        loads: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        started = time.monotonic()
        for _ in range(rounds):
            for name, url in urls.items():
                loads[name].append(one_load(browser, url, scale=2, throttle=True))
        at3x = {name: one_load(browser, urls[name], scale=3, throttle=False, scroll=True)
                for name in ("on", "off")}
        first3x = {name: one_load(browser, urls[name], scale=3, throttle=False)
                   for name in ("on", "off")}
        browser.close()
    summaries = {name: summary(found) for name, found in loads.items()}
    lcp = {name: found["lcp_ms_median"] for name, found in summaries.items()}
    return {
        "rounds": rounds, "seconds": round(time.monotonic() - started), **summaries,
        "lcp_ratio_on_vs_off": round(lcp["on"] / lcp["off"], 3),
        "lcp_ratio_on_vs_eager": round(lcp["on"] / lcp["eager"], 3),
        "image_bytes_3x_scrolled": {k: v["image_bytes"] for k, v in at3x.items()},
        "image_bytes_3x_scrolled_ratio": round(at3x["on"]["image_bytes"]
                                               / at3x["off"]["image_bytes"], 3),
        "image_bytes_3x_first_load": {k: v["image_bytes"] for k, v in first3x.items()},
        "image_bytes_3x_first_load_ratio": round(first3x["on"]["image_bytes"]
                                                 / first3x["off"]["image_bytes"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.rounds), indent=2))


if __name__ == "__main__":
    main()
