"""Responsive images end to end (issue 12): delivered bytes in Chromium, and the cost of variants
in a no-change re-deploy.

    PYTHONPATH=. python bench/bench_pictures.py [--rounds 7]

1. **Delivered bytes**: the demo stack (moto + the real deploy with the repository's variant
   settings + nginx as the CDN + the site in production mode), the gallery opened in Chromium at
   390x844@2 and 1280x900@1 and scrolled to the end; the bytes of every image response of the
   photos' variants (``/static/_v/``) against the bytes of the originals they stand for (the
   photos whose variants were shown), and all image bytes of the page for context.
2. **Re-deploy**: ``deploy.py`` whole processes into a folder target, after a first deploy,
   with nothing changed: with variants (the repository's pyproject) vs ``--no-variants``,
   alternated, ``--rounds`` each; medians of wall time and their ratio.

Prints one JSON object. Not a test; CI does not run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORTS = {"390x844@2": ({"width": 390, "height": 844}, 2),
             "1280x900@1": ({"width": 1280, "height": 900}, 1)}


def _stack_module() -> Any:
    spec = importlib.util.spec_from_file_location("demo_site_stack", ROOT / "site" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def delivered_bytes() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    stack_module = _stack_module()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work, \
            stack_module.running_stack(Path(work), cdn_enabled=True) as stack, \
            sync_playwright() as playwright:
        manifest = json.loads(stack.manifest_path.read_text())["files"]
        source_of = {v["key"]: (name, entry["size"]) for name, entry in manifest.items()
                     for v in entry.get("variants", ())}
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            for label, (viewport, scale) in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport,  # type: ignore[arg-type]
                                              device_scale_factor=scale)
                page = context.new_page()
                bodies: dict[str, int] = {}

                def record(response: Any, bodies: dict[str, int] = bodies) -> None:
                    if response.request.resource_type == "image" and response.ok:
                        bodies[response.url] = len(response.body())

                page.on("response", record)
                page.goto(stack.site_url + "/", wait_until="load")
                page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
                page.wait_for_function("Array.from(document.images).every(i => i.complete)")
                page.wait_for_timeout(500)
                variants = {url: size for url, size in bodies.items() if "/static/_v/" in url}
                originals: dict[str, int] = {}
                for url in variants:
                    key = url.removeprefix(stack.cdn_url + "/")
                    name, size = source_of[key]
                    originals[name] = size
                results[label] = {
                    "variant_bytes": sum(variants.values()),
                    "variants": sorted(url.rsplit("/", 1)[1] for url in variants),
                    "originals_bytes": sum(originals.values()),
                    "ratio": round(sum(variants.values()) / sum(originals.values()), 4),
                    "all_image_bytes": sum(bodies.values()),
                }
                context.close()
        finally:
            browser.close()
    return results


def _deploy(cwd: Path, target: Path, *extra: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "deploy.py"), "--target-dir", str(target),
                    "--manifest", str(target.parent / "m.json"), "--no-assets", "-q", *extra],
                   cwd=cwd, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def redeploy(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        with_v, without_v = Path(work) / "with" / "cdn", Path(work) / "without" / "cdn"
        cache = ["--variant-cache", str(ROOT / "build" / "variants")]
        _deploy(ROOT, with_v, *cache)  # first deploys (encodes unless cached)
        _deploy(ROOT, without_v, "--no-variants")
        times: dict[str, list[float]] = {"variants": [], "no_variants": []}
        for _ in range(rounds):
            times["variants"].append(_deploy(ROOT, with_v, *cache))
            times["no_variants"].append(_deploy(ROOT, without_v, "--no-variants"))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"seconds": times, "median": medians,
            "ratio": round(medians["variants"] / medians["no_variants"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", choices=["bytes", "redeploy"])
    args = parser.parse_args()
    report: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    if args.only in (None, "bytes"):
        report["delivered"] = delivered_bytes()
    if args.only in (None, "redeploy"):
        report["redeploy"] = redeploy(args.rounds)
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
