#!/usr/bin/env python3
"""Responsive variants (issue 12): ours (libvips) against Eleventy Image and a Pillow pipeline.

    python bench/bench_variants.py [--rounds N] [--photos DIR] [--engines ours,pillow,eleventy]

Every engine encodes the same photos (those in DIR wider than the ladder's top, copied to a temp
folder) at the same widths (Eleventy's default 320..1920) to AVIF, WebP and the source's format,
as a whole process: wall time from spawn to exit and peak RSS summed over the process tree
(sampled from /proc every 50 ms: our encoder is a pool of processes). Rounds rotate the order of
the engines, and the figures are medians, because the machine is shared. Quality comes from the
peer's own measure (../shared/image-bench/image_quality.py: mean luma SSIM against a Lanczos
downscale of the source, and bits per pixel) on the last round's outputs, counting for every
engine only the (photo, width, format) triples all engines produced: we drop a modern variant
that is not smaller than the fallback, and that must not look like a saving.

Needs Eleventy Image in --eleventy-dir (``mkdir -p /tmp/eleventy && cd /tmp/eleventy &&
npm install @11ty/eleventy-img@7``), Node, numpy. Prints a table; writes
bench/results/bench_variants-latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SHARED = ROOT.parent / "shared" / "image-bench"
RESULTS_DIR = BENCH_DIR / "results"
WIDTHS = (320, 640, 960, 1280, 1920)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# --- engines, each run as its own process -----------------------------------------------------


def run_ours(in_dir: Path, out_dir: Path, widths: tuple[int, ...]) -> dict[str, Any]:
    """The pipeline's own code: probe, plan, encode_many (every core)."""
    import hashlib

    from pipeline.build.variant_codec import probe
    from pipeline.build.variant_pool import EncodeJob, encode_many
    from pipeline.build.variants import VariantSettings, plan_variants

    start = time.perf_counter()
    settings = VariantSettings(widths=widths)
    jobs, sources = [], {}
    for path in sorted(in_dir.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        jobs.append(EncodeJob(path, tuple(plan_variants(digest, probe(path, settings), settings))))
        sources[str(path)] = path
    results = encode_many(jobs, settings=settings, out_dir=out_dir)
    outputs = [{"src": r.source, "path": str(out_dir / spec.key), "width": spec.width,
                "height": spec.height, "format": spec.format, "size": size}
               for r in results for spec, size in r.written
               if spec not in r.dropped]  # stored, but pages never offer them
    dropped = sum(len(r.dropped) for r in results)
    return {"seconds": time.perf_counter() - start, "outputs": outputs, "dropped": dropped}


def _pillow_one(path: str, out_dir: str, widths: tuple[int, ...]) -> list[dict[str, Any]]:
    """The same pipeline with Pillow (libavif/aom, libwebp, libjpeg-turbo, zlib), settings
    tuned in the same way (quality for SSIM at Eleventy's; AVIF speed 7, one thread)."""
    import io

    from PIL import Image, ImageCms, ImageOps

    with Image.open(path) as image:
        fmt = "png" if image.format == "PNG" else "jpeg"
        if image.format == "JPEG":
            image.draft("RGB", (max(widths), max(widths)))  # DCT scaling for big sources
        image = ImageOps.exif_transpose(image)
        icc = image.info.get("icc_profile")
        if icc:
            image = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                              ImageCms.createProfile("sRGB"))
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    outputs = []
    for width in [w for w in widths if w < image.width] + (
        [image.width] if image.width <= max(widths) else []
    ):
        height = max(1, round(image.height * width / image.width))
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        for out_fmt, options in (("avif", {"quality": 50, "speed": 7, "max_threads": 1}),
                                 ("webp", {"quality": 80, "method": 4}),
                                 ("jpeg", {"quality": 81, "optimize": True, "progressive": True}),
                                 ("png", {"compress_level": 6})):
            if out_fmt in ("jpeg", "png") and out_fmt != fmt:
                continue
            target = Path(out_dir) / f"{Path(path).stem}-{width}.{out_fmt}"
            resized.save(target, out_fmt.upper(), **options)
            outputs.append({"src": path, "path": str(target), "width": width, "height": height,
                            "format": out_fmt, "size": target.stat().st_size})
    return outputs


def run_pillow(in_dir: Path, out_dir: Path, widths: tuple[int, ...]) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        encode = functools.partial(_pillow_one, out_dir=str(out_dir), widths=widths)
        parts = pool.map(encode, [str(p) for p in sorted(in_dir.iterdir())])
        outputs = [item for part in parts for item in part]
    return {"seconds": time.perf_counter() - start, "outputs": outputs, "dropped": 0}


# --- measuring whole processes ----------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        todo.extend(children.get(pid, []))
    return total


def measure(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; its last stdout line is JSON. Adds wall seconds, CPU seconds of the whole
    tree (children are reaped by their parents, so they count) and peak tree RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate(timeout=1800)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    report.update(wall=wall, cpu=cpu, peak_rss=peak)
    return report


def quality(outputs: list[dict[str, Any]], keep: set[tuple[str, int, str]],
            work: Path, name: str) -> dict[str, Any]:
    items = [{"src": o["src"], "path": o["path"], "format": o["format"]} for o in outputs
             if (Path(o["src"]).name, o["width"], o["format"]) in keep]
    listing = work / f"items-{name}.json"
    listing.write_text(json.dumps(items))
    result = subprocess.run([sys.executable, str(SHARED / "image_quality.py"), str(listing)],
                            check=True, capture_output=True, text=True)
    return dict(json.loads(result.stdout))


# --- the benchmark ----------------------------------------------------------------------------


def stage_photos(photos: Path, work: Path, widths: tuple[int, ...]) -> Path:
    from PIL import Image

    staged = work / "in"
    staged.mkdir()
    for path in sorted(photos.iterdir()):
        if path.suffix.lower() in EXTENSIONS:
            with Image.open(path) as image:
                if image.width > widths[-1]:
                    shutil.copy2(path, staged / path.name)
    if not any(staged.iterdir()):
        raise SystemExit(f"no photo wider than {widths[-1]} px in {photos}")
    return staged


def commands(engine: str, in_dir: Path, out_dir: Path, eleventy: Path,
             widths: tuple[int, ...]) -> tuple[list[str], Path]:
    text = ",".join(map(str, widths))
    if engine == "eleventy":
        return [
            "node",
            str(eleventy / "images_eleventy.mjs"),
            str(in_dir),
            str(out_dir),
            text,
        ], eleventy
    return [sys.executable, str(Path(__file__).resolve()), f"--engine-{engine}", str(in_dir),
            str(out_dir), text], ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "static" / "img" / "photos")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--engines", default="ours,pillow,eleventy")
    parser.add_argument("--eleventy-dir", type=Path, default=Path("/tmp/eleventy"))
    args = parser.parse_args(argv)
    engines = args.engines.split(",")
    if "eleventy" in engines:
        if not (args.eleventy_dir / "node_modules" / "@11ty" / "eleventy-img").is_dir():
            print(f"Eleventy Image is not installed in {args.eleventy_dir}: run `mkdir -p "
                  f"{args.eleventy_dir} && cd {args.eleventy_dir} && npm install "
                  "@11ty/eleventy-img@7`", file=sys.stderr)
            return 2
        # Node resolves imports next to the script, so the peer script runs from that folder.
        shutil.copy(SHARED / "images_eleventy.mjs", args.eleventy_dir / "images_eleventy.mjs")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        work = Path(tmp)
        in_dir = stage_photos(args.photos, work, WIDTHS)
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for round_no in range(args.rounds):
            order = engines[round_no % len(engines):] + engines[:round_no % len(engines)]
            for engine in order:
                out_dir = work / f"out-{engine}-{round_no}"
                cmd, cwd = commands(engine, in_dir, out_dir, args.eleventy_dir, WIDTHS)
                runs[engine].append(measure(cmd, cwd=cwd, env=env))
                print(f"round {round_no + 1}: {engine:9s} {runs[engine][-1]['wall']:7.1f} s",
                      file=sys.stderr)
        last = {e: runs[e][-1]["outputs"] for e in engines}
        common = set.intersection(*[{(Path(o["src"]).name, o["width"], o["format"])
                                     for o in outs} for outs in last.values()])
        report = {e: {"wall": statistics.median(r["wall"] for r in runs[e]),
                      "cpu": statistics.median(r["cpu"] for r in runs[e]),
                      "peak_rss_mb": statistics.median(r["peak_rss"] for r in runs[e]) / 2**20,
                      "dropped": runs[e][-1].get("dropped", 0),
                      "quality": quality(last[e], common, work, e)} for e in engines}
    print_table(report, in_dir_count=len({c[0] for c in common}), rounds=args.rounds)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "bench_variants-latest.json").write_text(json.dumps(
        {"rounds": args.rounds, "widths": WIDTHS, "load": os.getloadavg(), "report": report},
        indent=1))
    return 0


def print_table(report: dict[str, Any], *, in_dir_count: int, rounds: int) -> None:
    print(f"{in_dir_count} photos, widths {WIDTHS}, median of {rounds} round(s); "
          f"load now {os.getloadavg()[0]:.1f}")
    print(f"{'engine':9s} {'wall s':>7s} {'CPU s':>7s} {'RSS MB':>7s}  format: bytes, SSIM, bpp")
    for engine, r in report.items():
        formats = "  ".join(f"{f}: {q['bytes']:,} {q['ssim']:.4f} {q['bpp']:.3f}"
                            for f, q in sorted(r["quality"].items()))
        print(f"{engine:9s} {r['wall']:7.1f} {r['cpu']:7.1f} {r['peak_rss_mb']:7.0f}  {formats}"
              + (f"  ({r['dropped']} dropped)" if r["dropped"] else ""))
    if "ours" in report:
        for other in [e for e in report if e != "ours"]:
            o, t = report["ours"], report[other]
            ratios = "  ".join(
                f"{f} bytes {q['bytes'] / t['quality'][f]['bytes']:.3f} "
                f"SSIM {q['ssim'] - t['quality'][f]['ssim']:+.4f}"
                for f, q in sorted(o["quality"].items()) if f in t["quality"])
            print(f"ours/{other}: wall {o['wall'] / t['wall']:.3f}  CPU {o['cpu'] / t['cpu']:.3f}  "
                  f"RSS {o['peak_rss_mb'] / t['peak_rss_mb']:.3f}  {ratios}")


def engine_main(argv: list[str]) -> int:
    flag, in_dir, out_dir, widths = argv
    run = run_ours if flag == "--engine-ours" else run_pillow
    print(json.dumps(run(Path(in_dir), Path(out_dir), tuple(int(w) for w in widths.split(",")))))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--engine-"):
        sys.exit(engine_main(sys.argv[1:]))
    sys.exit(main())
