#!/usr/bin/env python3
"""Benchmarks for issue 2: ``python deploy.py`` against its baselines, as whole processes.

    python bench/bench_deploy.py [--rounds N] [--quick] [--only upload,hash,rss]

See bench/README.md for what each figure means. In short: a moto S3 server runs
in its own process on 127.0.0.1 (free port) and logs every request; each
contender is a separate process timed from spawn to exit (``os.wait4`` also
gives its CPU time and peak RSS); requests are counted per run from the
server's log. Every round runs every contender of a group in a rotated order,
and the figures are medians of per-round ratios, because the machine is noisy.
Results go to bench/results/ as JSON; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import contextlib

import corpus

PYTHON = sys.executable
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK = "127.0.0.1"

#: Hard bounds: no loop, server wait or child process runs unbounded.
MAX_ROUNDS = 20
SERVER_START_TIMEOUT = 30.0
SMALL_RUN_TIMEOUT = 600.0
BIG_RUN_TIMEOUT = 1200.0
BIG_FILE_SIZE = 1024**3
TIME_BIN = "/usr/bin/time"

#: The targets of issue 2 (see README.md).
TARGET_FIRST_VS_RAW = 1.05
TARGET_RERUN_VS_AWS = 0.6
#: Issue 14: a no-change re-deploy from a fresh CI checkout (no hash cache, new mtimes).
TARGET_RERUN_GIT_VS_AWS = 0.5
TARGET_HASH_VS_BARE = 1.5
TARGET_WARM_DRY_RUN_S = 0.5


# --------------------------------------------------------------------------------------------
# child processes


@dataclass
class Run:
    """One contender process: wall time, CPU, peak RSS, exit code, and the requests it made."""

    name: str
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    returncode: int
    requests: dict[str, int] = field(default_factory=dict)
    #: "Maximum resident set size" as /usr/bin/time -v reported it (RSS runs only).
    time_v_maxrss_kib: int | None = None
    #: CPU the S3 server spent while this run was going (it serves nobody else).
    server_cpu_s: float = 0.0
    #: CPU the whole machine spent meanwhile that was neither this run's nor the server's:
    #: other people's work. Divided by wall time it is how many cores were taken from us.
    foreign_cpu_s: float = 0.0
    round: int = 0
    position: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def total_cpu_s(self) -> float:
        """Client plus server CPU: the work a run costs, much steadier than wall time under load."""
        return self.cpu_s + self.server_cpu_s

    @property
    def foreign_cores(self) -> float:
        return self.foreign_cpu_s / self.wall_s if self.wall_s else 0.0


def resolve_aws() -> list[str]:
    """The ``aws`` command without a pyenv shim in front (the shim's bash would be timed too)."""
    found = shutil.which("aws")
    if not found:
        raise SystemExit("aws (awscli v1) is not on PATH: pip install awscli")
    if "/shims/" in found:
        try:
            real = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
            found = real or found
        except (OSError, subprocess.SubprocessError):
            pass
    return [found]


def child_env(scratch: Path) -> dict[str, str]:
    """The host's environment minus any AWS/CDN/proxy settings, plus fake loopback-only
    credentials."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CDN_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(scratch / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-aws-credentials"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def run_process(name: str, cmd: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path,
                timeout: float) -> Run:
    """Spawn ``cmd``, wait for it with ``os.wait4`` and return its wall time and rusage."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, args=(proc.pid,))
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Run(name=name, wall_s=wall, user_s=usage.ru_utime, sys_s=usage.ru_stime,
               maxrss_kib=usage.ru_maxrss, returncode=proc.returncode)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / _TICK


def process_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of a live process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _time_maxrss_kib(report: Path) -> int | None:
    try:
        text = report.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return int(match.group(1)) if match else None


def check_ok(run: Run, log: Path) -> None:
    if run.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{run.name} failed with exit code {run.returncode}:\n{tail}")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def resolve_code(ref: str | None, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """Which deploy.py is measured: the working tree (default) or ``git archive REF``.

    Other people edit pipeline/ while benches run, so the result records the commit
    and whether the measured files differed from it.
    """
    info: dict[str, Any] = {}
    try:
        info["head"] = _git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        info["head"] = None
    if ref is None:
        info["source"] = "working tree"
        try:
            dirty = _git("status", "--porcelain", "--", "pipeline", "deploy.py")
        except (OSError, subprocess.SubprocessError):
            dirty = "unknown"
        info["uncommitted_changes"] = dirty.splitlines()
        return REPO, info
    commit = _git("rev-parse", f"{ref}^{{commit}}")
    root = scratch / f"code-{commit[:12]}"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "deploy.py", "pipeline"],
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True, timeout=60)
    info.update(source=f"git archive {ref}", commit=commit, uncommitted_changes=[])
    return root, info


# --------------------------------------------------------------------------------------------
# the S3 server and its request log

_LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def classify(method: str, target: str) -> tuple[str, str]:
    """(bucket, kind) of one logged request; kind is list/put/put_part/head_bucket/..."""
    path, _, query = target.partition("?")
    if path.startswith("/moto-api"):
        return "", "moto_api"
    bucket, _, key = path.lstrip("/").partition("/")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    if not key:
        if method == "GET" and ("list-type" in params or not params or "prefix" in params
                                or "delimiter" in params or "marker" in params):
            return bucket, "list"
        if method == "HEAD":
            return bucket, "head_bucket"
        if method == "PUT" and not params:
            return bucket, "create_bucket"
        return bucket, f"bucket_{method.lower()}"
    if method == "PUT":
        return bucket, "put_part" if "partNumber" in params else "put"
    if method == "POST":
        return bucket, "mpu_create" if "uploads" in params else "mpu_complete"
    if method == "HEAD":
        return bucket, "head_object"
    if method == "GET":
        return bucket, "get_object"
    return bucket, f"object_{method.lower()}"


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 in its own process, its log in a file."""

    def __init__(self, scratch: Path, env: dict[str, str]) -> None:
        self.log_path = scratch / "moto-server.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        for _attempt in range(3):  # a free port can be taken between probing and binding
            with socket.socket() as probe:
                probe.bind((LOOPBACK, 0))
                self.port = probe.getsockname()[1]
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self._request("GET", "/moto-api/")
                    return
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise SystemExit(f"moto server did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()

    def _request(self, method: str, path: str) -> None:
        req = urllib.request.Request(
            self.endpoint + path, method=method, data=b"" if method != "GET" else None
        )
        with self._opener.open(req, timeout=30) as response:
            response.read()

    def create_bucket(self, name: str) -> None:
        self._request("PUT", f"/{name}")

    def reset(self) -> None:
        """Drop every bucket (frees the server's memory between rounds)."""
        self._request("POST", "/moto-api/reset")

    def mark(self) -> int:
        return self.log_path.stat().st_size

    def requests_since(self, offset: int, buckets: Sequence[str]) -> dict[str, int]:
        """Requests logged after ``offset`` for ``buckets``, by kind; anything else is 'foreign'.

        werkzeug logs a request before it sends the response, so every request of a
        process that has exited is already in the file.
        """
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
        counts: Counter[str] = Counter()
        for match in _LOG_LINE.finditer(text):
            bucket, kind = classify(match["method"], match["target"])
            if kind == "moto_api":
                continue
            if bucket not in buckets:
                counts["foreign"] += 1
                continue
            counts[kind] += 1
            counts["total"] += 1
            status = int(match["status"])
            if status == 404 and kind in ("get_object", "head_object"):
                counts["not_found"] += 1  # e.g. asking for a previous manifest that is not there
            elif status == 412:
                counts["precondition_failed"] += 1
            elif status >= 400:
                counts["errors"] += 1
        counts["puts"] = counts["put"] + counts["put_part"]
        return dict(counts)


# --------------------------------------------------------------------------------------------
# the benchmark


def rotated(items: Sequence[Any], round_index: int) -> list[Any]:
    k = round_index % len(items)
    return list(items[k:]) + list(items[:k])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="cdn-bench-"))
        self.env = child_env(self.scratch)
        self.aws = resolve_aws()
        self.server = MotoServer(self.scratch, self.env)
        self.runid = uuid.uuid4().hex[:6]
        self.runs: dict[str, list[Run]] = {}
        self.rounds: dict[str, list[dict[str, float]]] = {}
        self.corpus, stamp = corpus.ensure(args.corpus)
        self.corpus_stamp: dict[str, Any] = dict(stamp)
        self.warm_cache = self.scratch / "warm-hash-cache.json"
        if args.deploy_root:
            self.deploy_root = args.deploy_root.resolve()
            self.code = {"source": f"folder {self.deploy_root}", "uncommitted_changes": []}
        else:
            self.deploy_root, self.code = resolve_code(args.ref, self.scratch)
        self.empty_target = self.scratch / "empty-target"

    # -- plumbing ------------------------------------------------------------------------------

    def _exec(self, name: str, cmd: Sequence[str], buckets: Sequence[str] = (), *,
              timeout: float = SMALL_RUN_TIMEOUT, measure_rss: bool = False) -> Run:
        """Run one contender; with ``measure_rss`` it is started through ``/usr/bin/time -v``.

        A child forked straight from this harness inherits the harness's resident pages in
        its peak-RSS accounting (the kernel records the pre-exec image), so peak RSS is only
        taken through the tiny ``time`` launcher, whose report is cross-checked with wait4.
        """
        log = self.scratch / f"{name}.log"
        time_report = self.scratch / f"{name}.time"
        if measure_rss:
            cmd = [TIME_BIN, "-v", "-o", str(time_report), *cmd]
        offset = self.server.mark() if self.server.proc else 0
        server_pid = self.server.proc.pid if self.server.proc else None
        server_before = process_cpu_s(server_pid) if server_pid else 0.0
        busy_before = machine_busy_s()
        run = run_process(name, cmd, env=self.env, cwd=self.scratch, log=log, timeout=timeout)
        busy = machine_busy_s() - busy_before
        run.server_cpu_s = (process_cpu_s(server_pid) - server_before) if server_pid else 0.0
        run.foreign_cpu_s = max(0.0, busy - run.cpu_s - run.server_cpu_s)
        check_ok(run, log)
        if measure_rss:
            # wait4 on the launcher covers it and its child: max(tiny time, the contender).
            run.time_v_maxrss_kib = _time_maxrss_kib(time_report)
        else:
            run.maxrss_kib = 0  # not meaningful without the launcher, see above
        if self.server.proc:
            run.requests = self.server.requests_since(offset, buckets)
        return run

    def deploy_cmd(self, static_dir: Path, bucket: str | None, *extra: str) -> list[str]:
        # The corpus is not the demo's static folder: build none of its bundles.
        cmd = [PYTHON, str(self.deploy_root / "deploy.py"), "--static-dir", str(static_dir),
               "--no-assets"]
        if bucket:
            cmd += ["--bucket", bucket, "--endpoint-url", self.server.endpoint,
                    "--manifest", str(self.scratch / f"manifest-{bucket}.json")]
        return cmd + list(extra)

    def aws_sync_cmd(self, static_dir: Path, bucket: str, prefix: str) -> list[str]:
        return [*self.aws, "s3", "sync", str(static_dir), f"s3://{bucket}/{prefix}",
                "--endpoint-url", self.server.endpoint]

    def bucket(self, label: str, round_index: int) -> str:
        return f"bench-{self.runid}-r{round_index}-{label}"

    def group(self, section: str, round_index: int,
              contenders: Sequence[tuple[str, Callable[[], Run]]]) -> dict[str, Run]:
        """Run every contender once, in this round's rotation."""
        out: dict[str, Run] = {}
        for position, (name, thunk) in enumerate(rotated(contenders, round_index)):
            run = thunk()
            run.round, run.position = round_index, position
            out[name] = run
            self.runs.setdefault(f"{section}/{name}", []).append(run)
            self._progress(
                f"  r{round_index} {section:<7} {name:<22} {run.wall_s:7.2f}s wall "
                f"{run.cpu_s:6.2f}s cpu {run.server_cpu_s:6.2f}s server "
                f"{run.foreign_cores:4.1f} foreign cores "
                + (f"{run.maxrss_kib / 1024:7.1f} MiB peak RSS " if run.maxrss_kib else "")
                + _fmt_requests(run.requests)
            )
        return out

    def _progress(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # -- sections ------------------------------------------------------------------------------

    def setup_upload(self) -> None:
        """Warm a hash cache for the re-deploy with one untimed deploy."""
        bucket = f"bench-{self.runid}-warmup"
        self.server.create_bucket(bucket)
        self._exec(
            "warmup",
            self.deploy_cmd(self.corpus, bucket, "--hash-cache", str(self.warm_cache)),
            [bucket],
        )
        self.server.reset()
        self.make_git_source()

    def make_git_source(self) -> None:
        """A git repository whose ``static/`` is the corpus (hard links: no copy), cloned per round.

        A fresh clone is CI's case: new mtimes, no hash cache, but git's index knows every
        file's blob id.
        """
        self.git_source = self.scratch / "git-source"
        shutil.copytree(self.corpus, self.git_source / "static", copy_function=os.link)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "corpus"]):
            subprocess.run([*git, *args], cwd=self.git_source, check=True, timeout=600,
                           stdout=subprocess.DEVNULL)

    def fresh_checkout(self, name: str) -> Path:
        """A new clone of the corpus repository (untimed); its ``static/`` folder."""
        clone = self.scratch / name
        shutil.rmtree(clone, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", str(self.git_source), str(clone)], check=True,
                       timeout=600)
        return clone / "static"

    def upload_round(self, r: int) -> None:
        b_deploy, b_raw, b_aws = (self.bucket(x, r) for x in ("deploy", "raw", "aws"))
        for b in (b_deploy, b_raw, b_aws):
            self.server.create_bucket(b)
        # The first deploy runs in a git checkout, so its release records the blob ids.
        first_dir = self.fresh_checkout("checkout-first")
        first = self.group(
            "first",
            r,
            [
                (
                    "deploy",
                    lambda: self._exec(
                        "deploy-first",
                        self.deploy_cmd(first_dir, b_deploy, "--no-hash-cache"),
                        [b_deploy],
                    ),
                ),
                (
                    "raw_put_loop",
                    lambda: self._exec(
                        "raw-put-loop",
                        [
                            PYTHON,
                            str(BENCH_DIR / "raw_put.py"),
                            str(self.corpus),
                            b_raw,
                            self.server.endpoint,
                            "--prefix",
                            "raw",
                            "--workers",
                            "16",
                        ],
                        [b_raw],
                    ),
                ),
                (
                    "aws_sync",
                    lambda: self._exec(
                        "aws-sync-first", self.aws_sync_cmd(self.corpus, b_aws, "aws"), [b_aws]
                    ),
                ),
            ],
        )
        ci_dir = self.fresh_checkout("checkout-ci")
        rerun = self.group("rerun", r, [
            ("deploy_fresh_git_checkout", lambda: self._exec("deploy-rerun-git", self.deploy_cmd(
                ci_dir, b_deploy, "--no-hash-cache"), [b_deploy])),
            ("deploy_warm_cache", lambda: self._exec("deploy-rerun-warm", self.deploy_cmd(
                self.corpus, b_deploy, "--hash-cache", str(self.warm_cache)), [b_deploy])),
            ("deploy_no_cache", lambda: self._exec("deploy-rerun-nocache", self.deploy_cmd(
                self.corpus, b_deploy, "--no-hash-cache"), [b_deploy])),
            ("aws_sync", lambda: self._exec("aws-sync-rerun", self.aws_sync_cmd(
                self.corpus, b_aws, "aws"), [b_aws])),
        ])
        self.rounds.setdefault("upload", []).append(
            {
                "first_deploy_vs_raw": first["deploy"].wall_s / first["raw_put_loop"].wall_s,
                "first_deploy_vs_aws": first["deploy"].wall_s / first["aws_sync"].wall_s,
                "first_aws_vs_raw": first["aws_sync"].wall_s / first["raw_put_loop"].wall_s,
                "first_deploy_cpu_vs_raw_cpu": first["deploy"].cpu_s / first["raw_put_loop"].cpu_s,
                "first_deploy_vs_raw_total_cpu": first["deploy"].total_cpu_s
                / first["raw_put_loop"].total_cpu_s,
                "first_deploy_vs_aws_total_cpu": first["deploy"].total_cpu_s
                / first["aws_sync"].total_cpu_s,
                "rerun_warm_vs_aws": rerun["deploy_warm_cache"].wall_s / rerun["aws_sync"].wall_s,
                "rerun_nocache_vs_aws": rerun["deploy_no_cache"].wall_s / rerun["aws_sync"].wall_s,
                "rerun_git_checkout_vs_aws": (
                    rerun["deploy_fresh_git_checkout"].wall_s / rerun["aws_sync"].wall_s
                ),
                "rerun_warm_vs_aws_total_cpu": rerun["deploy_warm_cache"].total_cpu_s
                / rerun["aws_sync"].total_cpu_s,
                "foreign_cores_upload": median(
                    [run.foreign_cores for run in [*first.values(), *rerun.values()]]
                ),
            }
        )
        self.server.reset()

    def hash_round(self, r: int) -> None:
        self.empty_target.mkdir(exist_ok=True)
        target = ["--target-dir", str(self.empty_target), "--dry-run"]
        runs = self.group("hash", r, [
            ("deploy_dry_run_cold", lambda: self._exec("dry-run-cold", self.deploy_cmd(
                self.corpus, None, "--no-hash-cache", *target))),
            ("bare_hashlib", lambda: self._exec("bare-hash", [
                PYTHON, str(BENCH_DIR / "bare_hash.py"), str(self.corpus)])),
            ("deploy_dry_run_warm", lambda: self._exec("dry-run-warm", self.deploy_cmd(
                self.corpus, None, "--hash-cache", str(self.warm_cache), *target))),
            ("python_startup", lambda: self._exec("python-startup", [PYTHON, "-c", "pass"])),
        ])
        self.rounds.setdefault("hash", []).append(
            {
                "cold_dry_run_vs_bare": runs["deploy_dry_run_cold"].wall_s
                / runs["bare_hashlib"].wall_s,
                "cold_dry_run_vs_bare_cpu": runs["deploy_dry_run_cold"].cpu_s
                / runs["bare_hashlib"].cpu_s,
                "foreign_cores_hash": median([run.foreign_cores for run in runs.values()]),
                "warm_dry_run_s": runs["deploy_dry_run_warm"].wall_s,
                "python_startup_s": runs["python_startup"].wall_s,
            }
        )

    def ensure_warm_cache(self) -> None:
        """The warm dry-run needs a saved hash cache; a dry run never saves one, so deploy to a
        folder."""
        if self.warm_cache.exists():
            return
        folder = self.scratch / "warm-folder-target"
        self._exec("warm-folder", self.deploy_cmd(self.corpus, None, "--target-dir", str(folder),
                                                  "--hash-cache", str(self.warm_cache), "-q"))
        shutil.rmtree(folder, ignore_errors=True)

    def rss_rounds(self, rounds: int) -> None:
        big_dir = Path(tempfile.mkdtemp(prefix="cdn-bench-big-", dir="/tmp"))
        try:
            big = big_dir / "huge-asset.bin"
            self._progress(f"writing {BIG_FILE_SIZE >> 20} MiB to {big} ...")
            chunk = os.urandom(16 * 1024 * 1024)
            with open(big, "wb") as out:  # parts differ, so nothing can dedupe them
                out.writelines(
                    chunk[:-8] + i.to_bytes(8, "big") for i in range(BIG_FILE_SIZE // len(chunk))
                )
            for r in range(rounds):
                b_deploy, b_aws = self.bucket("big-deploy", r), self.bucket("big-aws", r)
                self.server.create_bucket(b_deploy)
                self.server.create_bucket(b_aws)
                runs = self.group("rss", r, [
                    ("deploy", lambda b=b_deploy: self._exec("big-deploy", self.deploy_cmd(  # type: ignore[misc]
                        big_dir, b, "--no-hash-cache"), [b], timeout=BIG_RUN_TIMEOUT,
                        measure_rss=True)),
                    ("aws_sync", lambda b=b_aws: self._exec("big-aws-sync", self.aws_sync_cmd(  # type: ignore[misc]
                        big_dir, b, "aws"), [b], timeout=BIG_RUN_TIMEOUT,
                        measure_rss=True)),
                ])
                self.rounds.setdefault("rss", []).append({
                    "deploy_rss_vs_aws": runs["deploy"].maxrss_kib / runs["aws_sync"].maxrss_kib,
                    "deploy_rss_mib": runs["deploy"].maxrss_kib / 1024,
                    "aws_rss_mib": runs["aws_sync"].maxrss_kib / 1024,
                    "deploy_wall_vs_aws": runs["deploy"].wall_s / runs["aws_sync"].wall_s,
                    "foreign_cores_rss": median([run.foreign_cores for run in runs.values()]),
                })
                self.server.reset()
        finally:
            shutil.rmtree(big_dir, ignore_errors=True)

    # -- driver --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        sections = self.args.only
        started = time.monotonic()
        load_before = os.getloadavg()
        self.server.start()
        try:
            if "upload" in sections:
                self._progress(f"upload: {self.args.rounds} rounds against {self.server.endpoint}")
                self.setup_upload()
                for r in range(self.args.rounds):
                    self.upload_round(r)
            if "hash" in sections:
                self.ensure_warm_cache()
                self._progress(f"hash: {self.args.rounds} rounds")
                for r in range(self.args.rounds):
                    self.hash_round(r)
            if "rss" in sections:
                self._progress(f"rss: {self.args.rss_rounds} rounds with a 1 GiB file")
                self.rss_rounds(self.args.rss_rounds)
        finally:
            self.server.stop()
        return self.report(time.monotonic() - started, load_before)

    def report(self, elapsed: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for rows in self.rounds.values():
            for key in rows[0]:
                values = [row[key] for row in rows]
                summary[key] = {"median": median(values), "min": min(values), "max": max(values),
                                "per_round": values}
        requests = {name: _median_requests(runs) for name, runs in self.runs.items()}
        return {
            "bench": "deploy (issue 2)",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "elapsed_s": round(elapsed, 1),
            "rounds": self.args.rounds,
            "rss_rounds": self.args.rss_rounds if "rss" in self.args.only else 0,
            "sections": list(self.args.only),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_before": load_before,
                "load_after": os.getloadavg(),
                "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
                "versions": {
                    p: _version(p) for p in ("boto3", "botocore", "s3transfer", "moto", "awscli")
                },
            },
            "code": self.code,
            "corpus": {"path": str(self.corpus), **self.corpus_stamp},
            "sanity": self.sanity(),
            "summary": summary,
            "requests_median": requests,
            "targets": self.verdicts(summary, requests),
            "runs": {
                name: [
                    {
                        **asdict(run),
                        "cpu_s": run.cpu_s,
                        "total_cpu_s": run.total_cpu_s,
                        "foreign_cores": run.foreign_cores,
                    }
                    for run in runs
                ]
                for name, runs in self.runs.items()
            },
        }

    def sanity(self) -> list[str]:
        """Problems that would make the figures meaningless (empty when all is well)."""
        problems: list[str] = []
        files = int(self.corpus_stamp["count"])
        # (fewest, most) PUTs: the deploy also stores its manifest (and maybe release records)
        expected_puts = {
            "first/deploy": (files + 1, files + 5),
            "first/raw_put_loop": (files, files),
            "first/aws_sync": (files, files),
            "rerun/aws_sync": (0, 0),
        }
        for name, runs in self.runs.items():
            for run in runs:
                where = f"{name} round {run.round}"
                if run.requests.get("errors"):
                    problems.append(f"{where}: {run.requests['errors']} error responses")
                if run.requests.get("foreign"):
                    problems.append(f"{where}: {run.requests['foreign']} requests to other buckets")
                puts = run.requests.get("puts", 0)
                low, high = expected_puts.get(name, (0, 10**9))
                if not low <= puts <= high:
                    problems.append(f"{where}: {puts} PUTs, expected {low}..{high}")
        return problems

    def verdicts(self, s: dict[str, Any], req: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []

        def add(target: str, value: float, ok: bool, detail: str = "") -> None:
            out.append({"target": target, "value": value, "pass": bool(ok), "detail": detail})

        if "first_deploy_vs_raw" in s:
            add(
                f"first deploy <= {TARGET_FIRST_VS_RAW}x raw boto3 16-thread PUT loop",
                s["first_deploy_vs_raw"]["median"],
                s["first_deploy_vs_raw"]["median"] <= TARGET_FIRST_VS_RAW,
            )
            add("first deploy faster than aws s3 sync", s["first_deploy_vs_aws"]["median"],
                s["first_deploy_vs_aws"]["median"] < 1.0)
            objects = int(self.corpus_stamp["count"]) + 1  # + the manifest
            max_lists = math.ceil(objects / 1000) + 1
            for variant, key in (("deploy_warm_cache", "rerun_warm_vs_aws"),
                                 ("deploy_no_cache", "rerun_nocache_vs_aws"),
                                 ("deploy_fresh_git_checkout", "rerun_git_checkout_vs_aws")):
                r = req.get(f"rerun/{variant}", {})
                limit = TARGET_RERUN_GIT_VS_AWS if "git" in variant else TARGET_RERUN_VS_AWS
                add(f"no-change re-deploy ({variant}) <= {limit}x aws s3 sync re-run",
                    s[key]["median"], s[key]["median"] <= limit)
                add(
                    f"no-change re-deploy ({variant}): 0 PUTs",
                    r.get("puts", 0),
                    r.get("puts", 0) == 0,
                    "counted at the server",
                )
                add(f"no-change re-deploy ({variant}): <= {max_lists} listing requests",
                    r.get("list", 0), r.get("list", 0) <= max_lists, f"ceil({objects}/1000)+1")
        if "cold_dry_run_vs_bare" in s:
            add(
                f"cold fingerprint (--dry-run, no cache) <= {TARGET_HASH_VS_BARE}x bare hashlib",
                s["cold_dry_run_vs_bare"]["median"],
                s["cold_dry_run_vs_bare"]["median"] <= TARGET_HASH_VS_BARE,
            )
            add(
                f"warm-cache --dry-run < {TARGET_WARM_DRY_RUN_S} s (absolute)",
                s["warm_dry_run_s"]["median"],
                s["warm_dry_run_s"]["median"] < TARGET_WARM_DRY_RUN_S,
            )
        if "deploy_rss_vs_aws" in s:
            add("peak RSS, 1 GiB file: deploy <= aws s3 sync", s["deploy_rss_vs_aws"]["median"],
                s["deploy_rss_vs_aws"]["median"] <= 1.0)
        return out


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _median_requests(runs: Sequence[Run]) -> dict[str, float]:
    kinds = sorted({k for run in runs for k in run.requests})
    return {k: median([run.requests.get(k, 0) for run in runs]) for k in kinds}


def _fmt_requests(requests: dict[str, int]) -> str:
    if not requests:
        return ""
    keys = (
        "list",
        "puts",
        "put_part",
        "head_bucket",
        "head_object",
        "get_object",
        "errors",
        "foreign",
    )
    return " ".join(f"{k}={requests[k]}" for k in keys if requests.get(k))


# --------------------------------------------------------------------------------------------
# output


def print_table(result: dict[str, Any]) -> None:
    s = result["summary"]
    req = result["requests_median"]
    rows: list[tuple[str, str, str]] = []

    def ratio(label: str, key: str, unit: str = "x") -> None:
        if key in s:
            v = s[key]
            rows.append((label, f"{v['median']:.3f}{unit}", f"[{v['min']:.3f} .. {v['max']:.3f}]"))

    ratio("first deploy / raw boto3 PUT loop", "first_deploy_vs_raw")
    ratio("first deploy / aws s3 sync", "first_deploy_vs_aws")
    ratio("aws s3 sync / raw boto3 PUT loop", "first_aws_vs_raw")
    ratio("  client CPU: deploy / raw loop", "first_deploy_cpu_vs_raw_cpu")
    ratio("  client+server CPU: deploy / raw loop", "first_deploy_vs_raw_total_cpu")
    ratio("  client+server CPU: deploy / aws", "first_deploy_vs_aws_total_cpu")
    ratio("re-deploy (warm cache) / aws re-run", "rerun_warm_vs_aws")
    ratio("re-deploy (no cache) / aws re-run", "rerun_nocache_vs_aws")
    ratio("re-deploy (fresh git checkout) / aws re-run", "rerun_git_checkout_vs_aws")
    ratio("  client+server CPU: warm re-deploy / aws", "rerun_warm_vs_aws_total_cpu")
    ratio("  other people's load (cores)", "foreign_cores_upload", " ")
    ratio("cold --dry-run / bare hashlib", "cold_dry_run_vs_bare")
    ratio("  client CPU: cold --dry-run / bare", "cold_dry_run_vs_bare_cpu")
    ratio("warm --dry-run (seconds)", "warm_dry_run_s", " s")
    ratio("python -c pass (seconds)", "python_startup_s", " s")
    ratio("  other people's load (cores)", "foreign_cores_hash", " ")
    ratio("1 GiB peak RSS deploy / aws", "deploy_rss_vs_aws")
    ratio("1 GiB peak RSS deploy (MiB)", "deploy_rss_mib", " MiB")
    ratio("1 GiB peak RSS aws (MiB)", "aws_rss_mib", " MiB")
    ratio("1 GiB wall deploy / aws", "deploy_wall_vs_aws")
    ratio("  other people's load (cores)", "foreign_cores_rss", " ")
    width = max((len(r[0]) for r in rows), default=10)
    print(f"\nmedians of per-round ratios ({result['rounds']} rounds; "
          f"RSS {result['rss_rounds']} rounds)")
    print(f"{'measure':<{width}}  {'median':>12}  per-round range")
    for label, value, spread in rows:
        print(f"{label:<{width}}  {value:>12}  {spread}")
    req = {
        name: counts for name, counts in req.items() if counts.get("total") or counts.get("foreign")
    }
    if req:
        print("\nrequests at the server (median per run)")
        kinds = (
            "list",
            "puts",
            "put_part",
            "mpu_create",
            "mpu_complete",
            "head_bucket",
            "head_object",
            "get_object",
            "not_found",
            "precondition_failed",
            "errors",
            "foreign",
            "total",
        )
        present = [k for k in kinds if any(r.get(k) for r in req.values())]
        name_w = max(len(n) for n in req)
        print(f"{'run':<{name_w}}  " + "  ".join(f"{k:>12}" for k in present))
        for name, counts in req.items():
            print(f"{name:<{name_w}}  " + "  ".join(f"{counts.get(k, 0):>12g}" for k in present))
    code = result["code"]
    changed = len(code.get("uncommitted_changes", []))
    print(f"\ncode measured: {code.get('source')} at {code.get('commit') or code.get('head')}"
          + (f" with {changed} uncommitted file(s) in pipeline/" if changed else ""))
    for problem in result["sanity"]:
        print(f"SANITY: {problem}")
    print("\ntargets")
    for t in result["targets"]:
        mark = "PASS" if t["pass"] else "FAIL"
        value = t["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  [{mark}] {t['target']}: {shown}" + (f" ({t['detail']})" if t["detail"] else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, help="rounds per group (>= 3; default 7, --quick 3)")
    parser.add_argument(
        "--rss-rounds", type=int, help="rounds of the 1 GiB RSS test (default 3, --quick 1)"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds, one 1 GiB RSS round")
    parser.add_argument("--only", default="upload,hash,rss",
                        help="comma-separated sections: upload (first run + re-run), hash, rss")
    parser.add_argument(
        "--corpus", type=Path, help=f"corpus folder (default {corpus.default_dir()})"
    )
    parser.add_argument(
        "--ref",
        help="measure `git archive REF` of deploy.py + pipeline/ (e.g. HEAD) "
        "instead of the working tree, which others may be editing",
    )
    parser.add_argument(
        "--deploy-root",
        type=Path,
        help="measure the deploy.py (and pipeline/) in this folder, e.g. a patched copy",
    )
    parser.add_argument(
        "--keep-scratch", action="store_true", help="keep logs and caches in the temp dir"
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.rss_rounds = args.rss_rounds or (1 if args.quick else 3)
    if not 3 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be between 3 and {MAX_ROUNDS}")
    if not 1 <= args.rss_rounds <= MAX_ROUNDS:
        parser.error(f"--rss-rounds must be between 1 and {MAX_ROUNDS}")
    if args.ref and args.deploy_root:
        parser.error("give --ref or --deploy-root, not both")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - {"upload", "hash", "rss"}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        if args.keep_scratch:
            print(f"scratch kept in {bench.scratch}", file=sys.stderr)
        else:
            shutil.rmtree(bench.scratch, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    (RESULTS_DIR / f"bench_deploy-{stamp}.json").write_text(text)
    (RESULTS_DIR / "bench_deploy-latest.json").write_text(text)
    print_table(result)
    print(f"\nresults: {RESULTS_DIR / f'bench_deploy-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
