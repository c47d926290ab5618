#!/usr/bin/env python3
"""Benchmark for issue 20, item 2: ``flask cdn check`` over many templates.

    python bench/bench_check.py [--templates N] [--rounds N] [--json PATH]

Generates N templates (default 500) of a blog-like app: each extends a base, ~2.1 KB
(Flask-Admin's 25 real templates average 2.4 KB) of markup with 8 literal static
references (``url_for('static'|'gallery.static', ...)``, ``picture()``, ``srcset()``)
and 2 dynamic ones, plus a blueprint with its own static
folder. Times, per round, :func:`pipeline.flaskext.check.check_templates` (read, parse,
walk, resolve against the folders and a manifest) and, for scale, Jinja's parser alone
over the same sources (``env.parse``, the floor of any check that parses). Reports the
median seconds of each (wall clock, and the check's CPU time, steadier on a shared
machine) and their ratio. Target: about one second for 500 templates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Blueprint, Flask

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import CDN
from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.flaskext.check import check_templates, template_sources
from pipeline.localfs import collect_files, scan_files

TARGET_SECONDS = 1.0

PAGE = """{{% extends "base.html" %}}
{{% block head %}}
<link rel=stylesheet href="{{{{ url_for('static', filename='css/page{i}.css') }}}}">
<link rel=stylesheet href="{{{{ url_for('gallery.static', filename='gallery.css') }}}}">
{{% endblock %}}
{{% block body %}}
<header class="site">{{{{ picture('img/photo{j}.jpg', 'Photo {i}', sizes='100vw') }}}}</header>
<main>
{{% for post in posts %}}
  <article id="post-{{{{ post.id }}}}">
    <h2>{{{{ post.title }}}}</h2>
    <img src="{{{{ url_for('static', filename=post.image) }}}}" alt="">
    <p>{{{{ post.summary | truncate(200) }}}}</p>
  </article>
{{% endfor %}}
<img srcset="{{{{ srcset('img/photo{j}.jpg', 'avif') }}}}" sizes="33vw" alt="">
<img src="{{{{ url_for('static', filename='img/icon{k}.svg') }}}}" alt="">
<img src="{{{{ url_for('gallery.static', filename='img/frame.png') }}}}" alt="">
{{{{ picture(hero.path, hero.alt) }}}}
</main>
{body}
<script src="{{{{ url_for('static', filename='js/page{i}.js') }}}}"></script>
{{% endblock %}}
"""

FILLER = "\n".join(
    f'<section class="s{n}"><p>Paragraph {n} {{{{ _("text") if _ else "text" }}}}</p>'
    f'{{% if user %}}<a href="{{{{ url_for("index") }}}}">{{{{ user.name }}}}</a>{{% endif %}}'
    "</section>" for n in range(8))


def build_site(root: Path, count: int) -> tuple[Flask, Path]:
    """An app with ``count`` page templates, its static files, and their manifest."""
    static, templates, gallery = root / "static", root / "templates", root / "gallery"
    files = {"img/frame.png": b"frame", "gallery.css": b"a{}"}
    for name, data in files.items():
        (gallery / name).parent.mkdir(parents=True, exist_ok=True)
        (gallery / name).write_bytes(data)
    for i in range(count):
        for name in (f"css/page{i}.css", f"js/page{i}.js", f"img/photo{i % 50}.jpg",
                     f"img/icon{i % 20}.svg"):
            (static / name).parent.mkdir(parents=True, exist_ok=True)
            (static / name).write_bytes(b"x")
    templates.mkdir(parents=True)
    (templates / "base.html").write_text(
        "<!doctype html><html><head>{% block head %}{% endblock %}</head>"
        "<body>{% block body %}{% endblock %}</body></html>\n")
    for i in range(count):
        (templates / f"page{i:04d}.html").write_text(
            PAGE.format(i=i, j=i % 50, k=i % 20, body=FILLER))
    app = Flask("bench_check", root_path=str(root))
    app.add_url_rule("/", "index", lambda: "")
    app.register_blueprint(Blueprint("gallery", "bench_check.gallery", static_folder=str(gallery),
                                     static_url_path="/gallery-static", url_prefix="/gallery"))
    CDN(app)
    manifest = build_manifest(
        collect_files(static) + scan_files(gallery, prefix="gallery/gallery-static/").files,
        prefix="static", cache=HashCache(None))
    manifest.save(root / "manifest.json")
    return app, root / "manifest.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pipeline.manifest import Manifest

    with tempfile.TemporaryDirectory() as tmp:
        app, manifest_path = build_site(Path(tmp), args.templates)
        manifest = Manifest.load(manifest_path)
        sources = list(template_sources(app))
        checks, parses, cpu = [], [], []
        report = None
        for _ in range(args.rounds):
            started, started_cpu = time.perf_counter(), time.process_time()
            report = check_templates(app, manifest=manifest)
            checks.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            started = time.perf_counter()
            for source, filename, name in sources:
                app.jinja_env.parse(source, name, filename)
            parses.append(time.perf_counter() - started)
    assert report is not None and not report.problems, report
    check_s, parse_s = statistics.median(checks), statistics.median(parses)
    cpu_s = statistics.median(cpu)
    result = {
        "templates": report.templates, "checked": report.checked,
        "dynamic": len(report.dynamic), "check_seconds": round(check_s, 3),
        "check_cpu_seconds": round(cpu_s, 3),
        "parse_only_seconds": round(parse_s, 3), "check_over_parse": round(check_s / parse_s, 2),
        "target_seconds": TARGET_SECONDS, "rounds": args.rounds,
    }
    size = sum(len(source) for source, _, _ in sources) / len(sources)
    result["average_template_bytes"] = round(size)
    print(f"flask cdn check: {report.templates} templates ({size / 1024:.1f} KB on average), "
          f"{report.checked} literal references "
          f"checked, {len(report.dynamic)} dynamic: {check_s:.3f} s, {cpu_s:.3f} s of CPU "
          f"(medians of {args.rounds}); "
          f"Jinja's parser alone {parse_s:.3f} s; ratio {check_s / parse_s:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if check_s <= TARGET_SECONDS * 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
