"""CDN_MANIFEST=http(s)://... when CDN_URL has a path (issue 20, item 5): a path-style bucket
URL or a CDN mounted under /assets/. The manifest's keys are relative to CDN_URL, so its
prefix is the path below CDN_URL's, not below the host's root."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import CDN
from pipeline.serving.source import split_under_base
from tests.app_project import write_blog_project
from tests.installed import InstalledTool

BUCKET = "blog-assets"


@pytest.fixture
def origin(installed: InstalledTool, project: Path, tmp_path: Path) -> Iterator[str]:
    """The project deployed into ``origin/blog-assets`` and ``origin`` served on loopback by
    the installed ``cdn-deploy serve``: the bucket's objects under ``/blog-assets/``, as a
    path-style S3 URL has them. Yields the CDN_URL (with its path)."""
    write_blog_project(project)
    folder = tmp_path / "origin"
    deployed = installed.run("cdn-deploy", "--target-dir", str(folder / BUCKET), "-q",
                             cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    with installed.serving("--dir", str(folder), cwd=project) as served:
        yield served.url + "/" + BUCKET


def test_the_app_reads_a_manifest_under_a_cdn_url_with_a_path(
        origin: str, project: Path, tmp_path: Path) -> None:
    from flask import Flask, url_for

    app = Flask(__name__, static_folder=str(project / "static"))
    app.config.update(CDN_URL=origin, CDN_MANIFEST=f"{origin}/static/manifest.json",
                      CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"), CDN_STRICT=True)
    CDN(app)
    with app.test_request_context("/"):
        url = url_for("static", filename="img/cat.png")

    assert url.startswith(origin + "/static/img/cat.")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == (project / "static" / "img" / "cat.png").read_bytes()


def test_the_installed_flask_command_resolves_names_under_a_cdn_url_with_a_path(
        installed: InstalledTool, origin: str, project: Path) -> None:
    result = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "manifest",
                           "img/cat.png", "--json", cwd=project, BLOG_CDN_URL=origin,
                           BLOG_CDN_MANIFEST=f"{origin}/static/manifest.json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["lookups"]["img/cat.png"].startswith(
        origin + "/static/img/cat.")


@pytest.mark.parametrize(("location", "base", "expected"), [
    ("http://h:1/b/static/manifest.json", "http://h:1/b",
     ("http://h:1/b", "/static/manifest.json")),
    ("http://h:1/b/static", "http://H:1/b/", ("http://h:1/b", "/static")),
    # Not under CDN_URL (another host, or no path): keys relative to the host, as before.
    ("http://origin/b/static", "https://cdn/b", ("http://origin", "/b/static")),
    ("http://h/static", "http://h", ("http://h", "/static")),
    ("http://h/bucket/static", "http://h/buck", ("http://h", "/bucket/static")),
    ("http://h/b/static", None, ("http://h", "/b/static")),
])
def test_the_prefix_is_taken_below_cdn_url(
        location: str, base: str | None, expected: tuple[str, str]) -> None:
    assert split_under_base(location, base) == expected
