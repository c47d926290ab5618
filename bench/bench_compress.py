#!/usr/bin/env python3
"""Precompressed siblings (issue 23): bytes on the wire, and what they cost a deploy.

    python bench/bench_compress.py                     # both sections
    python bench/bench_compress.py --only wire         # bytes only (~1 min)
    python bench/bench_compress.py --only deploy --rounds 5

``wire``: every file of the pinned npm corpus (:mod:`npm_corpus`: Bootstrap, htmx,
Alpine, Chart.js, jQuery, Vue, React DOM, Bulma, lodash, Font Awesome, d3) plus the
demo's two bundles as the deploy ships them, encoded by :func:`pipeline.build.compress.encode`
(what the deploy stores: brotli 11 / gzip 9, each kept at <= 95%). A browser that accepts
br gets the br sibling, a gzip-only client the gzip one, else identity. Against what a CDN
compresses on the fly: gzip level 6 and brotli quality 5. Reported: the median of the
per-file ratios, the ratio of the totals and of the median sizes, and brotli 11's CPU time.

``deploy``: the 2,000-file benchmark corpus (:mod:`corpus`, image names; its ``.svg``
files are random bytes, so they are tried and dropped by the 95% rule) deployed into a
fresh folder target by this tree's ``deploy.py``, the same command with and without
``--no-precompress``, rounds alternating the order; then a no-change re-deploy, whose
``--json`` report must count 0 files compressed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import brotli
import corpus
import npm_corpus
from bench_phases_ab import run as run_deploy

from pipeline.build.compress import encode

DEMO_BUNDLES = ("gen/site.*.css", "gen/app.*.js")


def demo_bundles(scratch: Path) -> dict[str, bytes]:
    """The demo's bundles as the deploy ships them (built, URLs rewritten, fingerprinted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(REPO)
    subprocess.run([sys.executable, "deploy.py", "--assets", "site/assets.py", "--target-dir",
                    str(scratch / "demo"), "--manifest", str(scratch / "demo.json"), "-q",
                    "--no-hash-cache", "--no-variants"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    found: dict[str, bytes] = {}
    for pattern in DEMO_BUNDLES:
        (path,) = [p for p in (scratch / "demo").rglob(pattern) if p.suffix in (".css", ".js")]
        found[f"demo/{path.name}"] = path.read_bytes()
    return found


def on_the_wire(data: bytes) -> dict[str, int]:
    """Sizes a client gets: ours (stored siblings) and a CDN's on-the-fly encodings."""
    stored = {e.encoding: len(e.data) for e in encode(data)}
    return {
        "identity": len(data),
        "ours_br": stored.get("br", stored.get("gzip", len(data))),
        "ours_gzip": stored.get("gzip", len(data)),
        "gzip6": len(gzip.compress(data, compresslevel=6, mtime=0)),
        "br5": len(brotli.compress(data, quality=5)),
    }


def wire(scratch: Path) -> dict[str, object]:
    """The wire section: per-file sizes, median per-file ratios and ratios of the totals."""
    files = {**npm_corpus.corpus(), **demo_bundles(scratch)}
    sizes = {name: on_the_wire(data) for name, data in files.items()}
    started = time.process_time()
    for data in files.values():
        brotli.compress(data, quality=11)
    br11_cpu = time.process_time() - started
    pairs = {"br-11 / gzip-6": ("ours_br", "gzip6"), "br-11 / br-5": ("ours_br", "br5"),
             "gzip-9 / gzip-6": ("ours_gzip", "gzip6")}
    ratios = {}
    for label, (ours, theirs) in pairs.items():
        per_file = [row[ours] / row[theirs] for row in sizes.values()]
        rows = sizes.values()
        total = sum(row[ours] for row in rows) / sum(row[theirs] for row in rows)
        of_medians = (statistics.median(row[ours] for row in sizes.values())
                      / statistics.median(row[theirs] for row in sizes.values()))
        ratios[label] = {"median": statistics.median(per_file), "min": min(per_file),
                         "max": max(per_file), "total": total, "of_medians": of_medians}
    identity_mb = sum(len(data) for data in files.values()) / 1e6
    return {"files": sizes, "ratios": ratios, "identity_mb": identity_mb,
            "br11_cpu_s": br11_cpu, "br11_mb_per_cpu_s": identity_mb / br11_cpu}


def print_wire(result: dict[str, object]) -> None:
    sizes = result["files"]
    assert isinstance(sizes, dict)
    print(f"{'file':<58}{'identity':>10}{'br-11':>9}{'gzip-9':>9}{'gzip-6':>9}{'br-5':>9}")
    for name, row in sizes.items():
        print(f"{name:<58}{row['identity']:>10,}{row['ours_br']:>9,}{row['ours_gzip']:>9,}"
              f"{row['gzip6']:>9,}{row['br5']:>9,}")
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    for label, row in ratios.items():
        print(f"{label:<18} median {row['median']:.3f} (min {row['min']:.3f}, max "
              f"{row['max']:.3f}), total {row['total']:.3f}, of the medians "
              f"{row['of_medians']:.3f}")
    print(f"brotli 11 over {result['identity_mb']:.2f} MB: {result['br11_cpu_s']:.2f} s CPU "
          f"({result['br11_mb_per_cpu_s']:.2f} MB per CPU second)")


def deploy(scratch: Path, rounds: int) -> dict[str, object]:
    """First deploy with vs without precompression (median of rounds), and a re-deploy."""
    corpus.ensure(quiet=True)
    static = str(corpus.default_dir())
    variants = {"precompressed": (), "identity only": ("--no-precompress",)}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for index in range(rounds):
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name in order:
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                runs[name].append(run_deploy(str(REPO), static, tmp, warm=False,
                                             extra=variants[name]))
    medians = {name: {"wall_s": statistics.median(wall for wall, _ in rows),
                      "cpu_s": statistics.median(cpu for _, cpu in rows)}
               for name, rows in runs.items()}
    with_, without = medians["precompressed"], medians["identity only"]
    return {"rounds": rounds, "medians": medians,
            "wall_ratio": with_["wall_s"] / without["wall_s"],
            "cpu_ratio": with_["cpu_s"] / without["cpu_s"],
            "redeploy_compressed": redeploy_compressed(static, scratch),
            "load_average": os.getloadavg()}


def redeploy_compressed(static: str, scratch: Path) -> object:
    """Deploy twice into one target; the second run's ``compressed`` count from ``--json``."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
        env["PYTHONPATH"] = str(REPO)
        cmd = [sys.executable, str(REPO / "deploy.py"), "--static-dir", static, "--target-dir",
               f"{tmp}/out", "--hash-cache", f"{tmp}/h.json", "--manifest", f"{tmp}/m.json",
               "--json", "-q"]
        subprocess.run(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=True)
        again = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=True)
        return json.loads(again.stdout).get("compressed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=("wire", "deploy"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, object] = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        if args.only in (None, "wire"):
            results["wire"] = wire(Path(tmp))
            print_wire(results["wire"])  # type: ignore[arg-type]
        if args.only in (None, "deploy"):
            results["deploy"] = deploy(Path(tmp), args.rounds)
            print(json.dumps(results["deploy"], indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_compress-latest.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
