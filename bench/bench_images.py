#!/usr/bin/env python3
"""Benchmark for issue 14 item 5: ``/images/<path>`` vs a plain Flask file route.

    python bench/bench_images.py [--rounds N] [--batches N] [--requests N] [--json PATH]

One Flask app, one image file, two routes:

* ``plain``: ``/plain/<path:filename>`` returning ``send_from_directory(folder, filename)``
  (Flask alone: safe join, MIME, ETag/Last-Modified, 304, Range);
* ``images``: ``/images/<path:filename>`` from :func:`pipeline.images.views.images_blueprint`
  with ``IMAGES_DIR`` = the same folder (every safety check, nosniff, CSP).

Two workloads through the Flask test client (responses read whole and closed):
``200`` a plain GET, ``304`` a GET with the route's own ``If-None-Match``. A round runs
``--batches`` batches of ``--requests`` requests per route and workload, the routes
alternating batch by batch (the first route changes every round); a round's figure is
median(images batches) / median(plain batches); the result is the median of the rounds'
ratios (min and max beside it). The machine is shared and noisy: read ratios, not times.
Target: <= 1.05 for both.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask, Response, send_from_directory
from flask.testing import FlaskClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.images.views import images_blueprint

TARGET = 1.05
NAME = "photos/cat.png"
ROUTES = {"plain": "/plain/", "images": "/images/"}


def make_app(folder: Path) -> Flask:
    """The app under test: both routes, the same folder, the same file."""
    app = Flask(__name__)
    app.config.update(IMAGES_DIR=folder, IMAGES_CACHE_MAX_AGE=3600)
    app.register_blueprint(images_blueprint(current_user=lambda: None))

    @app.route("/plain/<path:filename>")
    def plain(filename: str) -> Response:
        return send_from_directory(folder, filename, max_age=3600)

    return app


def time_batch(client: FlaskClient, url: str, headers: dict[str, str], count: int,
               expect: int) -> float:
    """CPU seconds of this process for ``count`` GETs of ``url``; every answer must have
    status ``expect``."""
    gc.collect()
    start = time.process_time()
    for _ in range(count):
        response = client.get(url, headers=headers, buffered=True)
        if response.status_code != expect:
            raise SystemExit(f"{url}: {response.status_code}, expected {expect}")
    return time.process_time() - start


def run(rounds: int, batches: int, requests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        folder = Path(tmp)
        (folder / NAME).parent.mkdir(parents=True)
        (folder / NAME).write_bytes(bytes(range(256)) * 80)  # 20 KiB
        client = make_app(folder).test_client()
        etags = {route: client.get(prefix + NAME, buffered=True).headers["ETag"]
                 for route, prefix in ROUTES.items()}
        workloads = {
            "200": (lambda route: {}, 200),
            "304": (lambda route: {"If-None-Match": etags[route]}, 304),
        }
        for route, prefix in ROUTES.items():  # warm up both (imports, caches, branch paths)
            for make_headers, expect in workloads.values():
                time_batch(client, prefix + NAME, make_headers(route), 200, expect)
        results: dict[str, object] = {}
        for workload, (make_headers, expect) in workloads.items():
            ratios, medians = [], []
            for number in range(rounds):
                order = list(ROUTES) if number % 2 == 0 else list(reversed(ROUTES))
                times: dict[str, list[float]] = {route: [] for route in ROUTES}
                for _ in range(batches):
                    for route in order:
                        times[route].append(time_batch(
                            client, ROUTES[route] + NAME, make_headers(route), requests, expect))
                median = {route: statistics.median(values) for route, values in times.items()}
                medians.append(median)
                ratios.append(median["images"] / median["plain"])
            results[workload] = {
                "ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                "us_per_request": {
                    route: statistics.median(m[route] for m in medians) / requests * 1e6
                    for route in ROUTES
                },
                "ratios": ratios,
            }
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = run(args.rounds, args.batches, args.requests)
    print(f"{args.rounds} rounds of {args.batches}x{args.requests} requests per route")
    print(f"{'workload':<8} {'images/plain':>12} {'range':>13} {'plain us':>9} "
          f"{'images us':>9}  target")
    for workload, figures in results.items():
        assert isinstance(figures, dict)
        us = figures["us_per_request"]
        verdict = "pass" if figures["ratio"] <= TARGET else "FAIL"
        print(
            f"{workload:<8} {figures['ratio']:>11.3f}x "
            f"{figures['min']:>6.3f}-{figures['max']:<6.3f}"
            f" {us['plain']:>9.1f} {us['images']:>9.1f}  <= {TARGET}: {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
