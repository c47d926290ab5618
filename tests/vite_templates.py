"""Stock ``npm create vite`` templates for the browser tests, made once per version pair.

``npm create vite@CREATE_VITE -- --template T`` writes the template; its Vite (and, for react,
``@vitejs/plugin-react`` and React) are pinned to exact versions, ``npm install`` runs, and
the result is kept in a cache folder outside the repository, keyed by the versions, so a
machine (or CI) downloads it once. Each test copies the sources (``node_modules`` linked,
never edited), adds the following, and builds or serves its copy:

* a ``vite.config`` with ``build.manifest: true`` and ``base: './'`` (the backend-integration
  settings; see the README), ``server.origin`` from ``VITE_DEV_ORIGIN`` for the dev server;
* for vanilla-ts, a second entry sharing ``counter.ts`` with the first (so the first entry's
  static closure holds a shared chunk) and a module the first entry imports dynamically;
* the templates' ``<use href="/icons.svg#...">`` become ``href="#..."`` (the page inlines the
  sprite): SVG ``<use>`` loads same-origin documents only, so no CDN can serve that sprite,
  and a root path names the app's origin, not the CDN.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CREATE_VITE = "9.3.0"
VITE = "8.4.0"
PLUGIN_REACT = "6.3.0"
REACT = "19.3.1"
TEMPLATES = {"vanilla-ts": "src/main.ts", "react": "src/main.jsx"}

_VANILLA_CONFIG = """\
import { defineConfig } from 'vite'

export default defineConfig({
  base: './',
  server: { origin: process.env.VITE_DEV_ORIGIN },
  build: {
    manifest: true,
    rollupOptions: { input: ['src/main.ts', 'src/second.ts'] },
  },
})
"""
_REACT_CONFIG = """\
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

export default defineConfig({
  plugins: [react()],
  base: './',
  server: { origin: process.env.VITE_DEV_ORIGIN },
  build: { manifest: true, rollupOptions: { input: 'src/main.jsx' } },
})
"""
_ADDED = {
    "vanilla-ts": {
        "vite.config.ts": _VANILLA_CONFIG,
        "src/second.ts": "import { setupCounter } from './counter.ts'\n\n"
                         "setupCounter(document.querySelector<HTMLButtonElement>('#second')!)\n",
        "src/lazy.ts": "export function mark() {\n"
                       "  document.documentElement.dataset.lazy = 'loaded'\n}\n",
    },
    "react": {"vite.config.js": _REACT_CONFIG},
}
_MAIN_TAIL = "\nimport('./lazy.ts').then((lazy) => lazy.mark())\n"


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "flask-cdn-pipeline-tests" / f"create-vite-{CREATE_VITE}_vite-{VITE}"


def template_project(template: str) -> Path:
    """The installed template (made now if the cache lacks it; one maker at a time)."""
    root = cache_root()
    done = root / template
    if (done / "node_modules").is_dir():
        return done
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test worker may be making it
        if not (done / "node_modules").is_dir():
            _make(template, done)
    return done


def _make(template: str, done: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=done.parent, prefix=f".{template}-"))
    _npm(["npm", "create", "-y", f"vite@{CREATE_VITE}", "app", "--", "--template", template,
          "--no-interactive"], cwd=work)
    app = work / "app"
    _pin(app / "package.json")
    _npm(["npm", "install", "--no-audit", "--no-fund"], cwd=app)
    shutil.rmtree(done, ignore_errors=True)
    app.rename(done)
    shutil.rmtree(work, ignore_errors=True)


def _pin(package_json: Path) -> None:
    """Exact versions instead of the template's ranges; no linter (not part of the app)."""
    package = json.loads(package_json.read_text())
    pins = {"vite": VITE, "@vitejs/plugin-react": PLUGIN_REACT, "react": REACT,
            "react-dom": REACT}
    for group in ("dependencies", "devDependencies"):
        deps = package.get(group, {})
        deps.pop("oxlint", None)
        for name in deps:
            deps[name] = pins.get(name, deps[name])
    package_json.write_text(json.dumps(package, indent=2) + "\n")


def _npm(args: list[str], *, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")


def copy_sources(template: str, into: Path) -> Path:
    """A copy of the template to build or edit, its ``node_modules`` linked to the cache's."""
    source = template_project(template)
    shutil.copytree(source, into, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (into / "node_modules").symlink_to(source / "node_modules", target_is_directory=True)
    for name, text in _ADDED[template].items():
        (into / name).write_text(text)
    if template == "vanilla-ts":
        with (into / "src/main.ts").open("a") as main:
            main.write(_MAIN_TAIL)
    for module in (into / "src").iterdir():
        if module.suffix in (".ts", ".jsx"):
            module.write_text(module.read_text().replace('href="/icons.svg#', 'href="#'))
    return into


def vite_build(sources: Path, out_dir: Path) -> None:
    """``npx vite build`` of ``sources`` into ``out_dir``."""
    _npm(["npx", "vite", "build", "--outDir", str(out_dir), "--emptyOutDir"], cwd=sources)
