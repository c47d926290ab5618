"""Deploys that meet faults, get killed, or run side by side always leave a consistent state.

"Consistent" (:func:`tests.helpers.assert_consistent`): the current manifest names a
recorded release with the same files, and every object it names exists with the
recorded size and ETag. All runs are seeded, bounded in count and time, on loopback.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.cli.main import main
from pipeline.localfs import collect_files
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree

ROOT = Path(__file__).resolve().parent.parent


def expected_files(static: Path) -> dict:
    """The ``files`` section a deploy of ``static`` publishes."""
    manifest = build_manifest(collect_files(static), prefix="static", cache=HashCache(None))
    return json.loads(manifest.to_json())["files"]


def tree(root: Path, version: str, count: int, size: int = 1) -> Path:
    return write_tree(root, {
        f"img/{i:03d}.png": f"image {i} {version} ".encode() * size for i in range(count)
    })


@pytest.mark.parametrize("seed", range(20))
def test_faulty_network_never_publishes_a_manifest_naming_a_missing_object(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    static = tree(tmp_path / "static", "v0", 8)
    args = target_args(s3, tmp_path, static)
    assert run_json(capsys, [*args, "-q"])[0] == 0
    before = assert_consistent(s3)
    tree(static, f"v1-{seed}", 8, size=seed + 1)
    with fault_proxy(s3.endpoint, fail_rate=0.3, seed=seed, methods=("PUT", "GET", "POST"),
                     kinds=("500", "503", "reset", "lost", "slow")) as proxy:
        code, summary = run_json(capsys, [*target_args(s3, tmp_path, static, endpoint=proxy.url),
                                          "-q", "--max-attempts", "2", "--workers", "4"])
    assert code in (0, 1), summary
    after = assert_consistent(s3)
    if code == 0:
        assert after["files"] == expected_files(static)
        local = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert local == after and summary["release"] == after["release"]
    else:  # nothing or everything of the new release is current, never a mix
        assert after["files"] in (before["files"], expected_files(static))


def spawn_deploy(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "deploy.py"), *args, "-q", "--no-assets"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_deploy_killed_at_random_moments_then_rerun_always_ends_consistent(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261124)
    static = tree(tmp_path / "static", "v0", 60)
    env = s3.subprocess_env(tmp_path)
    # Every PUT is slowed down so a kill can land during the upload, not only at start-up.
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("slow",), slow_seconds=0.04) as proxy:
        slow_args = [*target_args(s3, tmp_path, static, endpoint=proxy.url), "--workers", "4"]
        started = time.monotonic()
        baseline = spawn_deploy(slow_args, env, tmp_path)
        assert baseline.wait(timeout=120) == 0
        duration = time.monotonic() - started
        kinds: list[str] = []
        for round_ in range(10):
            before = assert_consistent(s3)
            tree(static, f"v{round_ + 1}", 60)
            victim = spawn_deploy(slow_args, env, tmp_path)
            time.sleep(rng.uniform(0.1, duration * 1.05))
            victim.send_signal(signal.SIGKILL)
            kinds.append("finished" if victim.wait(timeout=30) == 0 else "killed")
            after = assert_consistent(s3)
            assert after["files"] in (before["files"], expected_files(static))
            code, summary = run_json(capsys, [*target_args(s3, tmp_path, static), "-q"])
            assert code == 0, summary
            final = assert_consistent(s3)
            assert final["files"] == expected_files(static)
            assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == final
    assert kinds.count("killed") >= 5, kinds  # the seeded moments mostly hit a running deploy


@pytest.mark.parametrize("backend", ["s3", "folder"])
def test_two_concurrent_deploys_both_finish_and_leave_one_complete_release(
    backend: str, s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def target(name: str, static: Path) -> list[str]:
        manifest = ["--manifest", str(tmp_path / f"{name}.json")]
        if backend == "s3":
            return ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint, "--static-dir",
                    str(static), *manifest]
        return ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static), *manifest]

    for round_ in range(3):
        trees = {name: tree(tmp_path / name, f"{name}{round_}", 30) for name in ("a", "b")}
        barrier = threading.Barrier(2, timeout=30)
        codes: dict[str, int] = {}

        def run(name: str, barrier: threading.Barrier = barrier,
                codes: dict[str, int] = codes, trees: dict[str, Path] = trees) -> None:
            barrier.wait()
            codes[name] = main([*target(name, trees[name]), "-q", "--workers", "4",
                                "--hash-cache", str(tmp_path / f"{name}-cache.json")])

        threads = [threading.Thread(target=run, args=(name,)) for name in trees]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert codes == {"a": 0, "b": 0}
        code, listing = run_json(capsys, ["releases", *target("a", trees["a"])])
        assert code == 0 and len(listing["releases"]) == 2 * (round_ + 1)
        code, report = run_json(capsys, ["verify", "--full", *target("a", trees["a"])])
        assert code == 0, report
        current = listing["current"]
        winner = "a" if json.loads((tmp_path / "a.json").read_text())["release"] == current else "b"
        assert json.loads((tmp_path / f"{winner}.json").read_text())["files"] == \
            expected_files(trees[winner])
        if backend == "s3":
            assert_consistent(s3)
