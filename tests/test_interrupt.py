"""Ctrl-C during a deploy: a prompt stop, exit 130, nothing published."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, write_tree

ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_mid_upload_stops_with_130_and_publishes_nothing(s3: S3Env, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static",
                        {f"img/{i:03d}.png": f"image {i}".encode() for i in range(200)})
    env = s3.subprocess_env(tmp_path)
    # Every PUT is slowed down: 200 of them at 4 workers take far longer than we wait.
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("slow",), slow_seconds=0.2) as proxy:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy.py"), "--bucket", s3.bucket, "--endpoint-url",
             proxy.url, "--static-dir", str(static), "--no-assets", "--workers", "4",
             "--manifest", str(tmp_path / "m.json")],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while proxy.count("PUT") < 4 and time.monotonic() < deadline:  # uploads under way
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)  # bounded: queued uploads must not run
    assert process.returncode == 130, err
    assert ("interrupted: nothing was published; uploaded objects will be reused by the next "
            "run") in err and "Traceback" not in err
    # Stopped promptly: the uploads in flight finish, queued ones and the rest never start
    # (they do not wait for the hashing either, which runs alongside the uploads).
    assert proxy.count("PUT") < 40
    assert "static/manifest.json" not in s3.keys()
    assert not (tmp_path / "m.json").exists()
