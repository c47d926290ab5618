#!/usr/bin/env python3
"""Benchmark for issue 22 item 4: the quick inner loop, ``python -m pytest -m "not slow"``.

    python bench/bench_inner_loop.py --before REF [--after REF] [--rounds N]
                                     [--modes serial,n2] [--bytecode on|off] [--json PATH]

Two trees of this repository, ``--before`` and ``--after`` (git refs, extracted with
``git archive`` into a temporary folder; ``--after`` defaults to this checkout's working
tree), each run as a whole ``python -m pytest -m "not slow" -q -p no:cacheprovider``
serially and with ``-n 2``. Rounds alternate the order of the trees, so a change in the
machine's load falls on both. A figure is the median over ``--rounds`` of the wall time
(spawn to exit) and of the CPU time (user+sys of pytest and every process it waited for:
xdist workers, the subprocesses of tests; from ``os.wait4``), and the after/before ratio is
the median of the per-round ratios. The machine's load average is printed before and after.

``--bytecode on`` (the default) is a normal developer machine: byte code and pytest's
rewritten test modules are cached, in a private ``PYTHONPYCACHEPREFIX`` per tree written by
one unmeasured warm-up run, so nothing is written into the trees. ``--bytecode off`` keeps
``PYTHONDONTWRITEBYTECODE=1`` (this project's dev machines): every run recompiles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = {"serial": [], "n2": ["-n", "2"]}
PYTEST = ["-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"]


def extract(ref: str, into: Path) -> Path:
    """``git archive REF`` unpacked into ``into`` (the tree as committed, nothing else)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref],
                             capture_output=True, check=True, timeout=120).stdout
    archive_path = into.parent / f"{into.name}.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(into, filter="data")
    archive_path.unlink()
    return into


def child_env(pycache: Path, bytecode: bool) -> dict[str, str]:
    """The host's environment without its AWS/CDN/Flask settings; byte code as asked."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CDN_", "FLASK_")) and k != "PYTHONDONTWRITEBYTECODE"}
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(tree: Path, mode: str, env: dict[str, str]) -> dict[str, float | int]:
    """One whole pytest run in ``tree``: wall and CPU seconds, and the tests that passed."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *PYTEST, *MODES[mode]], cwd=tree, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    counts = {word: int(number) for number, word in
              re.findall(r"(\d+) (passed|failed|errors?)\b", output.splitlines()[-1])}
    if not counts.get("passed"):  # no run to time (a collection error, say): stop
        raise SystemExit(f"pytest ran nothing in {tree} ({mode}):\n{output[-3000:]}")
    if os.waitstatus_to_exitcode(status) != 0:
        # A flaky test under load still gives a whole run to time: keep it, and say so.
        failures = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
        print(f"  (not green: {'; '.join(failures)[:500]})", flush=True)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "passed": counts["passed"], "failed": counts.get("failed", 0)}


def measure(trees: dict[str, Path], envs: dict[str, dict[str, str]], modes: list[str],
            rounds: int) -> dict[str, dict[str, list[dict[str, float | int]]]]:
    """Every (tree, mode) once a round; the trees' order alternates from round to round."""
    runs: dict[str, dict[str, list[dict[str, float | int]]]] = {
        name: {mode: [] for mode in modes} for name in trees}
    names = list(trees)
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for mode in modes:
            for name in order:
                result = run(trees[name], mode, envs[name])
                runs[name][mode].append(result)
                print(f"round {number + 1} {mode:6} {name:6} wall {result['wall']:7.1f} s  "
                      f"cpu {result['cpu']:7.1f} s  ({result['passed']} passed)", flush=True)
    return runs


def summary(runs: dict[str, dict[str, list[dict[str, float | int]]]],
            modes: list[str]) -> list[dict[str, object]]:
    """Medians per tree and mode, and the median of the per-round after/before ratios."""
    rows: list[dict[str, object]] = []
    for mode in modes:
        before, after = runs["before"][mode], runs["after"][mode]
        row: dict[str, object] = {"mode": mode, "passed": [before[0]["passed"],
                                                           after[0]["passed"]]}
        for measure_name in ("wall", "cpu"):
            row[f"before_{measure_name}"] = statistics.median(r[measure_name] for r in before)
            row[f"after_{measure_name}"] = statistics.median(r[measure_name] for r in after)
            row[f"{measure_name}_ratio"] = statistics.median(
                a[measure_name] / b[measure_name] for a, b in zip(after, before, strict=True))
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git ref of the tree to compare with")
    parser.add_argument("--after", default=None, help="git ref (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="serial,n2", help="comma-separated: serial, n2")
    parser.add_argument("--bytecode", choices=("on", "off"), default="on")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs here")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes) or not 1 <= args.rounds <= 50:
        parser.error(f"--modes from {sorted(MODES)}; --rounds 1..50")
    with tempfile.TemporaryDirectory(prefix="bench-inner-loop-") as scratch:
        base = Path(scratch)
        trees = {"before": extract(args.before, base / "before"),
                 "after": extract(args.after, base / "after") if args.after else REPO}
        envs = {name: child_env(base / f"pycache-{name}", args.bytecode == "on")
                for name in trees}
        if args.bytecode == "on":  # unmeasured: writes each tree's byte code cache
            for name in trees:
                run(trees[name], "n2", envs[name])
        load_before = os.getloadavg()
        runs = measure(trees, envs, modes, args.rounds)
        load_after = os.getloadavg()
    rows = summary(runs, modes)
    print(f"\nload average (1/5/15 min) before {load_before} after {load_after}; "
          f"{args.rounds} rounds, bytecode {args.bytecode}")
    print(f"{'mode':6} {'before wall':>11} {'after wall':>10} {'ratio':>6} "
          f"{'before cpu':>10} {'after cpu':>9} {'ratio':>6}  passed")
    for row in rows:
        print(f"{row['mode']:6} {row['before_wall']:11.1f} {row['after_wall']:10.1f} "
              f"{row['wall_ratio']:6.3f} {row['before_cpu']:10.1f} {row['after_cpu']:9.1f} "
              f"{row['cpu_ratio']:6.3f}  {row['passed']}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": rows, "load": [
            load_before, load_after], "args": vars(args) | {"json": str(args.json)}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
