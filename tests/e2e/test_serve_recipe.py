"""The README's local-CDN recipe in a real browser: `deploy.py` into a folder, `deploy.py serve`,
the site with CDN_URL pointing at it. The SRI-checked CSS and JS must load (they need CORS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.artifacts import save_screenshot
from tests.e2e.conftest import ROOT, stack_module


@pytest.fixture
def served_cdn(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    target, manifest = tmp_path / "cdn", tmp_path / "cdn-manifest.json"
    deployed = subprocess.run(
        [sys.executable, "deploy.py", "--assets", "site/assets.py", "--target-dir", str(target),
         "--manifest", str(manifest), "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert deployed.returncode == 0, deployed.stderr
    server = subprocess.Popen(
        [sys.executable, "deploy.py", "serve", "--dir", str(target), "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert " at http://127.0.0.1:" in line, line
        yield line.split(" at ")[1].split(";")[0], manifest
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


def test_site_styled_and_scripted_from_the_served_folder(
    served_cdn: tuple[str, Path], page: Any, tmp_path: Path
) -> None:
    cdn_url, manifest = served_cdn
    (tmp_path / "images").mkdir()
    (tmp_path / "private").mkdir()
    app = stack_module.load_site_module().create_app({
        "CDN_URL": cdn_url, "CDN_MANIFEST": manifest, "IMAGES_DIR": tmp_path / "images",
        "PRIVATE_DIR": tmp_path / "private", "SECRET_KEY": os.urandom(16).hex(),
        "DEMO_USERS": {"demo": os.urandom(9).hex()},  # production refuses demo/demo
    })
    with stack_module.serve(app) as site_url:
        page.goto(site_url + "/", wait_until="load")
        # gallery.js sets this: it ran, so the browser accepted its integrity over CORS.
        page.wait_for_function("document.documentElement.dataset.galleryReady === 'yes'")
        stylesheet = page.get_attribute("link[rel=stylesheet]", "href")
        assert stylesheet and stylesheet.startswith(cdn_url + "/static/gen/site.")
        assert page.get_attribute("link[rel=stylesheet]", "integrity", timeout=1000)
        hero = page.evaluate("getComputedStyle(document.querySelector('.hero')).backgroundImage")
        assert cdn_url in hero, f"site.css was not applied: {hero}"
        save_screenshot(page, "served-folder-gallery")
