"""Issue 26's "done when": the stock ``npm create vite`` templates (vanilla-ts and react, the
versions pinned in :mod:`tests.vite_templates`) built by Vite into a foreign project's static
folder, beside a plain stylesheet of its own, deployed by the installed ``cdn-deploy`` (no
flag), served by the installed ``cdn-deploy serve`` as the CDN origin, and loaded in Chromium
through a small Flask app's ``vite_tags()``; then the same app against Vite's dev server,
where an edit to a module shows in the page without restarting Flask."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.artifacts import save_screenshot
from tests.e2e.conftest import stack_module, visit
from tests.helpers import write_tree
from tests.installed import InstalledTool
from tests.vite_templates import TEMPLATES, copy_sources, vite_build

#: The deploy goes to a local folder target: the S3 backend the e2e fixtures start is unused,
#: so one backend is enough (the S3 side of Vite deploys is tests/test_vite.py's).
pytestmark = pytest.mark.moto_only(reason="folder target only: no S3 server is used")

APP = '''\
"""A small Flask app whose page loads a Vite entry (its settings come from the environment)."""
import os
from pathlib import Path

from flask import Flask, render_template_string
from markupsafe import Markup

from pipeline import CDN

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="icon" href="{{ url_for('static', filename='dist/favicon.svg') }}">
{{ vite_react_refresh() }}
{{ vite_tags(entry) }}
<link rel="stylesheet" href="{{ url_for('static', filename='css/site.css') }}">
</head><body><div hidden>{{ sprite }}</div>
<div id="app"></div><div id="root"></div><footer>site footer</footer></body></html>
"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env("SITE")
    CDN(app)
    entry = os.environ["SITE_ENTRY"]
    # The template's icon sprite, inline: <use> only loads same-origin documents.
    sprite = Markup(Path(__file__).with_name("sprite.svg").read_text())
    app.add_url_rule("/", "index",
                     lambda: render_template_string(PAGE, entry=entry, sprite=sprite))
    return app
'''
OWN_FILES = {"css/site.css": b"footer{background:url(../img/dot.svg)}\n",
             "img/dot.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='2' height='2'/>"}


def write_app(project: Path, sources: Path) -> None:
    (project / "app.py").write_text(APP)
    (project / "sprite.svg").write_bytes((sources / "public/icons.svg").read_bytes())


def load_app(project: Path, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Any:
    """``project/app.py``'s app, configured as its ``SITE_*`` environment says."""
    for name, value in settings.items():
        monkeypatch.setenv(f"SITE_{name}", value)
    spec = importlib.util.spec_from_file_location(f"vite_site_{id(settings)}", project / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app()


def static_closure(vite: dict[str, Any], name: str) -> list[str]:
    """The files an entry imports statically, transitively (the test's own walk of Vite's
    manifest, independent of the package's)."""
    seen: set[str] = set()
    files: list[str] = []

    def walk(key: str) -> None:
        for child in vite[key].get("imports", []):
            if child not in seen:
                seen.add(child)
                walk(child)
                files.append(vite[child]["file"])

    walk(name)
    return files


@pytest.fixture(params=sorted(TEMPLATES))
def template(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def deployed(installed: InstalledTool, project: Path, template: str, tmp_path: Path
             ) -> Iterator[tuple[Path, str]]:
    """The template built into ``project/static/dist``, deployed and served as the CDN."""
    sources = copy_sources(template, tmp_path / "frontend")
    vite_build(sources, project / "static" / "dist")
    write_tree(project / "static", OWN_FILES)
    write_app(project, sources)
    done = installed.run("cdn-deploy", "-q", cwd=project)
    assert done.returncode == 0, done.stderr
    with installed.serving(cwd=project) as served:
        yield project, served.url


def test_the_production_page_loads_every_asset_from_the_cdn_with_sri(
    deployed: tuple[Path, str], template: str, page: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, cdn = deployed
    dist = project / "static" / "dist"
    vite = json.loads((dist / ".vite/manifest.json").read_text())
    ours = json.loads((project / "build/cdn-manifest.json").read_text())
    bucket = project / "build" / "cdn"
    # 0 files fingerprinted twice: Vite's files keep their names, byte for byte.
    named = {path for chunk in vite.values()
             for path in (chunk["file"], *chunk.get("css", []), *chunk.get("assets", []))}
    for path in named:
        assert ours["files"][f"dist/{path}"]["key"] == f"static/dist/{path}"
        assert (bucket / "static/dist" / path).read_bytes() == (dist / path).read_bytes()
    stored = {p.relative_to(bucket / "static/dist").as_posix()
              for p in (bucket / "static/dist/assets").iterdir()}
    # Beside them only the precompressed siblings (issue 23) their manifest entries name.
    siblings = {sibling["key"].removeprefix("static/dist/") for path in named
                for sibling in (ours["files"][f"dist/{path}"].get("encodings") or {}).values()}
    assert siblings and stored == named | siblings
    app = load_app(project, monkeypatch, ENTRY=TEMPLATES[template], CDN_URL=cdn,
                   CDN_MANIFEST=str(project / "build/cdn-manifest.json"), CDN_STRICT="true")
    with stack_module.serve(app) as site:
        requests, failed, errors = visit(page, site + "/")
        page.wait_for_function("document.querySelector('h1')?.textContent === 'Get started'")
        save_screenshot(page, f"vite-{template}-production")
        preloads = page.evaluate("[...document.querySelectorAll('link[rel=modulepreload]')]"
                                 ".map(l => l.href)")
        if template == "vanilla-ts":
            page.wait_for_function("document.documentElement.dataset.lazy === 'loaded'")
    assert [url for url in requests if url.startswith(site)] == [site + "/"]  # only the page
    assert failed == [] and errors == []  # no SRI, CORS or loading error
    entry = TEMPLATES[template]
    assert preloads == [f"{cdn}/static/dist/{path}" for path in static_closure(vite, entry)]
    if template == "vanilla-ts":
        assert preloads  # a shared chunk (counter.ts, also imported by the second entry)
        lazy = vite["src/lazy.ts"]["file"]
        assert f"{cdn}/static/dist/{lazy}" in requests  # loaded on demand, not preloaded
    site_css = ours["files"]["css/site.css"]["key"]
    assert f"{cdn}/{site_css}" in requests and any("/static/img/dot." in u for u in requests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dev_server(template: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Vite's dev server on a free loopback port, serving a copy of the template."""
    sources = copy_sources(template, tmp_path / "frontend")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    log = tmp_path / "vite.log"
    with log.open("wb") as output:  # a file, not a pipe: nothing blocks on a full buffer
        server = subprocess.Popen(
            ["npx", "vite", "--port", str(port), "--strictPort", "--host", "127.0.0.1"],
            cwd=sources, env={**os.environ, "VITE_DEV_ORIGIN": origin},
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)  # npx starts node as a child: stop the whole group
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while True:
            assert server.poll() is None, log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"{origin}/@vite/client", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Vite's dev server did not start in 60 s"
            time.sleep(0.2)
        yield sources, origin
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_an_edit_shows_through_hot_reload_without_a_flask_restart(
    dev_server: tuple[Path, str], template: str, project: Path, page: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources, origin = dev_server
    write_app(project, sources)
    app = load_app(project, monkeypatch, ENTRY=TEMPLATES[template], CDN_VITE_DEV_SERVER=origin)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    with stack_module.serve(app) as site:
        # An edit before Vite's client holds its websocket is seen only as a full reload.
        with page.expect_console_message(lambda message: message.text == "[vite] connected.",
                                         timeout=30_000):
            page.goto(site + "/", wait_until="load")
        page.wait_for_function("document.querySelector('h1')?.textContent === 'Get started'",
                               timeout=30_000)
        page.evaluate("window.__beforeEdit = 'kept'")
        module = sources / ("src/App.jsx" if template == "react" else "src/main.ts")
        module.write_text(module.read_text().replace("<h1>Get started</h1>",
                                                     "<h1>Edited while running</h1>"))
        page.wait_for_function(
            "document.querySelector('h1')?.textContent === 'Edited while running'",
            timeout=30_000)
        save_screenshot(page, f"vite-{template}-after-edit")
        kept = page.evaluate("window.__beforeEdit")
    assert errors == []
    if template == "react":
        # Fast Refresh swapped the component in place (the preamble from
        # vite_react_refresh() is what enables it): no page reload.
        assert kept == "kept"
