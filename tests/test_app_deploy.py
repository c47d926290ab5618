"""Deploying an app, not a folder (issue 20): the app's static folder and every blueprint's
(Flask-Admin's inside its installed package, one beside the app's), each under the URL
path Flask serves it at, in one manifest; url_for gives CDN URLs for all of them."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from pipeline.cli.main import main
from tests.app_project import write_blog_project
from tests.helpers import write_tree
from tests.installed import InstalledTool

ADMIN_CSS = "admin/static/admin/css/bootstrap4/admin.css"
GALLERY_CSS = "gallery/gallery-static/gallery.css"
APP_FILES = {"css/site.css", "img/cat.png", "img/raw/cat.psd", "js/app.js"}


@pytest.fixture
def blog(project: Path) -> Path:
    return write_blog_project(project)


def manifest_files(project: Path) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = json.loads(
        (project / "build" / "cdn-manifest.json").read_text())["files"]
    return files


def stored(project: Path, files: dict[str, dict[str, str]], name: str) -> bytes:
    return (project / "build" / "cdn" / files[name]["key"]).read_bytes()


def check_app_deploy(project: Path) -> dict[str, dict[str, str]]:
    """Every folder in one manifest, each object stored, CSS rewritten inside its folder."""
    files = manifest_files(project)
    assert files.keys() >= APP_FILES
    assert {GALLERY_CSS, "gallery/gallery-static/img/frame.png", ADMIN_CSS} <= files.keys()
    assert all(name.startswith(("admin/static/", "gallery/gallery-static/")) or name in APP_FILES
               for name in files)
    for entry in files.values():
        assert (project / "build" / "cdn" / entry["key"]).is_file()
    gallery = stored(project, files, GALLERY_CSS).decode()
    frame = Path(files["gallery/gallery-static/img/frame.png"]["key"]).name
    cat = Path(files["img/cat.png"]["key"]).name
    # Relative: within the blueprint's folder; root-absolute /static/...: the app's folder.
    assert f"url(img/{frame})" in gallery
    assert f"url(../../img/{cat})" in gallery
    fonts = stored(project, files, "admin/static/bootstrap/bootstrap4/css/font-awesome.min.css")
    assert re.search(rb"\.\./fonts/fontawesome-webfont\.[0-9a-f]{12}\.woff2", fonts)
    return files


def test_flask_cdn_deploy_deploys_every_static_folder_of_the_app(
        installed: InstalledTool, blog: Path) -> None:
    result = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "deploy", "--json",
                           cwd=blog)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    files = check_app_deploy(blog)
    # Every file once, plus the precompressed siblings its manifest entry names (issue 23).
    siblings = sum(len(entry.get("encodings") or {}) for entry in files.values())
    assert siblings > 0 and report["sibling_uploads"] == siblings
    assert report["uploaded"] == len(files) + siblings and len(files) == report["files"]


def test_cdn_deploy_app_deploys_the_same_as_flask_cdn_deploy(
        installed: InstalledTool, blog: Path) -> None:
    first = installed.run("cdn-deploy", "--app", "blog:create_app", "--json", cwd=blog)
    assert first.returncode == 0, first.stderr
    files = check_app_deploy(blog)

    again = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "deploy", "--json",
                          cwd=blog)

    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["uploaded"] == 0 and report["new_release"] is False
    assert manifest_files(blog) == files


def test_the_table_app_key_deploys_the_app(installed: InstalledTool, blog: Path) -> None:
    (blog / "pyproject.toml").write_text('[tool.flask-cdn-pipeline]\napp = "blog:create_app"\n')

    result = installed.run("cdn-deploy", "--json", cwd=blog)

    assert result.returncode == 0, result.stderr
    check_app_deploy(blog)
    shown = installed.run("cdn-deploy", "--show-config", "--json", cwd=blog)
    assert json.loads(shown.stdout)["settings"]["app"]["value"] == "blog:create_app"


def test_a_folder_deploy_without_an_app_keeps_its_manifest_names(
        installed: InstalledTool, blog: Path) -> None:
    result = installed.run("cdn-deploy", "--json", cwd=blog)

    assert result.returncode == 0, result.stderr
    assert set(manifest_files(blog)) == APP_FILES


@pytest.fixture
def blog_module(blog: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The project's ``blog`` module imported here (with this checkout's ``pipeline``)."""
    monkeypatch.syspath_prepend(str(blog))
    monkeypatch.chdir(blog)
    try:
        yield importlib.import_module("blog")
    finally:
        sys.modules.pop("blog", None)


def test_url_for_gives_cdn_urls_for_every_deployed_folder(
        blog_module: object, blog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --no-precompress: brotli 11 over Flask-Admin's 21 MB of CSS and JS is ~30 s of CPU,
    # and url_for names the objects, never their siblings (the installed deploys above
    # check the siblings of this same app).
    assert main(["--app", "blog:create_app", "-q", "--no-precompress"]) == 0
    monkeypatch.setenv("BLOG_CDN_URL", "https://cdn.example.com")
    monkeypatch.setenv("BLOG_CDN_STRICT", "true")  # a name missing from the manifest raises
    app: Flask = blog_module.create_app()  # type: ignore[attr-defined]
    client = app.test_client()
    files = manifest_files(blog)

    admin = client.get("/admin/").text
    gallery = client.get("/gallery/").text

    links = re.findall(r'(?:src|href)="([^"]+)"', admin + gallery)
    assets = [url for url in links if not url.rstrip("/").endswith(("/admin", "/gallery"))]
    assert len(assets) >= 12
    assert all(url.startswith("https://cdn.example.com/static/") for url in assets), assets
    assert "https://cdn.example.com/" + files[ADMIN_CSS]["key"] + "?v=" in admin
    assert "https://cdn.example.com/" + files[GALLERY_CSS]["key"] in gallery


def test_two_folders_served_at_one_url_path_are_refused_before_anything_is_written(
        blog: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A blueprint with a folder named static and neither url_prefix nor static_url_path:
    # Flask registers /static/<path:filename> for it too, and never serves its files.
    source = (blog / "blog.py").read_text()
    (blog / "blog.py").write_text(source.replace(
        "    Admin(app,",
        "    app.register_blueprint(Blueprint('shadow', __name__, static_folder=str(HERE / "
        "'shadow' / 'static')))\n    Admin(app,"))
    write_tree(blog / "shadow" / "static", {"x.css": b"a{}"})
    monkeypatch.chdir(blog)
    monkeypatch.syspath_prepend(str(blog))
    try:
        code = main(["--app", "blog:create_app"])
    finally:
        sys.modules.pop("blog", None)

    err = capsys.readouterr().err
    assert code == 2
    assert "the app's static folder" in err and "blueprint 'shadow'" in err
    assert "'/static'" in err and err.count("\n") == 1
    assert not (blog / "build" / "cdn").exists()


def test_a_symlink_out_of_a_blueprint_folder_is_refused(
        blog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    secret = write_tree(tmp_path / "elsewhere", {"secret.txt": b"password"})
    (blog / "gallery_assets" / "leak.txt").symlink_to(secret / "secret.txt")
    monkeypatch.chdir(blog)
    monkeypatch.syspath_prepend(str(blog))
    try:
        code = main(["--app", "blog:create_app"])
    finally:
        sys.modules.pop("blog", None)

    assert code == 2
    assert "leak.txt" in capsys.readouterr().err
    assert not (blog / "build" / "cdn").exists()


def test_an_app_that_cannot_be_loaded_is_one_error_line(
        installed: InstalledTool, blog: Path) -> None:
    result = installed.run("cdn-deploy", "--app", "nosuchmodule:create_app", cwd=blog)

    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load the app 'nosuchmodule:create_app'")
    assert "Traceback" not in result.stderr


def test_flask_cdn_deploy_refuses_a_second_app(
        blog_module: object, capsys: pytest.CaptureFixture[str]) -> None:
    app: Flask = blog_module.create_app()  # type: ignore[attr-defined]

    result = app.test_cli_runner().invoke(args=["cdn", "deploy", "--app", "other:app"])

    assert result.exit_code == 2
    assert "leave out --app" in result.output
