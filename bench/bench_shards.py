#!/usr/bin/env python3
"""Encoding across CI jobs and the encode budget (issue 25), on real photos.

    python bench/bench_shards.py [--rounds N] [--shards 4] [--every 6] [--budgets 10,20]
                                 [--code DIR [--code DIR2]]

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
   conservative). user+sys CPU of each whole process tree: the bench makes itself a child
   subreaper (``PR_SET_CHILD_SUBREAPER``), so the fork server and resource tracker, which
   outlive the command and are reaped by nobody otherwise, become its children; it waits for
   every one of them, and RUSAGE_CHILDREN then holds the CPU of the command, its workers (the
   fork server's children, which it reaps) and those helpers. The median of the rounds'
   ratios; per-shard CPU spread too. ``--code DIR`` (twice) runs each round with both code
   trees (``git archive REV | tar -x -C DIR``), in alternating order, and also reports the
   second tree's CPU / the first's.
   ``--paired``: instead, each round runs the one process pinned to one core and the N shards
   (one after the other) pinned to another, at the same time, swapping cores every round, so
   both sides meet the same machine (a VM's CPU time per identical encode varies by +-10%
   from minute to minute; run one after the other, that drift fell on one side only). Each
   pinned command sees one core, so it encodes with one worker (`--paired-unpinned`: both sides
   on every core, two workers each); every command runs under its
   own subreaper (:data:`TREE_CPU`), since two trees run at once.
3. Budget: a deploy with ``--variant-budget B`` on more work than fits: the encoding time it
   reports (from the start of encoding, worker start-up included, to the last worker stopped)
   / B, per round.

Prints a table; writes bench/results/bench_shards-latest.json. ``--fixed ROUNDS``: also the fixed
cost of a shard that encodes little (two small photos), per code tree.
"""

from __future__ import annotations

import argparse
import ctypes
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


#: prctl(2) option: orphaned descendants are re-parented to this process, not to init.
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Collect the CPU of every descendant, also of those that outlive their parent."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans() -> None:
    """Wait for every remaining descendant re-parented to us (fork server, resource tracker:
    they exit once the command that started them has), so RUSAGE_CHILDREN includes them."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run_cpu(args: list[str], cwd: Path, code: Path = ROOT) -> tuple[float, dict[str, Any]]:
    """Run ``python -m pipeline ARGS --json`` with ``code`` first on the path; (user+sys CPU
    of its whole process tree, its JSON)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-m", "pipeline", *args, "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(done.stdout)


#: Run ``argv[2:]`` on core ``argv[1]`` as a subreaper; print the CPU of its whole tree.
TREE_CPU = r"""
import ctypes, os, resource, subprocess, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
if int(sys.argv[1]) >= 0:
    os.sched_setaffinity(0, {int(sys.argv[1])})
done = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, text=True)
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(done.stdout)
print(f"cpu={usage.ru_utime + usage.ru_stime}", file=sys.stderr)
sys.exit(done.returncode)
"""


def run_pinned(args: list[str], cwd: Path, core: int, code: Path = ROOT) -> tuple[float, int]:
    """``python -m pipeline ARGS --json`` pinned to ``core``: (CPU of its tree, encoded)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-c", TREE_CPU, str(core), sys.executable, "-m",
                           "pipeline", *args, "--json"], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = float(done.stderr.rsplit("cpu=", 1)[1])
    return cpu, int(json.loads(done.stdout)["encoded"])


def paired_round(static: Path, work: Path, shards: int, number: int,
                 code: Path = ROOT, pinned: bool = True) -> dict[str, Any]:
    """The one process on one core and the N shards on another, at the same time (not
    ``pinned``: both sides on every core, two workers each, four at once)."""
    import threading

    tag = f"p{number}-{code.name}"
    one_core, shard_core = (0, 1) if number % 2 == 0 else (1, 0)
    if not pinned:
        one_core = shard_core = -1
    sides: dict[str, list[tuple[float, int]]] = {}

    def one() -> None:
        sides["one"] = [run_pinned(["variants", *common(static, work / f"t{tag}-one",
                                                         work / f"c{tag}-one")],
                                   work, one_core, code)]

    def sharded() -> None:
        sides["shards"] = [run_pinned(["variants", "--shard", f"{index}/{shards}",
                                       *common(static, work / f"t{tag}-shards",
                                               work / f"c{tag}-{index}")],
                                      work, shard_core, code)
                           for index in range(1, shards + 1)]

    threads = [threading.Thread(target=one), threading.Thread(target=sharded)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (one_cpu, one_encoded), = sides["one"]
    cpus = [cpu for cpu, _ in sides["shards"]]
    encoded = sum(count for _, count in sides["shards"])
    assert encoded == one_encoded, (encoded, one_encoded)
    return {"code": str(code), "shard_cpu": [round(c, 2) for c in cpus],
            "one_cpu": round(one_cpu, 2), "ratio": round(sum(cpus) / one_cpu, 4),
            "load": round(os.getloadavg()[0], 1), "paired": True,
            "cpu_spread": round(max(cpus) / statistics.mean(cpus), 4), "encoded": encoded}


#: The widths of the CPU and budget sections (``--widths``).
WIDTHS = [SUBSET_WIDTHS]


def common(static: Path, target: Path, cache: Path) -> list[str]:
    return ["--static-dir", str(static), "--target-dir", str(target), "--variant-widths",
            WIDTHS[0], "--variant-cache", str(cache / "variants"), "--hash-cache",
            str(cache / "hashes.json"), "--manifest", str(cache / "manifest.json")]


def cpu_round(static: Path, work: Path, shards: int, number: int,
              code: Path = ROOT) -> dict[str, Any]:
    """N shards, then (or first, every other round) one process doing all."""
    tag = f"{number}-{code.name}"

    def sharded() -> tuple[list[float], int]:
        target, cpus, encoded = work / f"t{tag}-shards", [], 0
        for index in range(1, shards + 1):
            cpu, out = run_cpu(["variants", "--shard", f"{index}/{shards}",
                                *common(static, target, work / f"c{tag}-{index}")], work, code)
            cpus.append(cpu)
            encoded += out["encoded"]
        return cpus, encoded

    def single() -> tuple[float, int]:
        cpu, out = run_cpu(["variants", *common(static, work / f"t{tag}-one",
                                                work / f"c{tag}-one")], work, code)
        return cpu, out["encoded"]

    if number % 2:
        one, one_encoded = single()
        cpus, encoded = sharded()
    else:
        cpus, encoded = sharded()
        one, one_encoded = single()
    assert encoded == one_encoded, (encoded, one_encoded)
    return {"code": str(code), "shard_cpu": [round(c, 2) for c in cpus], "one_cpu": round(one, 2),
            "ratio": round(sum(cpus) / one, 4), "load": round(os.getloadavg()[0], 1),
            "cpu_spread": round(max(cpus) / statistics.mean(cpus), 4), "encoded": encoded}


def cpu_rounds(static: Path, work: Path, shards: int, rounds: int,
               codes: list[Path], paired: str | None = None) -> list[dict[str, Any]]:
    """``rounds`` rounds of :func:`cpu_round` (or, ``paired`` "pinned" or "unpinned",
    :func:`paired_round`) per code tree, the trees' order alternating."""
    results = []
    for number in range(rounds):
        order = codes if number % 2 == 0 else codes[::-1]
        for code in order:
            result = (paired_round(static, work, shards, number, code, paired == "pinned")
                      if paired else cpu_round(static, work, shards, number, code))
            print(f"CPU [{code.name}]: {shards} shards {sum(result['shard_cpu']):.1f} s vs one "
                  f"{result['one_cpu']:.1f} s = {result['ratio']}x (shard spread "
                  f"{result['cpu_spread']}x, load {result['load']})", flush=True)
            results.append(result)
    return results


def fixed_rounds(work: Path, rounds: int, codes: list[Path]) -> dict[str, Any]:
    """The fixed cost of a shard that encodes: ``variants`` over two small demo photos (two
    workers, little encoding), CPU of the whole tree, per code tree, in alternating order;
    the medians."""
    static = work / "fixed" / "static"
    static.mkdir(parents=True)
    for path in sorted((ROOT / "static" / "img" / "photos").glob("*.jpg"))[:2]:
        shutil.copyfile(path, static / path.name)
    cpus: dict[str, list[float]] = {str(code): [] for code in codes}
    for number in range(rounds):
        for code in codes if number % 2 == 0 else codes[::-1]:
            cache = work / "fixed" / f"{number}-{code.name}"
            cpu, _ = run_cpu(["variants", "--variant-widths", "320", "--static-dir", str(static),
                              "--target-dir", str(cache / "t"), "--variant-cache",
                              str(cache / "v"), "--hash-cache", str(cache / "h.json")],
                             work, code)
            cpus[str(code)].append(round(cpu, 3))
    print(f"fixed cost (CPU s per run, {rounds} rounds): {cpus}", flush=True)
    return {code: {"rounds": values, "median": statistics.median(values)}
            for code, values in cpus.items()}


def summarise_cpu(results: list[dict[str, Any]], codes: list[Path]) -> dict[str, Any]:
    """Per code tree the median shards/one ratio; with two trees, the medians of the second's
    CPU over the first's, round by round (4 shards together, and the one process)."""
    out: dict[str, Any] = {}
    by_code = {str(code): [r for r in results if r["code"] == str(code)] for code in codes}
    for code, rows in by_code.items():
        out[code] = {"ratio_median": statistics.median(r["ratio"] for r in rows),
                     "one_cpu_median": statistics.median(r["one_cpu"] for r in rows),
                     "shards_cpu_median": statistics.median(sum(r["shard_cpu"]) for r in rows)}
    if len(codes) == 2:
        first, second = by_code[str(codes[0])], by_code[str(codes[1])]
        out["second_over_first"] = {
            "shards": statistics.median(sum(b["shard_cpu"]) / sum(a["shard_cpu"])
                                        for a, b in zip(first, second, strict=True)),
            "one": statistics.median(b["one_cpu"] / a["one_cpu"]
                                     for a, b in zip(first, second, strict=True))}
    return out


def budget_round(static: Path, work: Path, budget: int, number: int,
                 code: Path = ROOT) -> dict[str, Any]:
    """A deploy with ``--variant-budget {budget}s`` on a fresh target and cache."""
    cache = work / f"b{budget}-{number}"
    _, out = run_cpu(["--variants", "--variant-budget", f"{budget}s",
                      *common(static, cache / "target", cache)], work, code)
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
    parser.add_argument("--skip-balance", action="store_true")
    parser.add_argument("--paired", action="store_true",
                        help="run the one process and the shards at once, on a core each")
    parser.add_argument("--paired-unpinned", action="store_true",
                        help="with --paired: both sides on every core (as many workers as "
                             "cores each, so twice as many processes as cores)")
    parser.add_argument("--fixed", type=int, default=0, metavar="ROUNDS",
                        help="also measure a small shard's fixed cost, ROUNDS rounds per tree")
    parser.add_argument("--code", action="append", type=Path, default=[],
                        help="a code tree to run (up to twice, for an A/B; default: this one)")
    args = parser.parse_args()
    WIDTHS[0] = args.widths
    paired = ("unpinned" if args.paired_unpinned else "pinned") if args.paired else None
    codes = [path.resolve() for path in args.code] or [ROOT]
    become_subreaper()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = Path(tmp)
        everything = photo_folder(work / "all", every=1)
        split = {} if args.skip_balance else balance(everything, (2, 3, 4, 8))
        if split:
            print(f"balance over {split['images']} photos ({split['output_megapixels']} output "
                  "MP): " + ", ".join(f"{k}: {v}x" for k, v in split.items()
                                      if k.startswith("N=")))
        subset = photo_folder(work / "subset", every=args.every)
        subset_images = len(list(subset.iterdir()))
        fixed = fixed_rounds(work, args.fixed, codes) if args.fixed else None
        cpu = [] if args.skip_cpu else cpu_rounds(subset, work, args.shards, args.rounds, codes,
                                                        paired)
        budgets = [] if args.skip_budget else [budget_round(subset, work, int(b), n, codes[-1])
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
        "cpu": summarise_cpu(cpu, codes) if cpu else None, "fixed": fixed,
        "budget_rounds": budgets,
        "budget_ratio_max": max(r["ratio"] for r in budgets) if budgets else None,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "bench_shards-latest.json" if args.widths == SUBSET_WIDTHS else "bench_shards-wide.json"
    if paired:
        name = name.replace(".json", "-paired.json" if paired == "pinned"
                            else "-paired-unpinned.json")
    (RESULTS_DIR / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("load_before", "load_after", "cpu",
                                              "budget_ratio_max")}, indent=1))


if __name__ == "__main__":
    main()
