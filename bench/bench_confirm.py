"""What the pre-publish confirmation (issue 9, item 1) costs a deploy of the 2,000-file corpus.

In-process against moto's server in its own process: each round deploys the corpus into
a fresh bucket (first deploy), then again with one file changed (incremental). The time
spent in ``pipeline.release.confirm.confirm_release`` is measured inside the deploy, so the ratio
``total / (total - confirmation)`` is not blurred by the noise between whole runs.
``--full`` forces the slow path (a prune ran meanwhile: the whole prefix is listed).

    python bench/bench_confirm.py [--rounds 5] [--full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import corpus

from pipeline.build.mounts import Mounts
from pipeline.release import confirm, publish
from pipeline.release.result import DeployOptions
from pipeline.release.store import ReleaseStore
from pipeline.storage.s3 import S3Settings, S3Storage


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("moto server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="force the whole-prefix listing")
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith(("AWS_", "CDN_")):
            del os.environ[name]
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_EC2_METADATA_DISABLED="true")
    source = corpus.default_dir()
    if not source.is_dir():
        subprocess.run([sys.executable, str(ROOT / "bench/corpus.py")], check=True)
    spent: list[float] = []
    real = publish.confirm_release

    def timed(*a: Any, **k: Any) -> None:
        started = time.monotonic()
        try:
            real(*a, **k)
        finally:
            spent.append(time.monotonic() - started)

    publish.confirm_release = timed
    if args.full:
        confirm.pruned_since = lambda *a: True
    server, endpoint = start_moto()
    rows: dict[str, list[tuple[float, float]]] = {"first": [], "incremental": []}
    with tempfile.TemporaryDirectory(prefix="bench-confirm-") as scratch:
        static = Path(scratch) / "static"
        shutil.copytree(source, static)
        try:
            for r in range(args.rounds):
                storage = S3Storage(S3Settings(bucket=f"confirm-{r}", endpoint_url=endpoint))
                storage.client.create_bucket(Bucket=f"confirm-{r}")
                for kind, row in rows.items():
                    if kind == "incremental":
                        changed = sorted(static.rglob("*.*"))[r]
                        changed.write_bytes(changed.read_bytes() + b"x")
                    spent.clear()
                    started = time.monotonic()
                    publish.deploy(folders=Mounts.single(static),
                                   store=ReleaseStore(storage, "static"),
                                   manifest_path=Path(scratch) / "m.json",
                                   options=DeployOptions(hash_cache_path=Path(scratch) / "h.json"))
                    row.append((time.monotonic() - started, spent[0]))
        finally:
            server.terminate()
            server.wait(timeout=10)
    for kind, values in rows.items():
        ratios = [total / (total - confirm) for total, confirm in values]
        print(f"{kind:12} deploy {statistics.median(t for t, _ in values):6.2f} s, confirmation "
              f"{statistics.median(c for _, c in values):6.3f} s; with/without "
              f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
