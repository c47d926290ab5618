"""A/B of two checkouts (issue 22: the deploy as phases must cost what the hub did).

``python bench/bench_phases_ab.py BEFORE_TREE AFTER_TREE ROUNDS [--warm [--no-record]]``: the
2,000-file corpus (:mod:`corpus`, built if missing) deployed by each tree's ``deploy.py`` into a
fresh folder target, rounds alternating the order; ``--warm`` times a no-change re-deploy with a
warm hash cache instead of the first deploy, and ``--no-record`` removes the first deploy's tree
record (``h.json.tree``, :mod:`pipeline.release.tree_record`) before it, so the full no-change
path is timed rather than the answer from the record. Prints medians and after/before ratios of the
wall time and of the child's CPU (user+sys, steadier on a shared machine).

``--instructions`` counts instead of timing (ROUNDS is then ignored: the count does not move
with the machine's load): one run per tree under ``valgrind --tool=callgrind``, with the
instructions spent in SHA-256 given apart. Valgrind does not emulate the CPU's SHA
extensions, so OpenSSL hashes in software under it at ~25 instructions per byte; natively
(``sha_ni``) 2 MB take ~1 ms. ``--no-current-record`` also removes the current release's record
(``h.json.current``, :mod:`pipeline.release.recognise`): the run that learns a release
someone else published. An untimed run first writes the byte code (``PYTHONDONTWRITEBYTECODE``
is dropped), or the count would be mostly the compiler's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus


def run(tree: str, static: str, tmp: str, *, warm: bool, extra: tuple[str, ...] = (),
        no_record: bool = False, no_current: bool = False,
        callgrind: bool = False) -> tuple[float, float]:
    """One deploy by ``tree``'s ``deploy.py`` into ``tmp`` (``extra`` flags appended):
    (wall seconds, CPU seconds), or with ``callgrind`` (instructions, of which SHA-256)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = tree
    cache = ("--hash-cache", f"{tmp}/h.json") if warm else ("--no-hash-cache",)
    cmd = [sys.executable, f"{tree}/deploy.py", "--static-dir", static, "--target-dir",
           f"{tmp}/out", *cache, "--manifest", f"{tmp}/m.json", "--json", "-q", *extra]
    if callgrind:  # byte code written by the untimed run, or the compiler would be counted
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if callgrind and not warm:  # an untimed first deploy, undone
        subprocess.run(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=True)
        shutil.rmtree(f"{tmp}/out")
        Path(tmp, "m.json").unlink()
    if warm:  # the first deploy fills the target and the cache; the re-run is timed
        subprocess.run(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=True)
        if no_record:
            Path(tmp, "h.json.tree").unlink(missing_ok=True)
        if no_current:
            Path(tmp, "h.json.current").unlink(missing_ok=True)
    if callgrind:
        return _instructions(cmd, env, tmp)
    started = time.monotonic()
    child = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{tree}: exit status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def _instructions(cmd: list[str], env: dict[str, str], tmp: str) -> tuple[float, float]:
    """``cmd`` under callgrind: (instructions, instructions inside ``SHA256_Update``)."""
    out = f"{tmp}/callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q", *cmd],
                   env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=True)
    report = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                            capture_output=True, text=True, check=True).stdout

    def count(name: str) -> float:
        lines = [line for line in report.splitlines() if name in line]
        return float(lines[0].split()[0].replace(",", "")) if lines else 0.0

    return count("PROGRAM TOTALS"), count(":SHA256_Update ")


def _count_instructions(trees: dict[str, str], static: str, *, warm: bool, no_record: bool,
                        no_current: bool) -> None:
    counts = {}
    for name, tree in trees.items():
        with tempfile.TemporaryDirectory() as tmp:
            counts[name] = run(tree, static, tmp, warm=warm, no_record=no_record,
                               no_current=no_current, callgrind=True)
        total, sha = counts[name]
        print(f"{name}: {total / 1e6:,.1f} M instructions, {sha / 1e6:,.1f} M of them SHA-256")
    (total_b, sha_b), (total_a, sha_a) = counts["before"], counts["after"]
    print(f"ratio after/before: {total_a / total_b:.4f}; "
          f"outside SHA-256 {(total_a - sha_a) / (total_b - sha_b):.4f}")


def main(argv: list[str]) -> None:
    trees = {"before": argv[0], "after": argv[1]}
    rounds, warm, no_record = int(argv[2]), "--warm" in argv, "--no-record" in argv
    if not corpus.default_dir().is_dir():
        subprocess.run([sys.executable, str(Path(__file__).with_name("corpus.py"))], check=True)
    static = str(corpus.default_dir())
    if "--instructions" in argv:
        _count_instructions(trees, static, warm=warm, no_record=no_record,
                            no_current="--no-current-record" in argv)
        return
    res: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for r in range(rounds):
        for name in (list(trees) if r % 2 == 0 else list(reversed(trees))):  # alternate order
            with tempfile.TemporaryDirectory() as tmp:
                res[name].append(run(trees[name], static, tmp, warm=warm, no_record=no_record))
    medians = {name: (statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows))
               for name, rows in res.items()}
    for name, (wall, cpu) in medians.items():
        print(f"{name}: wall median {wall:.3f} s, CPU median {cpu:.3f} s")
    (wall_b, cpu_b), (wall_a, cpu_a) = medians["before"], medians["after"]
    print(f"ratio after/before: wall {wall_a / wall_b:.3f}, CPU {cpu_a / cpu_b:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
