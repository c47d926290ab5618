#!/usr/bin/env python3
"""Benchmark for issue 3: ``url_for('static', ...)`` with the CDN extension vs plain Flask.

    python bench/bench_url_for.py [--rounds N] [--files N] [--json PATH]

Two apps in one process share one static folder of N files (default 1,000):
``plain`` is Flask alone (``url_for`` builds ``/static/...`` through Werkzeug's
routing), ``cdn`` has ``CDN(app)`` enabled with a manifest of the same files. Two
workloads run on each app inside a request context:

* ``template``: ``render_template`` of a cached template holding N distinct
  ``{{ url_for('static', filename=...) }}`` calls (autoescaped, as .html is);
* ``python``: N calls of ``flask.url_for('static', filename=...)`` from Python.

Every round times both apps back to back in alternating order; the figure is the
median over rounds of the per-round ratio cdn/plain (the machine is shared and
noisy, so a ratio within one round is steadier than separate medians). Target: <= 0.6.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, render_template, url_for

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import CDN
from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files

TARGET = 0.6


def asset_names(count: int) -> list[str]:
    """Distinct names in a few folders, some with characters that need quoting."""
    names = []
    for i in range(count):
        folder = ("img", "img/gallery", "css", "js", "fonts")[i % 5]
        extension = (".jpg", ".png", ".css", ".js", ".woff2")[i % 5]
        stem = f"asset {i:04d}" if i % 7 == 0 else f"asset-{i:04d}"
        names.append(f"{folder}/{stem}{extension}")
    return names


def build_site(root: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """Static folder, its manifest, and a template with one url_for per name."""
    static, templates = root / "static", root / "templates"
    for index, name in enumerate(names):
        path = static / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"asset {index}\n".encode())
    manifest_path = root / "cdn-manifest.json"
    build_manifest(collect_files(static), prefix="static", cache=HashCache(None)).save(
        manifest_path
    )
    templates.mkdir()
    lines = [f"<img src=\"{{{{ url_for('static', filename={name!r}) }}}}\">" for name in names]
    (templates / "page.html").write_text("<body>\n" + "\n".join(lines) + "\n</body>\n")
    return static, templates, manifest_path


def make_apps(static: Path, templates: Path, manifest_path: Path) -> dict[str, Flask]:
    plain = Flask("plain", static_folder=str(static), template_folder=str(templates))
    cdn = Flask("cdn", static_folder=str(static), template_folder=str(templates))
    cdn.config.update(CDN_URL="https://cdn.example.com", CDN_MANIFEST=str(manifest_path))
    CDN(cdn)
    assert cdn.extensions["cdn"].enabled, "the CDN app must be in CDN mode"
    return {"plain": plain, "cdn": cdn}


def workloads(names: list[str]) -> dict[str, Callable[[], object]]:
    def template() -> object:
        return render_template("page.html")

    def python() -> object:
        return [url_for("static", filename=name) for name in names]

    return {"template": template, "python": python}


def time_once(app: Flask, work: Callable[[], object]) -> float:
    with app.test_request_context("/"):
        gc.collect()
        start = time.perf_counter()
        work()
        return time.perf_counter() - start


def check_outputs(apps: dict[str, Flask], names: list[str]) -> None:
    """Guard against measuring the wrong thing: CDN URLs in one app, local in the other."""
    for label, prefix in (("plain", "/static/"), ("cdn", "https://cdn.example.com/static/")):
        with apps[label].test_request_context("/"):
            html = render_template("page.html")
            urls = [url_for("static", filename=name) for name in names]
        assert all(url.startswith(prefix) for url in urls), label
        assert html.count(prefix) == len(names), label


def run(rounds: int, count: int) -> dict[str, object]:
    names = asset_names(count)
    with tempfile.TemporaryDirectory() as tmp:
        apps = make_apps(*build_site(Path(tmp), names))
        check_outputs(apps, names)
        results: dict[str, object] = {"files": count, "rounds": rounds, "target": TARGET}
        for label, work in workloads(names).items():
            results[label] = measure(apps, work, rounds, count)
    return results


def measure(apps: dict[str, Flask], work: Callable[[], object], rounds: int,
            count: int) -> dict[str, float]:
    for _ in range(3):  # warm-up: template compilation, caches, adapters
        for app in apps.values():
            time_once(app, work)
    ratios: list[float] = []
    times: dict[str, list[float]] = {"plain": [], "cdn": []}
    for index in range(rounds):
        order = ("plain", "cdn") if index % 2 == 0 else ("cdn", "plain")
        this_round = {label: time_once(apps[label], work) for label in order}
        for label, seconds in this_round.items():
            times[label].append(seconds)
        ratios.append(this_round["cdn"] / this_round["plain"])
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_p90": statistics.quantiles(ratios, n=10)[-1],
        "plain_us_per_call": statistics.median(times["plain"]) / count * 1e6,
        "cdn_us_per_call": statistics.median(times["cdn"]) / count * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.rounds, args.files)
    print(f"{args.files} distinct url_for('static') calls, {args.rounds} rounds, "
          f"median of per-round ratios cdn/plain (target <= {TARGET}):")
    ok = True
    for label in ("template", "python"):
        row = results[label]
        assert isinstance(row, dict)
        ok = ok and row["ratio_median"] <= TARGET
        print(
            f"  {label:8}  ratio {row['ratio_median']:.3f} (p90 {row['ratio_p90']:.3f})  "
            f"plain {row['plain_us_per_call']:.2f} us/call  "
            f"cdn {row['cdn_us_per_call']:.2f} us/call"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
