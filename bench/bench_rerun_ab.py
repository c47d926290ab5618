"""A/B of two checkouts on the no-change re-run of a big tree (issue 25: 100,000 files).

``python bench/bench_rerun_ab.py BEFORE_TREE AFTER_TREE [--files 100000] [--rounds 5]``:
:func:`bench_scale.tree` (built if missing) deployed once by each tree's ``deploy.py`` into
its own folder target with a warm hash cache (that first deploy is timed too, one round),
re-run once untimed (a checkout may record what it learned), then re-run ``--rounds`` times
per tree, the order alternating. Prints medians of wall time, CPU (user+sys of the child,
steadier on a shared machine) and peak RSS (``ru_maxrss`` of the child: the harness is
~20 MiB, so it never sets the figure), and after/before ratios, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale

Run = tuple[float, float, float]  # wall s, CPU s, peak RSS MiB


def deploy(tree: str, static: Path, work: Path) -> Run:
    """One deploy by ``tree``'s ``deploy.py`` into ``work``: (wall, CPU, peak RSS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = tree
    cmd = [sys.executable, f"{tree}/deploy.py", "--static-dir", str(static), "--target-dir",
           str(work / "out"), "--hash-cache", str(work / "h.json"), "--manifest",
           str(work / "m.json"), "--no-assets", "--json", "-q"]
    started = time.monotonic()
    child = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{tree}: exit status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def show(label: str, runs: dict[str, list[Run]]) -> None:
    medians = {name: [statistics.median(run[i] for run in rows) for i in range(3)]
               for name, rows in runs.items()}
    for name, (wall, cpu, rss) in medians.items():
        print(f"{label} {name}: wall {wall:.2f} s, CPU {cpu:.2f} s, peak RSS {rss:.0f} MiB"
              f" ({len(runs[name])} runs)")
    before, after = medians["before"], medians["after"]
    print(f"{label} after/before: wall {after[0] / before[0]:.3f}, CPU {after[1] / before[1]:.3f},"
          f" RSS {after[2] / before[2]:.3f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    trees = {"before": args.before, "after": args.after}
    static = bench_scale.tree(args.files)
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="cdn-rerun-ab-") as tmp:
        works = {name: Path(tmp) / name for name in trees}
        first: dict[str, list[Run]] = {}
        for name, tree in trees.items():
            works[name].mkdir()
            first[name] = [deploy(tree, static, works[name])]
            deploy(tree, static, works[name])  # untimed: whatever a checkout records
        show("first deploy", first)
        again: dict[str, list[Run]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(reversed(trees))):
                again[name].append(deploy(trees[name], static, works[name]))
        show("no-change re-run", again)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1:])
