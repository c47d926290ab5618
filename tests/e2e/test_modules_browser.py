"""Native ES modules from the CDN in Chromium: a page preloads its entry module
(``{{ modulepreload() }}``) and loads it through the import map of ``{{ importmap() }}``;
the entry imports a relative module, a ``/static/`` module and an import cycle, then a lazy
module by dynamic ``import()``; every module comes from the CDN origin (``deploy.py
serve``), integrity-checked, once each, and the last one writes the value the test reads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from pipeline import CDN
from tests.e2e.conftest import ROOT, stack_module
from tests.helpers import write_tree

MODULES = {
    "js/entry.js": b"""\
import { rel } from "./rel.js";
import { abs } from "/static/lib/abs.js";
import { ping } from "./cycle/a.js";
// import "./missing.js" (a comment: not a specifier)
const trail = [rel, abs, ping(2)];
const { finish } = await import("./lazy/late.js");
finish(trail);
""",
    "js/rel.js": b'export const rel = "rel";\n',
    "lib/abs.js": b'export const abs = "abs";\n',
    "js/cycle/a.js": b'import { pong } from "./b.js";\n'
                     b'export function ping(n) { return n ? pong(n - 1) : "cycle"; }\n',
    "js/cycle/b.js": b'import { ping } from "./a.js";\n'
                     b"export function pong(n) { return ping(n); }\n",
    "js/lazy/late.js": b"""\
import { rel } from "../rel.js";
const note = `import "./not-a-module.js" ${rel}`;
export function finish(trail) {
  document.documentElement.dataset.modules = [...trail, "late", note].join(",");
}
""",
}

PAGE = """<!doctype html>
<html><head>{{ importmap() }}{{ modulepreload("app") }}</head>
<body><script type="module">import "app";</script></body></html>"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def served_modules(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """The modules deployed from a foreign project into a folder served as the CDN."""
    project = tmp_path / "project"
    static = write_tree(project / "static", MODULES)
    target, manifest = tmp_path / "cdn", tmp_path / "cdn-manifest.json"
    deployed = subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), "--target-dir", str(target),
         "--manifest", str(manifest), "-q"],
        cwd=project, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert deployed.returncode == 0, deployed.stderr
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy.py"), "serve", "--dir", str(target), "--port", "0"],
        cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert " at http://127.0.0.1:" in line, line
        yield line.split(" at ")[1].split(";")[0], manifest, static
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


def test_a_module_graph_runs_from_the_cdn(served_modules: tuple[str, Path, Path],
                                          page: Any) -> None:
    cdn_url, manifest, static = served_modules
    app = Flask(__name__, static_folder=str(static))
    app.config.update(CDN_URL=cdn_url, CDN_MANIFEST=str(manifest),
                      CDN_IMPORTMAP={"app": "js/entry.js"})
    CDN(app)
    app.add_url_rule("/", "index", lambda: render_template_string(PAGE))
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.on("pageerror", lambda error: failed.append(f"error {error}"))
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url)
            if request.url.startswith(cdn_url) else None)
    with stack_module.serve(app) as site_url:
        page.goto(site_url + "/", wait_until="load")
        page.wait_for_function("document.documentElement.dataset.modules !== undefined")
        value = page.evaluate("document.documentElement.dataset.modules")
    assert value == 'rel,abs,cycle,late,import "./not-a-module.js" rel'
    assert failed == []
    # Each module once, the preloaded entry included: its integrity and CORS mode match.
    assert len(fetched) == len(set(fetched)) == len(MODULES), fetched
