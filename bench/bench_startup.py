#!/usr/bin/env python3
"""Benchmark for issue 14 item 4: start-up of ``deploy.py --help`` and ``from pipeline import CDN``.

    python bench/bench_startup.py [--runs N] [--root DIR] [--top N] [--json PATH]

Whole processes, spawned from a temporary folder with ``--root`` (default: this
checkout) first on ``PYTHONPATH``. Each run spawns every command once, the order
rotating; a command's figure is the median over ``--runs`` runs of its wall time (spawn
to exit) and of its CPU time (user+sys of the child, from ``os.wait4``: steadier than
wall time on a shared machine), byte code cached (see :func:`child_env`). Baselines in
the same runs: ``python -c pass`` (the interpreter), ``import click`` (what any click CLI
pays) and ``import flask`` (what any Flask extension pays); "ours" is the difference.

Then one ``-X importtime`` run of each of the two commands: the top ``--top`` entries
by cumulative time, and the modules of this package that were loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def commands(root: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "import click": [python, "-c", "import click"],
        "import flask": [python, "-c", "import flask"],
        "deploy.py --help": [python, str(root / "deploy.py"), "--help"],
        "from pipeline import CDN": [python, "-c", "from pipeline import CDN"],
    }


#: Which baseline each measured command is compared with.
BASELINES = {"deploy.py --help": "import click", "from pipeline import CDN": "import flask"}


def child_env(root: Path, pycache: str) -> dict[str, str]:
    """Our tree first on the path; byte code cached, as in an installed project.

    ``PYTHONDONTWRITEBYTECODE`` (set on the dev machines) would recompile this package
    on every run while Flask's installed ``.pyc`` files are used: unfair to us, and
    not what a user runs. All byte code goes to a private ``PYTHONPYCACHEPREFIX``,
    written by the warm-up run, so nothing is written into the checkout.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CDN_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(root), PYTHONPYCACHEPREFIX=pycache)
    return env


def spawn(argv: list[str], *, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` (which must exit 0)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(root: Path, runs: int, cwd: str, env: dict[str, str]) -> dict[str, dict[str, float]]:
    argvs = commands(root)
    names = list(argvs)
    for name in names:  # warm-up: byte-code compiled and the page cache filled
        spawn(argvs[name], cwd=cwd, env=env)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for number in range(runs):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = spawn(argvs[name], cwd=cwd, env=env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: {"wall_ms": statistics.median(walls[name]) * 1e3,
                   "cpu_ms": statistics.median(cpus[name]) * 1e3} for name in names}


def importtime(argv: list[str], *, cwd: str, env: dict[str, str]) -> list[tuple[str, int, int]]:
    """``(module, self us, cumulative us)`` for every import of one run of ``argv``."""
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((name.rstrip(), int(self_us), int(cumulative_us)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to measure")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as cwd:
        env = child_env(root, os.path.join(cwd, "pycache"))
        figures = measure(root, args.runs, cwd, env)
        print(f"{args.runs} runs, medians; root {root}")
        print(f"{'command':<26} {'wall ms':>8} {'cpu ms':>8} {'ours: wall':>11} {'cpu':>6}")
        for name, row in figures.items():
            base = figures.get(BASELINES.get(name, ""))
            ours = (
                f"{row['wall_ms'] - base['wall_ms']:>11.1f} {row['cpu_ms'] - base['cpu_ms']:>6.1f}"
                if base
                else ""
            )
            print(f"{name:<26} {row['wall_ms']:>8.1f} {row['cpu_ms']:>8.1f} {ours}")
        imports: dict[str, object] = {}
        for name in BASELINES:
            rows = importtime(commands(root)[name], cwd=cwd, env=env)
            ours_loaded = sorted({module.strip() for module, _, _ in rows
                                 if module.strip().split(".")[0] == "pipeline"})
            print(f"\n-X importtime, {name}: top {args.top} by cumulative us")
            for module, self_us, cumulative_us in sorted(rows, key=lambda r: -r[2])[:args.top]:
                print(f"  {cumulative_us:>8} {self_us:>8}  {module}")
            print(f"  {len(rows)} modules imported; of this package: {', '.join(ours_loaded)}")
            imports[name] = {"modules": len(rows), "pipeline": ours_loaded}
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "imports": imports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
