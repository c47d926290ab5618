#!/usr/bin/env python3
"""Encoding across CI jobs and the encode budget (issue 25), on real photos.

    python bench/bench_shards.py [--rounds N] [--shards 4] [--every 6] [--budgets 10,20]

Photos: the demo's (static/img/photos) plus Debian's wallpaper packages, downloaded once into
the gitignored bench/cache/wallpapers (``apt-get download plasma-workspace-wallpapers
mate-backgrounds`` and ``dpkg-deb -x``; the packages' licences stay beside the files there).

1. Balance: the split ``cdn-deploy variants --shard i/N`` computes (pkg: pipeline.build.shards),
   over every photo at the default widths: the largest shard's output pixels / the mean, for
   N = 2, 3, 4, 8. No encoding: the plan needs only the headers.
2. CPU: N shard processes (one after the other, each with its own caches, against one target
   folder as CI jobs against one bucket) against one process doing all (``--shard 1/1``, a fresh
   target), on a subset (every ``--every``-th wallpaper plus the demo's photos, widths
   320,640,1280: a smaller job makes the shards' fixed costs weigh more, so the ratio is
   conservative). user+sys CPU of each process tree (RUSAGE_CHILDREN), the median of the
   rounds' ratios; per-shard CPU spread too.
3. Budget: a deploy with ``--variant-budget B`` on more work than fits: the encoding time it
   reports (from the start of encoding, worker start-up included, to the last worker stopped)
   / B, per round.

Prints a table; writes bench/results/bench_shards-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CACHE = BENCH_DIR / "cache" / "wallpapers"
RESULTS_DIR = BENCH_DIR / "results"
PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds")
EXTENSIONS = (".jpg", ".jpeg", ".png")
SUBSET_WIDTHS = "320,640,1280"

sys.path.insert(0, str(ROOT))


def wallpapers() -> list[Path]:
    """The wallpaper packages' photos, extracted into :data:`CACHE` on first use."""
    if not CACHE.is_dir():
        debs = CACHE.parent / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
    # The packages link one photo under several names (sizes, dark variants): each file once.
    return sorted(p for p in CACHE.rglob("*")
                  if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.is_symlink())


def photo_folder(dest: Path, *, every: int) -> Path:
    """A static folder of the demo's photos and every ``every``-th wallpaper (1: all)."""
    static = dest / "static"
    static.mkdir(parents=True)
    demo = sorted((ROOT / "static" / "img" / "photos").glob("*.*"))
    chosen = [p for p in demo if p.suffix.lower() in EXTENSIONS] + wallpapers()[::every]
    for number, path in enumerate(chosen):
        shutil.copyfile(path, static / f"{number:03d}-{path.name}")
    return static


def balance(static: Path, counts: tuple[int, ...]) -> dict[str, Any]:
    """Largest shard / mean output pixels of the split, at the default widths."""
    from pipeline.build.fingerprint import hash_file
    from pipeline.build.shards import assign, loads
    from pipeline.build.variant_codec import probe
    from pipeline.build.variants import VariantSettings, plan_variants
    from pipeline.release.variant_phase import shard_weights
    from pipeline.release.variant_step import SourcePlan, VariantPlan

    settings = VariantSettings()
    sources = []
    for path in sorted(static.iterdir()):
        info = probe(path, settings)
        specs = tuple(plan_variants(hash_file(path), info, settings))
        sources.append(SourcePlan(path.name, path, info.width, info.height, specs))
    weights = shard_weights(VariantPlan("static", tuple(sources)))
    out: dict[str, Any] = {"images": len(sources), "units": len(weights),
                           "output_megapixels": round(sum(weights.values()) / 1e6, 1)}
    for count in counts:
        per = loads(weights, assign(weights, count), count)
        out[f"N={count}"] = round(max(per) / statistics.mean(per), 4)
    return out


def run_cpu(args: list[str], cwd: Path) -> tuple[float, dict[str, Any]]:
    """Run ``python -m pipeline ARGS --json``; (user+sys CPU of its process tree, its JSON)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline", *args, "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(done.stdout)


#: The widths of the CPU and budget sections (``--widths``).
WIDTHS = [SUBSET_WIDTHS]


def common(static: Path, target: Path, cache: Path) -> list[str]:
    return ["--static-dir", str(static), "--target-dir", str(target), "--variant-widths",
            WIDTHS[0], "--variant-cache", str(cache / "variants"), "--hash-cache",
            str(cache / "hashes.json"), "--manifest", str(cache / "manifest.json")]


def cpu_round(static: Path, work: Path, shards: int, number: int) -> dict[str, Any]:
    """N shards, then (or first, every other round) one process doing all."""
    def sharded() -> tuple[list[float], int]:
        target, cpus, encoded = work / f"t{number}-shards", [], 0
        for index in range(1, shards + 1):
            cpu, out = run_cpu(["variants", "--shard", f"{index}/{shards}",
                                *common(static, target, work / f"c{number}-{index}")], work)
            cpus.append(cpu)
            encoded += out["encoded"]
        return cpus, encoded

    def single() -> tuple[float, int]:
        cpu, out = run_cpu(["variants", *common(static, work / f"t{number}-one",
                                                work / f"c{number}-one")], work)
        return cpu, out["encoded"]

    if number % 2:
        one, one_encoded = single()
        cpus, encoded = sharded()
    else:
        cpus, encoded = sharded()
        one, one_encoded = single()
    assert encoded == one_encoded, (encoded, one_encoded)
    return {"shard_cpu": [round(c, 2) for c in cpus], "one_cpu": round(one, 2),
            "ratio": round(sum(cpus) / one, 4),
            "cpu_spread": round(max(cpus) / statistics.mean(cpus), 4), "encoded": encoded}


def budget_round(static: Path, work: Path, budget: int, number: int) -> dict[str, Any]:
    """A deploy with ``--variant-budget {budget}s`` on a fresh target and cache."""
    cache = work / f"b{budget}-{number}"
    _, out = run_cpu(["--variants", "--variant-budget", f"{budget}s",
                      *common(static, cache / "target", cache)], work)
    return {"budget": budget, "encode_seconds": out["encode_seconds"],
            "ratio": round(out["encode_seconds"] / budget, 4), "images_left": out["images_left"],
            "encoded": out["encoded"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--budgets", default="10,20")
    parser.add_argument("--widths", default=SUBSET_WIDTHS,
                        help="variant widths of the CPU and budget sections")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-budget", action="store_true")
    args = parser.parse_args()
    WIDTHS[0] = args.widths
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = Path(tmp)
        everything = photo_folder(work / "all", every=1)
        split = balance(everything, (2, 3, 4, 8))
        print(f"balance over {split['images']} photos ({split['output_megapixels']} output MP): "
              + ", ".join(f"{k}: {v}x" for k, v in split.items() if k.startswith("N=")))
        subset = photo_folder(work / "subset", every=args.every)
        subset_images = len(list(subset.iterdir()))
        cpu = [] if args.skip_cpu else [cpu_round(subset, work, args.shards, n)
                                        for n in range(args.rounds)]
        for result in cpu:
            print(f"CPU: {args.shards} shards {sum(result['shard_cpu']):.1f} s vs one "
                  f"{result['one_cpu']:.1f} s = {result['ratio']}x (shard spread "
                  f"{result['cpu_spread']}x)")
        budgets = [] if args.skip_budget else [budget_round(subset, work, int(b), n)
                                               for b in args.budgets.split(",")
                                               for n in range(args.rounds)]
        for result in budgets:
            print(f"budget {result['budget']} s: encoding took {result['encode_seconds']} s "
                  f"({result['ratio']}x), {result['images_left']} images left")
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load_before, "load_after": os.getloadavg(), "cores": os.cpu_count(),
        "subset_images": subset_images, "shards": args.shards, "rounds": args.rounds,
        "widths": args.widths,
        "balance": split, "cpu_rounds": cpu,
        "cpu_ratio_median": statistics.median(r["ratio"] for r in cpu) if cpu else None,
        "budget_rounds": budgets,
        "budget_ratio_max": max(r["ratio"] for r in budgets) if budgets else None,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "bench_shards-latest.json" if args.widths == SUBSET_WIDTHS else "bench_shards-wide.json"
    (RESULTS_DIR / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("load_before", "load_after", "cpu_ratio_median",
                                              "budget_ratio_max")}))


if __name__ == "__main__":
    main()
