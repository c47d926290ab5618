#!/usr/bin/env python3
"""Benchmark for issue 14 (scale): many small files, against aws s3 sync and at 10k/100k.

    python bench/bench_scale.py                        # every section (~25 min on 2 busy cores)
    python bench/bench_scale.py --only tiny --tiny-files 20000 --rounds 1
    python bench/bench_scale.py --only folder,phases,flask --sizes 10000,100000

Sections (whole processes unless said; trees are generated under the temp dir and kept
between runs, never committed):

* ``tiny``: N tiny files (default 20,000, 100-2,000 bytes) to moto in its own process:
  first deploy vs ``aws s3 sync`` vs the raw 16-thread PUT loop, then the no-change
  re-run of each (the deploy with ``--no-hash-cache``: every file re-hashed); rounds rotated.
* ``folder``: for each size, ``deploy.py --target-dir`` (a folder laid out like the bucket,
  so the client's own cost without a server) first run, and no-change re-runs with a warm
  hash cache and with none; peak RSS through ``/usr/bin/time -v``.
* ``phases``: in one process per size, the cost per file of the walk, fingerprinting
  (cold), planning against a listing of every key, and making + encoding the release.
* ``flask``: an app with ``CDN(app)`` loading a manifest of N entries: start-up time and
  RSS (vs the same app without the extension), then ``bench_url_for.py --files N``.

Writes ``bench/results/bench_scale-latest.json``; prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import bench_deploy as bd

PYTHON = sys.executable
SEED = 20261129
MAX_FILES = 200_000
TIMEOUT = 3600.0


def tree(count: int) -> Path:
    """A deterministic tree of ``count`` small files (folders of <= 200), built once."""
    if not 1 <= count <= MAX_FILES:
        raise SystemExit(f"--sizes/--tiny-files must be 1..{MAX_FILES}")
    root = (
        Path(os.environ.get("CDN_BENCH_CACHE", tempfile.gettempdir()))
        / f"cdn-bench-small-{count}-s{SEED}"
    )
    stamp = root.with_suffix(".done")
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(SEED)
    kinds = (".png", ".jpg", ".svg", ".js", ".txt", ".woff2", ".gif", ".webp")
    for i in range(count):
        path = (
            root
            / f"d{i // 4000:02d}"
            / f"s{(i // 200) % 20:02d}"
            / f"file-{i:06d}{kinds[i % len(kinds)]}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(100, 2000)))
    stamp.write_text(str(count))
    return root


class Scale:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="cdn-bench-scale-"))
        self.env = bd.child_env(self.scratch)
        self.results: dict[str, Any] = {}

    def log(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def exec(self, name: str, cmd: list[str], *, rss: bool = False) -> bd.Run:
        log = self.scratch / f"{name}.log"
        report = self.scratch / f"{name}.time"
        if rss:
            cmd = [bd.TIME_BIN, "-v", "-o", str(report), *cmd]
        busy = bd.machine_busy_s()
        run = bd.run_process(name, cmd, env=self.env, cwd=self.scratch, log=log, timeout=TIMEOUT)
        run.foreign_cpu_s = max(0.0, bd.machine_busy_s() - busy - run.cpu_s)
        bd.check_ok(run, log)
        if rss:
            run.time_v_maxrss_kib = bd._time_maxrss_kib(report)
        self.log(
            f"  {name:<34} {run.wall_s:8.2f}s wall {run.cpu_s:7.2f}s cpu "
            f"{run.foreign_cores:4.1f} other cores"
            + (f" {run.time_v_maxrss_kib / 1024:7.1f} MiB peak" if run.time_v_maxrss_kib else "")
        )
        return run

    def deploy(self, static: Path, *extra: str) -> list[str]:
        return [PYTHON, str(REPO / "deploy.py"), "--static-dir", str(static), "--no-assets", "-q",
                *extra]

    # -- sections ------------------------------------------------------------------------------

    def tiny(self) -> None:
        count = self.args.tiny_files
        static = tree(count)
        server = bd.MotoServer(self.scratch, self.env)
        server.start()
        aws = bd.resolve_aws()
        rows: list[dict[str, float]] = []
        try:
            for r in range(self.args.rounds):
                b = {k: f"scale-{r}-{k}" for k in ("deploy", "aws", "raw")}
                for bucket in b.values():
                    server.create_bucket(bucket)
                target = ["--endpoint-url", server.endpoint]
                contenders = {
                    "deploy": self.deploy(
                        static,
                        "--bucket",
                        b["deploy"],
                        *target,
                        "--no-hash-cache",
                        "--manifest",
                        str(self.scratch / f"m-{r}.json"),
                    ),
                    "aws_sync": [
                        *aws,
                        "s3",
                        "sync",
                        str(static),
                        f"s3://{b['aws']}/aws",
                        *target,
                        "--only-show-errors",
                    ],
                    "raw_put_loop": [
                        PYTHON,
                        str(BENCH_DIR / "raw_put.py"),
                        str(static),
                        b["raw"],
                        server.endpoint,
                        "--prefix",
                        "raw",
                        "--workers",
                        "16",
                    ],
                }
                first = {n: self.exec(f"tiny{count}-first-{n}-r{r}", contenders[n])
                         for n in bd.rotated(list(contenders), r)}
                again = {n: self.exec(f"tiny{count}-rerun-{n}-r{r}", contenders[n])
                         for n in bd.rotated(["deploy", "aws_sync"], r)}
                rows.append(
                    {
                        "first_deploy_s": first["deploy"].wall_s,
                        "first_aws_s": first["aws_sync"].wall_s,
                        "first_raw_s": first["raw_put_loop"].wall_s,
                        "first_deploy_vs_aws": first["deploy"].wall_s / first["aws_sync"].wall_s,
                        "first_deploy_vs_raw": first["deploy"].wall_s
                        / first["raw_put_loop"].wall_s,
                        "rerun_deploy_s": again["deploy"].wall_s,
                        "rerun_aws_s": again["aws_sync"].wall_s,
                        "rerun_deploy_vs_aws": again["deploy"].wall_s / again["aws_sync"].wall_s,
                        "other_cores": median(
                            x.foreign_cores for x in [*first.values(), *again.values()]
                        ),
                    }
                )
                server.reset()
        finally:
            server.stop()
        self.results[f"tiny_{count}"] = _summarise(rows)

    def folder(self) -> None:
        for count in self.args.sizes:
            static = tree(count)
            rows = []
            for r in range(self.args.rounds):
                target = self.scratch / f"target-{count}"
                shutil.rmtree(target, ignore_errors=True)
                cache = self.scratch / f"cache-{count}.json"
                cache.unlink(missing_ok=True)
                common = [
                    "--target-dir",
                    str(target),
                    "--manifest",
                    str(self.scratch / f"fm-{count}.json"),
                ]
                first = self.exec(
                    f"folder{count}-first-r{r}",
                    self.deploy(static, *common, "--hash-cache", str(cache)),
                    rss=True,
                )
                warm = self.exec(f"folder{count}-rerun-warm-r{r}",
                                 self.deploy(static, *common, "--hash-cache", str(cache)), rss=True)
                cold = self.exec(f"folder{count}-rerun-nocache-r{r}",
                                 self.deploy(static, *common, "--no-hash-cache"), rss=True)
                rows.append(
                    {
                        "first_s": first.wall_s,
                        "first_peak_mib": (first.time_v_maxrss_kib or 0) / 1024,
                        "rerun_warm_s": warm.wall_s,
                        "rerun_warm_peak_mib": (warm.time_v_maxrss_kib or 0) / 1024,
                        "rerun_nocache_s": cold.wall_s,
                        "rerun_nocache_peak_mib": (cold.time_v_maxrss_kib or 0) / 1024,
                        "other_cores": median(x.foreign_cores for x in (first, warm, cold)),
                    }
                )
            self.results[f"folder_{count}"] = _summarise(rows)

    def phases(self) -> None:
        for count in self.args.sizes:
            static = tree(count)
            out = self.scratch / f"phases-{count}.json"
            rows = []
            for r in range(self.args.rounds):
                self.exec(f"phases{count}-r{r}", [PYTHON, str(BENCH_DIR / "bench_scale.py"),
                                                  "--phases-child", str(static), str(out)])
                rows.append(json.loads(out.read_text()))
            self.results[f"phases_{count}"] = _summarise(rows)

    def flask(self) -> None:
        for count in self.args.sizes:
            out = self.scratch / f"flask-{count}.json"
            self.exec(f"flask{count}-startup", [PYTHON, str(BENCH_DIR / "bench_scale.py"),
                                                "--flask-child", str(tree(count)), str(out)])
            startup = json.loads(out.read_text())
            url_json = self.scratch / f"url_for-{count}.json"
            self.exec(
                f"flask{count}-url_for",
                [
                    PYTHON,
                    str(BENCH_DIR / "bench_url_for.py"),
                    "--files",
                    str(count),
                    "--rounds",
                    str(max(5, self.args.rounds * 3)),
                    "--json",
                    str(url_json),
                ],
            )
            url = json.loads(url_json.read_text())
            self.results[f"flask_{count}"] = {
                **startup,
                "url_for_template_ratio": url["template"]["ratio_median"],
                "url_for_python_ratio": url["python"]["ratio_median"],
                "url_for_cdn_us_per_call": url["python"]["cdn_us_per_call"],
            }


def _summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {key: {"median": median(row[key] for row in rows), "min": min(row[key] for row in rows),
                  "max": max(row[key] for row in rows)} for key in rows[0]}


def phases_child(static: Path, out: Path) -> None:
    """Per-file costs of the deploy's steps, in this process (no server, no upload)."""
    sys.path.insert(0, str(REPO))
    from pipeline.build.assemble import build
    from pipeline.build.fingerprint import HashCache
    from pipeline.localfs import scan_files
    from pipeline.release.documents import make_release
    from pipeline.release.plan import plan_deploy
    from pipeline.storage.base import RemoteObject

    t0 = time.perf_counter()
    files = scan_files(static).files
    t1 = time.perf_counter()
    built = build(files, prefix="static", cache=HashCache(None))
    t2 = time.perf_counter()
    sources = {f.logical_path: f.path for f in files}
    listing = {e.key: RemoteObject(size=e.size) for e in built.manifest.files.values()}
    t3 = time.perf_counter()
    plan = plan_deploy(built.manifest, sources, listing)
    t4 = time.perf_counter()
    doc = make_release(built.manifest, {})
    data = doc.to_json()
    t5 = time.perf_counter()
    assert not plan.uploads and data
    n = len(files)
    out.write_text(
        json.dumps(
            {
                "files": n,
                "walk_us_per_file": (t1 - t0) / n * 1e6,
                "build_us_per_file": (t2 - t1) / n * 1e6,
                "plan_us_per_file": (t4 - t3) / n * 1e6,
                "release_us_per_file": (t5 - t4) / n * 1e6,
                "release_bytes_per_file": len(data) / n,
            }
        )
    )


def flask_child(static: Path, out: Path) -> None:
    """Start-up of an app whose manifest has one entry per file of ``static``."""
    sys.path.insert(0, str(REPO))
    import resource

    from flask import Flask

    from pipeline import CDN
    from pipeline.build.assemble import build
    from pipeline.build.fingerprint import HashCache
    from pipeline.localfs import scan_files

    manifest_path = out.with_suffix(".manifest.json")
    build(scan_files(static).files, prefix="static", cache=HashCache(None)).manifest.save(
        manifest_path
    )

    def rss_mib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    before = rss_mib()
    t0 = time.perf_counter()
    plain = Flask("plain", static_folder=str(static))
    t1 = time.perf_counter()
    app = Flask("cdn", static_folder=str(static))
    app.config.update(CDN_URL="https://cdn.example.com", CDN_MANIFEST=str(manifest_path))
    CDN(app)
    t2 = time.perf_counter()
    assert app.extensions["cdn"].enabled and plain
    out.write_text(json.dumps({
        "entries": len(json.loads(manifest_path.read_bytes())["files"]),
        "manifest_mib": manifest_path.stat().st_size / 2**20,
        "plain_app_ms": (t1 - t0) * 1e3, "cdn_app_ms": (t2 - t1) * 1e3,
        "rss_before_mib": before, "rss_after_mib": rss_mib(),
    }))


def print_table(results: dict[str, Any]) -> None:
    for section, values in results.items():
        print(f"{section}:")
        for key, value in values.items():
            if isinstance(value, dict):
                print(
                    f"  {key:<28} {value['median']:10.3f}  ({value['min']:.3f}-{value['max']:.3f})"
                )
            elif isinstance(value, float):
                print(f"  {key:<28} {value:10.3f}")
            else:
                print(f"  {key:<28} {value!r:>10}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="tiny,folder,phases,flask")
    parser.add_argument(
        "--sizes", default="10000,100000", help="tree sizes for folder/phases/flask"
    )
    parser.add_argument("--tiny-files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--phases-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flask-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phases_child:
        phases_child(*args.phases_child)
        return 0
    if args.flask_child:
        flask_child(*args.flask_child)
        return 0
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    if not 1 <= args.rounds <= bd.MAX_ROUNDS:
        raise SystemExit(f"--rounds must be 1..{bd.MAX_ROUNDS}")
    bench = Scale(args)
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        for section in args.only.split(","):
            bench.log(f"{section}:")
            getattr(bench, section)()
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    result = {"bench": "scale (issue 14)", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "elapsed_s": round(time.monotonic() - started, 1), "rounds": args.rounds,
              "load_before": load_before, "load_after": os.getloadavg(), "results": bench.results}
    bd.RESULTS_DIR.mkdir(exist_ok=True)
    (bd.RESULTS_DIR / "bench_scale-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average before {load_before}, after {result['load_after']}")
    print_table(bench.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
