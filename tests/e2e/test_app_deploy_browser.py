"""Issue 20's "done when": an app with Flask-Admin (its admin index page) and a blueprint whose
static folder is outside the app's, deployed by the installed ``flask cdn deploy`` with no
extra flags, served by the installed ``cdn-deploy serve``, loaded in Chromium: every static
file from the CDN origin, none from the app, no failed request, no console error."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app_project import write_blog_project
from tests.e2e.artifacts import save_screenshot
from tests.e2e.conftest import stack_module, visit
from tests.installed import InstalledTool


@pytest.fixture
def deployed_blog(installed: InstalledTool, project: Path) -> Iterator[tuple[Path, str]]:
    """The blog project deployed by the installed tool and its folder served on loopback."""
    write_blog_project(project)
    deployed = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "deploy", "-q",
                             cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    with installed.serving(cwd=project) as served:
        yield project, served.url


@pytest.fixture
def site_url(deployed_blog: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The blog app (strict: a name missing from the manifest raises) served on loopback."""
    project, cdn_url = deployed_blog
    monkeypatch.setenv("BLOG_CDN_URL", cdn_url)
    monkeypatch.setenv("BLOG_CDN_MANIFEST", str(project / "build" / "cdn-manifest.json"))
    monkeypatch.setenv("BLOG_CDN_STRICT", "true")
    monkeypatch.syspath_prepend(str(project))
    try:
        app = importlib.import_module("blog").create_app()
        with stack_module.serve(app) as url:
            yield url
    finally:
        sys.modules.pop("blog", None)


@pytest.mark.parametrize("path", ["/admin/", "/gallery/"])
def test_every_static_file_comes_from_the_cdn(
        site_url: str, deployed_blog: tuple[Path, str], page: Any, path: str) -> None:
    cdn = deployed_blog[1]
    requests, failed, errors = visit(page, site_url + path)
    save_screenshot(page, "app-deploy" + path.rstrip("/").replace("/", "-"))

    from_app = [url for url in requests if url.startswith(site_url)]
    from_cdn = [url for url in requests if url.startswith(cdn + "/static/")]
    assert from_app == [site_url + path]  # the page itself; no static file
    assert failed == [] and errors == []
    if path == "/admin/":
        assert len(from_cdn) >= 12  # Bootstrap, Font Awesome, jQuery, select2, ...
        assert any("/static/admin/static/bootstrap/" in url for url in from_cdn)
        styled = page.evaluate("getComputedStyle(document.querySelector('.navbar')).display")
        assert styled == "flex"  # Bootstrap 4 from the CDN applied
    else:
        assert page.evaluate("document.documentElement.dataset.gallery") == "ready"
        assert page.evaluate("document.images[0].naturalWidth") == 2
        frame = page.evaluate("getComputedStyle(document.querySelector('.frame'))"
                              ".backgroundImage")
        cat = page.evaluate("getComputedStyle(document.querySelector('.cat')).backgroundImage")
        assert frame.startswith(f'url("{cdn}/static/gallery/gallery-static/img/frame.')
        assert cat.startswith(f'url("{cdn}/static/img/cat.')
        assert any("/img/cat." in url for url in from_cdn)  # the background loaded
