#!/usr/bin/env python3
"""Benchmark for issue 13: an app server that follows the bucket's manifest.

    python bench/bench_fleet.py [--rounds 200] [--files 1000] [--entries 10000] [--reloads 20]

moto's S3 server runs in its own process (bench/bench_ops.py's ``start_moto``), so
the CPU measured here is the app's alone.

1. ``url_for`` cost: three apps on one static folder of ``--files`` files, measured
   with bench/bench_url_for.py's workloads (a template of N ``url_for`` calls, and
   N calls from Python), back to back in alternating order every round: plain
   Flask, ``CDN_MANIFEST`` a local file, and ``CDN_MANIFEST=s3://bucket/static``
   in follow mode with its refresher thread running. Figures are medians of the
   per-round ratios to plain Flask. Target: follow <= 0.5x plain.
2. Refresh cost with a manifest of ``--entries`` entries: ``refresh_once`` when
   nothing changed (one conditional GET answered 304) and when a deploy changed it
   (a full GET, parse, validation, URL table, last-known-good write): wall ms and
   the process's CPU ms, medians. RSS before the app, after its start-up load, and
   after ``--reloads`` full reloads (a steady value means old tables are freed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flask import Flask

from bench.bench_ops import environment, start_moto
from bench.bench_url_for import asset_names, build_site, time_once, workloads
from pipeline import CDN
from pipeline.cli.main import main as deploy_main
from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import make_release

TARGET = 0.5
CDN_BASE = "https://cdn.example.com"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- 1. url_for ----------------------------------------------------------------------------


def make_apps(work: Path, endpoint: str, bucket: str, count: int) -> dict[str, Flask]:
    static, templates, _ = build_site(work, asset_names(count))
    manifest = work / "deployed-manifest.json"
    code = deploy_main(["--bucket", bucket, "--endpoint-url", endpoint, "--static-dir", str(static),
                        "--manifest", str(manifest), "--no-assets", "--no-hash-cache", "-q"])
    assert code == 0, "the deploy failed"

    def app(name: str, **config: Any) -> Flask:
        flask_app = Flask(name, static_folder=str(static), template_folder=str(templates))
        if config:
            flask_app.config.update(CDN_URL=CDN_BASE, **config)
            CDN(flask_app)
        return flask_app

    apps = {
        "plain": app("plain"),
        "file": app("file", CDN_MANIFEST=str(manifest)),
        "follow": app("follow", CDN_MANIFEST=f"s3://{bucket}/static", CDN_ENDPOINT_URL=endpoint,
                      CDN_MANIFEST_CACHE=str(work / "last-good.json")),
    }
    apps["follow"].test_client().get("/")  # the first request starts the refresher thread
    refresher = CDN.state(apps["follow"]).refresher
    assert refresher is not None and refresher.running
    return apps


def measure_url_for(apps: dict[str, Flask], work: Callable[[], object], rounds: int,
                    count: int) -> dict[str, float]:
    for _ in range(3):  # warm-up: template compilation, caches
        for app in apps.values():
            time_once(app, work)
    labels = list(apps)
    times: dict[str, list[float]] = {label: [] for label in labels}
    ratios: dict[str, list[float]] = {"file": [], "follow": []}
    for index in range(rounds):
        order = labels[index % 3:] + labels[:index % 3]
        this_round = {label: time_once(apps[label], work) for label in order}
        for label, seconds in this_round.items():
            times[label].append(seconds)
        for label, values in ratios.items():
            values.append(this_round[label] / this_round["plain"])
    row = {f"{label}_us_per_call": statistics.median(times[label]) / count * 1e6
           for label in labels}
    for label, values in ratios.items():
        row[f"{label}_ratio"] = statistics.median(values)
        row[f"{label}_ratio_p90"] = statistics.quantiles(values, n=10)[-1]
    return row


# --- 2. refresh ----------------------------------------------------------------------------


def big_manifest(entries: int, tag: str) -> Manifest:
    files = {}
    for i in range(entries):
        name = f"img/set{i % 40:02d}/photo-{i:05d}.jpg"
        digest = f"{i:08x}{tag}".ljust(64, "0")[:64]
        files[name] = Entry(key=f"static/img/set{i % 40:02d}/photo-{i:05d}.{digest[:12]}.jpg",
                            hash=digest, size=1000 + i, content_type="image/jpeg")
    return Manifest(files)


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def measure_refresh(work: Path, endpoint: str, client: Any, bucket: str, entries: int,
                    reloads: int) -> dict[str, Any]:
    documents = [make_release(big_manifest(entries, tag), {}).to_json() for tag in ("a", "b")]

    def publish(data: bytes) -> None:
        client.put_object(Bucket=bucket, Key="static/manifest.json", Body=data,
                          ContentType="application/json")

    publish(documents[0])
    gc.collect()
    rss_before = rss_mib()
    app = Flask("refresh")
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=f"s3://{bucket}/static",
                      CDN_ENDPOINT_URL=endpoint, CDN_MANIFEST_CACHE=str(work / "refresh-lkg.json"))
    start_wall, start_cpu = timed(lambda: CDN(app))
    refresher = CDN.state(app).refresher
    assert refresher is not None  # driven by hand below: no thread, nothing else running
    gc.collect()
    rss_loaded = rss_mib()
    unchanged = [timed(refresher.refresh_once) for _ in range(reloads)]
    assert refresher.status.failures == 0
    full = []
    for index in range(reloads):
        publish(documents[(index + 1) % 2])
        full.append(timed(refresher.refresh_once))
        assert refresher.status.failures == 0 and refresher.status.files == entries
    gc.collect()
    return {
        "entries": entries, "manifest_bytes": len(documents[0]),
        "startup_load_ms": start_wall, "startup_load_cpu_ms": start_cpu,
        "not_modified_ms": statistics.median(w for w, _ in unchanged),
        "not_modified_cpu_ms": statistics.median(c for _, c in unchanged),
        "full_reload_ms": statistics.median(w for w, _ in full),
        "full_reload_cpu_ms": statistics.median(c for _, c in full),
        "rss_before_mib": rss_before, "rss_after_load_mib": rss_loaded,
        "rss_after_reloads_mib": rss_mib(), "reloads": reloads,
    }


def run(rounds: int, files: int, entries: int, reloads: int) -> dict[str, Any]:
    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            work = Path(tmp)
            os.environ.update({k: v for k, v in environment(work).items() if k.startswith("AWS_")})
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            refresh = measure_refresh(work, endpoint, client, bucket, entries, reloads)
            apps = make_apps(work / "site", endpoint, bucket, files)
            names = asset_names(files)
            url_for = {label: measure_url_for(apps, job, rounds, files)
                       for label, job in workloads(names).items()}
            refresher = CDN.state(apps["follow"]).refresher
            assert refresher is not None
            refresher.stop()
    finally:
        server.kill()
        server.wait()
    return {"rounds": rounds, "files": files, "target": TARGET, "url_for": url_for,
            "refresh": refresh, "load": os.getloadavg()}


def report(results: dict[str, Any]) -> bool:
    print(f"url_for, {results['files']} distinct files, {results['rounds']} rounds, medians of "
          f"per-round ratios to plain Flask (target: follow <= {TARGET}):")
    ok = True
    for label, row in results["url_for"].items():
        ok = ok and row["follow_ratio"] <= TARGET
        print(f"  {label:8}  file {row['file_ratio']:.3f} (p90 {row['file_ratio_p90']:.3f})  "
              f"follow {row['follow_ratio']:.3f} (p90 {row['follow_ratio_p90']:.3f})  "
              f"plain {row['plain_us_per_call']:.2f} us  file {row['file_us_per_call']:.2f} us  "
              f"follow {row['follow_us_per_call']:.2f} us per call")
    r = results["refresh"]
    print(f"refresh, {r['entries']} entries ({r['manifest_bytes'] / 1e6:.1f} MB), medians of "
          f"{r['reloads']}:")
    for label, key in (("start-up load", "startup_load"), ("unchanged (304)", "not_modified"),
                       ("full reload", "full_reload")):
        print(f"  {label:16}  {r[key + '_ms']:8.1f} ms  cpu {r[key + '_cpu_ms']:8.1f} ms")
    print(f"  RSS {r['rss_before_mib']:.1f} MiB before, {r['rss_after_load_mib']:.1f} after the "
          f"load, {r['rss_after_reloads_mib']:.1f} after {r['reloads']} full reloads")
    print(f"load average {results['load'][0]:.2f}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.rounds, args.files, args.entries, args.reloads)
    ok = report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
