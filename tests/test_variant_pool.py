"""The encoding pool's start-up: no workers for nothing, never more than the jobs, and a stop
signal that waits until a worker being started is recorded (so it can be killed)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from pipeline.build import variant_pool
from pipeline.build.variant_codec import probe
from pipeline.build.variant_pool import Encoded, EncodeJob, encode_many, encode_within
from pipeline.build.variants import plan_variants
from pipeline.cli.interrupt import InterruptGuard
from pipeline.errors import Terminated
from pipeline.processes import end_all, ended_on_exit, starting_processes, worker_preload
from tests.helpers import sigint_masked
from tests.test_variants import SMALL, photo_like


def recording_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker count of every pool started from now on."""
    started: list[int] = []
    real = variant_pool._start_pool

    def record(workers: int) -> ProcessPoolExecutor:
        started.append(workers)
        return real(workers)

    monkeypatch.setattr(variant_pool, "_start_pool", record)
    return started


def test_no_pool_for_nothing_and_never_more_workers_than_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = recording_pools(monkeypatch)
    assert encode_within([], settings=SMALL, out_dir=tmp_path, deadline=None,
                         workers=4) == Encoded(())
    assert started == []
    path = tmp_path / "p.png"
    photo_like((60, 40)).save(path)
    specs = plan_variants(hashlib.sha256(path.read_bytes()).hexdigest(), probe(path, SMALL), SMALL)
    results = encode_many([EncodeJob(path, tuple(specs))], settings=SMALL,
                          out_dir=tmp_path / "out", workers=4)
    assert started == [1]
    assert {spec.key for spec, _ in results[0].written} == {spec.key for spec in specs}
    assert all((tmp_path / "out" / spec.key).is_file() for spec in specs)


def test_a_sigterm_while_a_worker_starts_is_raised_once_it_is_recorded() -> None:
    # The watchdog's end of the "process" is a stand-in: this test's process goes on.
    ended = threading.Event()
    guard = InterruptGuard(grace=0.1, end_process=lambda code: ended.set())
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    guard.install()
    steps: list[str] = []
    try:
        with pytest.raises(KeyboardInterrupt), starting_processes():
            signal.raise_signal(signal.SIGTERM)
            steps.append("worker recorded")  # still runs: the exception waits
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # The watchdog ends the "process" 0.1 s after the signal, killing every registered
        # pool's workers on the way: wait for it, or it kills those of the next test run in
        # this process (CI saw a shard test's pool broken that way).
        assert ended.wait(timeout=10)
    assert steps == ["worker recorded"]
    assert guard.exit_code == 143
    stopped = guard.stopped("while encoding")
    assert isinstance(stopped, Terminated) and str(stopped) == "terminated while encoding"


def test_registered_processes_are_ended_on_the_way_out_and_only_while_registered() -> None:
    ended: list[str] = []
    with ended_on_exit(lambda: ended.append("pool")):
        end_all()
    end_all()
    assert ended == ["pool"]


def test_the_fork_server_preloads_the_package_only_where_it_finds_this_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elsewhere (a checkout's deploy.py run from another folder, maybe with an installed
    release in site-packages) its workers would run another copy's encoder."""
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", root)
    assert worker_preload(["pipeline.build.variant_codec"])[0] == "pipeline.build.variant_codec"
    monkeypatch.delenv("PYTHONPATH")
    assert worker_preload(["pipeline.build.variant_codec"]) == []


def test_processes_started_while_starting_begin_with_sigint_blocked_and_the_caller_gets_it_back(
) -> None:
    """A terminal's Ctrl-C reaches every process of the group; the helpers this process
    starts must leave it to this one (which kills them), so they start with it blocked."""
    show = [sys.executable, "-c", "print(open('/proc/self/status').read())"]
    with starting_processes():
        inside = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    outside = subprocess.run(show, capture_output=True, text=True, check=True).stdout

    assert sigint_masked(inside, "SigBlk") and not sigint_masked(outside, "SigBlk")
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
