#!/usr/bin/env python3
"""What rewriting ES modules costs: the JS scanner's throughput and the whole build's.

    python bench/bench_js.py FOLDER [--rounds N]

FOLDER holds real JavaScript (any tree; every ``.js``/``.mjs`` file in it is used), for
instance npm packages unpacked with ``npm pack three vue lodash-es ...`` and ``tar -xzf``
(not committed: fetch your own). Reported, as medians of ``--rounds`` rounds of process
CPU time (the machine may be busy; CPU time is what the deploy pays):

* ``scan``: :func:`pipeline.build.jsscan.scan` over every file's text, MB/s;
* ``build``: :func:`pipeline.build.assemble.build` (hash, parse, rewrite, SRI) over the
  files as a static folder, against the same bytes under a ``.txt`` name (stored as they
  are: hash only), so the difference is what JS costs a deploy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.build.assemble import build
from pipeline.build.fingerprint import HashCache
from pipeline.build.jsscan import scan
from pipeline.localfs import collect_files


def copy_tree(source: Path, target: Path, *, suffix: str | None) -> int:
    """Copy every JS file of ``source`` into ``target`` (renamed to ``suffix`` if given)."""
    total = 0
    for path in sorted(source.rglob("*")):
        if path.suffix not in (".js", ".mjs") or not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(source)
        if suffix is not None:
            relative = relative.with_suffix(suffix)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / relative)
        total += path.stat().st_size
    return total


def cpu(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        js_root, txt_root = Path(scratch) / "js", Path(scratch) / "txt"
        size = copy_tree(args.folder, js_root, suffix=None)
        copy_tree(args.folder, txt_root, suffix=".txt")
        texts = [p.read_bytes().decode("utf-8", "surrogateescape")
                 for p in sorted(js_root.rglob("*")) if p.is_file()]
        js_files, txt_files = collect_files(js_root), collect_files(txt_root)
        found = sum(len(scan(t).specifiers) for t in texts)
        scan_s, js_s, txt_s = [], [], []
        for _ in range(args.rounds):
            scan_s.append(cpu(lambda: [scan(t) for t in texts]))
            js_s.append(cpu(lambda: build(js_files, prefix="static", cache=HashCache(None),
                                          strict=False)))
            txt_s.append(cpu(lambda: build(txt_files, prefix="static", cache=HashCache(None))))
    mb = size / 1e6
    print(f"{len(texts)} files, {mb:.1f} MB, {found} specifiers, {args.rounds} rounds (median)")
    rows = {"scan": scan_s, "build (.js)": js_s, "build (.txt)": txt_s}
    for label, seconds in rows.items():
        median = statistics.median(seconds)
        print(f"{label:13} {median:6.2f} s CPU  {mb / median:6.1f} MB/s")
    ratio = statistics.median(js_s) / statistics.median(txt_s)
    print(f"JS build / verbatim build: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
