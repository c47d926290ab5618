#!/usr/bin/env python3
"""Benchmarks for issue 5: verify of 10,000 objects, and prune of 10,000 objects.

    python bench/bench_ops.py [--files 10000] [--rounds 3] [--full] [--save]

moto's S3 server runs in its own process on 127.0.0.1 (a free port), as a real
endpoint would; a counting proxy (tests/faultproxy.py, no faults) sits in front of
it only for the runs whose requests are counted, never for the timed ones.

1. ``deploy.py`` publishes N small files (the setup, timed for information).
2. ``deploy.py verify`` runs ``--rounds`` times as a whole process (spawn to exit,
   interpreter and boto3 import included) and in-process; target: under 5 s.
   One more run through the proxy counts its listing pages and HEADs.
3. A deploy of a one-file tree leaves the N objects unreferenced; ``prune --keep 1
   --grace 0 --force`` through the proxy deletes them; target: <= 11 delete requests.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.cli.main import main
from tests.faultproxy import fault_proxy

LOOPBACK = "127.0.0.1"
SERVER_START_TIMEOUT = 30.0
RUN_TIMEOUT = 600.0
VERIFY_TARGET_SECONDS = 5.0
PRUNE_TARGET_REQUESTS = 11


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("moto server did not start")


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(workdir / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(workdir / "none"), PYTHONPATH=str(REPO))
    return env


def make_corpus(root: Path, count: int) -> Path:
    for i in range(count):
        path = root / f"img/set{i % 20:02d}/file-{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"bench object {i} ".encode() * (5 + i % 20))
    return root


def run_main(args: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    code = main(args)
    return code, time.perf_counter() - started


def run_process(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[int, float, dict[str, Any]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "deploy.py"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    elapsed = time.perf_counter() - started
    return result.returncode, elapsed, json.loads(result.stdout or "{}")


def bench(files: int, rounds: int, full: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"files": files, "rounds": rounds}
    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
            work = Path(tmp)
            env = environment(work)
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            import boto3

            boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            static = make_corpus(work / "static", files)

            def target(url: str = endpoint, static_dir: Path = static) -> list[str]:
                return ["--bucket", bucket, "--endpoint-url", url, "--static-dir", str(static_dir),
                        "--manifest", str(work / "manifest.json"), "--json", "-q"]

            code, seconds = run_main([*target(), "--hash-cache", str(work / "cache.json")])
            assert code == 0, "setup deploy failed"
            figures["setup_deploy_s"] = round(seconds, 2)

            process_times, inproc_times = [], []
            for _ in range(rounds):
                code, seconds, report = run_process(["verify", *target()], env, work)
                assert code == 0 and report["ok"], report
                process_times.append(seconds)
                code, seconds = run_main(["verify", *target()])
                assert code == 0
                inproc_times.append(seconds)
            figures["verify_process_s"] = [round(t, 2) for t in process_times]
            figures["verify_in_process_s"] = [round(t, 2) for t in inproc_times]
            figures["verify_process_median_s"] = round(statistics.median(process_times), 2)
            figures["verify_target_met"] = max(process_times) < VERIFY_TARGET_SECONDS

            with fault_proxy(endpoint, methods=()) as proxy:
                code, _, report = run_process(["verify", *target(proxy.url)], env, work)
            figures["verify_requests"] = {
                "list_pages": proxy.count("GET", "list-type=2"),
                "heads": proxy.count("HEAD", "/static/"),
                "total": sum(proxy.requests.values()),
                "inspected": report.get("inspected"),
            }
            if full:
                code, seconds, report = run_process(["verify", "--full", *target()], env, work)
                figures["verify_full_head_every_object_s"] = round(seconds, 2)

            small = make_corpus(work / "small", 1)
            code, _ = run_main([*target(static_dir=small), "--no-hash-cache"])
            assert code == 0, "second deploy failed"
            with fault_proxy(endpoint, methods=()) as proxy:
                code, seconds, report = run_process(
                    ["prune", "--keep", "1", "--grace", "0", "--force", *target(proxy.url)],
                    env, work)
            assert code == 0, report
            figures["prune"] = {
                "deleted": report["deleted"], "objects": report["objects"],
                "delete_requests": proxy.count("POST", "delete"),
                "seconds": round(seconds, 2),
                "target_met": proxy.count("POST", "delete") <= PRUNE_TARGET_REQUESTS,
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11))
    parser.add_argument("--full", action="store_true", help="also time verify --full (a HEAD each)")
    parser.add_argument(
        "--save", action="store_true", help="write bench/results/bench_ops-latest.json"
    )
    options = parser.parse_args()
    figures = bench(options.files, options.rounds, options.full)
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    if options.save:
        (REPO / "bench" / "results" / "bench_ops-latest.json").write_text(text + "\n")


if __name__ == "__main__":
    main_cli()
