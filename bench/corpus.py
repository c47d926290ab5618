"""The benchmark corpus: 2,000 "images" of 1 KB-500 KB, ~165 MiB in all, from a fixed seed.

The bytes are random (nothing here decodes them; random bytes also defeat any
compression on the way), the extensions and folder layout look like a real
``static/`` tree. Sizes are log-uniform between 1 KiB and 500 KiB, then scaled
so the total is 165 MiB give or take a few KiB. The same seed gives the same
bytes, hence the same content hashes and object keys, on every machine.

The tree is built once into a cache folder (outside the repository by default)
and reused while its spec stamp matches; mtimes are left alone after that, so
``aws s3 sync``'s size+mtime comparison and the deploy's hash cache see an
unchanged tree across runs.

    python bench/corpus.py [--dir DIR]      # build (or verify) and print its path
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

SEED = 20260224
FILES = 2000
MIN_SIZE = 1024
MAX_SIZE = 500 * 1024
TARGET_TOTAL = 165 * 1024 * 1024
#: Bump when the generator changes so stale cached trees are rebuilt.
GENERATOR_VERSION = 1

EXTENSIONS = (
    ".jpg",
    ".jpg",
    ".jpg",
    ".png",
    ".png",
    ".webp",
    ".webp",
    ".gif",
    ".svg",
    ".avif",
    ".ico",
)
FOLDERS = (
    "img", "img/products", "img/products/thumbs", "img/blog", "img/blog/2024", "img/blog/2025",
    "img/icons", "img/avatars", "img/banners", "img/gallery/summer", "img/gallery/winter",
    "img/ui", "media/press", "media/press/logos", "media/team",
)


def default_dir() -> Path:
    base = os.environ.get("CDN_BENCH_CACHE") or tempfile.gettempdir()
    return Path(base) / f"cdn-bench-corpus-v{GENERATOR_VERSION}-s{SEED}"


def spec() -> dict[str, object]:
    return {"generator": GENERATOR_VERSION, "seed": SEED, "files": FILES,
            "min_size": MIN_SIZE, "max_size": MAX_SIZE, "target_total": TARGET_TOTAL}


def plan_files(seed: int = SEED) -> list[tuple[str, int]]:
    """(relative path, size) for every file, deterministic for ``seed``."""
    rng = random.Random(seed)
    lo, hi = math.log(MIN_SIZE), math.log(MAX_SIZE)
    raw = [math.exp(rng.uniform(lo, hi)) for _ in range(FILES)]
    # Scale toward the target total; clipping to [MIN, MAX] moves the sum, so repeat (bounded).
    sizes = [int(s) for s in raw]
    for _ in range(50):
        total = sum(sizes)
        if abs(total - TARGET_TOTAL) < 64 * 1024:
            break
        factor = TARGET_TOTAL / total
        sizes = [min(MAX_SIZE, max(MIN_SIZE, int(s * factor))) for s in sizes]
    files: list[tuple[str, int]] = []
    for index, size in enumerate(sizes):
        folder = FOLDERS[rng.randrange(len(FOLDERS))]
        ext = EXTENSIONS[rng.randrange(len(EXTENSIONS))]
        files.append((f"{folder}/asset-{index:04d}{ext}", size))
    return files


def build(root: Path, seed: int = SEED) -> dict[str, object]:
    """Create the tree at ``root`` (replacing it) and return its stamp."""
    files = plan_files(seed)
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = random.Random(seed ^ 0x5EED)
    for rel, size in files:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp = {**spec(), "total_bytes": sum(s for _, s in files), "count": len(files)}
    stamp_path(root).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return stamp


def stamp_path(root: Path) -> Path:
    # Beside the tree, not in it: everything inside the tree gets deployed/synced.
    return root.with_name(root.name + ".json")


def ensure(root: Path | None = None, *, quiet: bool = False) -> tuple[Path, dict[str, object]]:
    """Return the corpus folder, building it if missing, incomplete or from another spec."""
    root = root or default_dir()
    try:
        stamp = json.loads(stamp_path(root).read_text())
    except (OSError, ValueError):
        stamp = None
    if (
        stamp is not None
        and all(stamp.get(k) == v for k, v in spec().items())
        and _looks_complete(root, stamp)
    ):
        return root, stamp
    if not quiet:
        print(f"building corpus in {root} (seed {SEED}) ...", file=sys.stderr, flush=True)
    return root, build(root)


def _looks_complete(root: Path, stamp: dict[str, object]) -> bool:
    count = 0
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            count += 1
            total += os.path.getsize(os.path.join(folder, name))
    return count == stamp.get("count") and total == stamp.get("total_bytes")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, help=f"where to build it (default {default_dir()})")
    args = parser.parse_args()
    root, stamp = ensure(args.dir)
    print(f"{root}: {stamp['count']} files, {int(stamp['total_bytes']) / 2**20:.1f} MiB")  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    sys.exit(main())
