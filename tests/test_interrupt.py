"""Ctrl-C during a deploy: a prompt stop, exit 130, nothing published."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.cli.interrupt import InterruptGuard
from pipeline.cli.reporting import ProgressReporter
from pipeline.manifest import Entry
from pipeline.release.plan import Plan, PlannedFile, Reason
from pipeline.storage.base import Upload
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, sigint_masked, write_tree
from tests.installed import InstalledTool

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


def _release_documents(s3: S3Env) -> list[str]:
    """Release objects under the default prefix (the conditional-write probe deletes its own)."""
    return [key for key in s3.keys("static/") if key.startswith("static/releases/")
            and "/probe-" not in key]


def test_ctrl_c_with_uploads_stalled_ends_at_once_with_one_line_and_publishes_nothing(
    s3: S3Env, project: Path, installed: InstalledTool
) -> None:
    write_tree(project / "static", {f"img/{i:02d}.png": f"image {i}".encode() for i in range(20)})
    # Every image PUT hangs (the link stalls): nothing the client waits for will ever come.
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("stall",),
                     path_filter="/static/img/") as proxy:
        process = installed.popen("cdn-deploy", "--bucket", s3.bucket, "--endpoint-url",
                                  proxy.url, "--workers", "2", cwd=project,
                                  **s3.server.credentials.env())
        deadline = time.monotonic() + 60
        while proxy.count("PUT", "/static/img/") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the proxy for both uploads to be in flight
        assert process.poll() is None and proxy.count("PUT", "/static/img/") >= 2
        process.send_signal(signal.SIGINT)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C
        try:
            # A bound, not a timing assertion: before the fix it waited for the stalled
            # uploads, i.e. until the proxy stopped.
            _, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:  # only after a failed bound: do not leave it running
                process.kill()
                process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.splitlines()[-1] == ("error: interrupted: nothing was published; uploaded "
                                    "objects will be reused by the next run")
    assert err.count("interrupted") == 1
    assert "static/manifest.json" not in s3.keys()
    assert _release_documents(s3) == []
    assert not (project / "build" / "cdn-manifest.json").exists()


def test_after_the_first_ctrl_c_later_ones_are_ignored_and_the_process_ends_in_bounded_time(
) -> None:
    """The guard in process (a stand-in ends the "process"): the first SIGINT stops the
    progress and unwinds; a second one raises nothing; a main thread that cannot unwind is
    cut short by the watchdog, which says why once."""
    ended: list[int] = []
    said: list[str] = []
    done = threading.Event()

    def end_process(code: int) -> None:
        ended.append(code)
        done.set()

    guard = InterruptGuard(grace=0.2, end_process=end_process)
    stopped = threading.Event()
    guard.when_interrupted(stopped.set)
    guard.report_with(lambda: said.append("interrupted"))
    previous = signal.getsignal(signal.SIGINT)
    guard.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert stopped.is_set()
        signal.raise_signal(signal.SIGINT)  # no exception: already stopping
        assert done.wait(timeout=10)  # the watchdog: this "main thread" never unwound
        guard.report_once(lambda: said.append("again"))  # the command's own report, late
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ended == [130]
    assert said == ["interrupted"]


def test_a_stopped_progress_bar_ends_its_line_and_draws_nothing_more() -> None:
    err, now = io.StringIO(), [100.0]
    reporter = ProgressReporter(out=io.StringIO(), err=err, tty=True, verbose_plan=False,
                                clock=lambda: now[0])
    uploads = [Upload(key=f"static/{i}.h.png", source=f"{i}.png", size=10,
                      content_type="image/png", cache_control="x") for i in range(3)]
    files = tuple(PlannedFile(f"{i}.png", Entry(f"static/{i}.h.png", "h", 10, "image/png"),
                              Path(f"{i}.png"), Reason.NEW) for i in range(3))
    reporter.planned(Plan(files))
    now[0] += 1
    reporter.stored(uploads[0])
    assert err.getvalue().split("\r")[-1].startswith("[")  # a bar, still on its line
    reporter.stop()
    drawn = err.getvalue()
    assert drawn.endswith("\n")
    now[0] += 1
    reporter.stored(uploads[1])  # a worker finishing its request after Ctrl-C
    reporter.warned("late")
    assert err.getvalue() == drawn


def test_ctrl_c_while_the_main_thread_waits_on_stalled_downloads_still_ends_the_process(
    s3: S3Env, project: Path, installed: InstalledTool
) -> None:
    """``verify --full`` waits for its download pool in the main thread, a wait Ctrl-C cannot
    cut short: the guard's watchdog ends the process, with the one line the command says."""
    creds = s3.server.credentials.env()
    deployed = installed.run("cdn-deploy", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                             cwd=project, **creds)
    assert deployed.returncode == 0, deployed.stderr
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("stall",), methods=("GET",),
                     path_filter="/static/img/") as proxy:
        process = installed.popen("cdn-deploy", "verify", "--full", "--bucket", s3.bucket,
                                  "--endpoint-url", proxy.url, "--workers", "2", cwd=project,
                                  **creds)
        deadline = time.monotonic() + 60
        while (proxy.count("GET", "/static/img/") < 1 and process.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)  # polling the proxy for a download to be in flight
        assert process.poll() is None and proxy.count("GET", "/static/img/") >= 1
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=10)  # a bound: stalled until the proxy stops
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines() == ["error: interrupted"]


# -- SIGTERM (a CI runner cancelling or timing out a job) while images encode -----------------


def photo_project(tmp_path: Path, count: int = 4) -> Path:
    """A project whose static folder holds a stylesheet and noisy photos large enough that
    encoding their variants takes seconds of CPU each."""
    from PIL import Image

    project = tmp_path / "their-project"
    static = write_tree(project / "static", {"css/site.css": b"body{margin:0}"})
    for number in range(count):
        size = (3000 - 100 * number, 2000)
        bands = [Image.effect_noise(size, 40 + 10 * band).point(lambda v, b=band: v + 30 * b)
                 for band in range(3)]
        path = static / "img" / f"big{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.merge("RGB", bands).save(path, quality=92)
    return project


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of process group ``group``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


def private_temp(tmp_path: Path) -> Path:
    """A temp folder of the command's own (``TMPDIR``): whatever it leaves there is its."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    return temp


def terminate_while_encoding(process: subprocess.Popen[str]) -> str:
    """Wait until the command says it encodes and its workers run (the group holds the
    command, multiprocessing's helpers and a worker), send SIGTERM to the command alone; its
    stderr. Afterwards no process of its group may be left (zombies aside: nobody's CPU)."""
    assert process.stderr is not None
    said = []
    for line in iter(process.stderr.readline, ""):
        said.append(line)
        if "encoding" in line:
            break
    assert process.poll() is None, "".join(said)
    deadline = time.monotonic() + 60
    while len(group_members(process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling /proc for the pool's workers to start
    assert process.poll() is None and len(group_members(process.pid)) >= 4
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)  # a bound: the encodes take far longer
    finally:
        deadline = time.monotonic() + 10
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # the fork server and resource tracker see the command gone
        left = group_members(process.pid)
        if left:  # a worker left running also holds the pipes open: end it to read them
            os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=30)
    assert left == [], f"processes left running: {left}; {err}"
    return err


def test_sigterm_while_a_deploy_encodes_exits_143_ends_every_worker_and_publishes_nothing(
    s3: S3Env, tmp_path: Path, installed: InstalledTool
) -> None:
    project, temp = photo_project(tmp_path), private_temp(tmp_path)
    process = installed.popen("cdn-deploy", "--bucket", s3.bucket, "--endpoint-url",
                              s3.endpoint, "--variants", cwd=project, new_session=True,
                              TMPDIR=str(temp), **s3.server.credentials.env())
    err = terminate_while_encoding(process)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("error: terminated: nothing was published; uploaded "
                                    "objects will be reused by the next run")
    assert "static/manifest.json" not in s3.keys()
    assert _release_documents(s3) == []
    assert not (project / "build" / "cdn-manifest.json").exists()
    assert not list(project.rglob("*.tmp"))  # the killed workers' unfinished files
    assert list(temp.iterdir()) == []  # multiprocessing's folder (the fork server's socket)


def test_sigterm_while_a_shard_encodes_exits_143_and_leaves_the_bucket_unchanged(
    s3: S3Env, tmp_path: Path, installed: InstalledTool
) -> None:
    project, temp = photo_project(tmp_path), private_temp(tmp_path)
    before = s3.keys()
    process = installed.popen("cdn-deploy", "variants", "--shard", "1/2", "--bucket",
                              s3.bucket, "--endpoint-url", s3.endpoint, cwd=project,
                              new_session=True, TMPDIR=str(temp), **s3.server.credentials.env())
    err = terminate_while_encoding(process)
    assert process.returncode == 143, err
    assert "Traceback" not in err and err.splitlines()[-1] == "error: terminated"
    assert s3.keys() == before
    assert not list(project.rglob("*.tmp"))
    assert list(temp.iterdir()) == []


def sigint_is_blocked_or_ignored(pid: int) -> bool:
    """Whether process ``pid`` neither dies of nor handles SIGINT (its /proc status masks)."""
    return sigint_masked(Path(f"/proc/{pid}/status").read_text(), "SigBlk", "SigIgn")


def test_ctrl_c_to_the_whole_group_while_encoding_exits_130_with_one_line_and_no_traceback(
    tmp_path: Path, installed: InstalledTool
) -> None:
    """A terminal sends Ctrl-C to every process of the foreground group: the fork server, its
    workers and the resource tracker too. Only the command acts on it; the helpers neither
    die of it nor print a KeyboardInterrupt traceback (a worker inside a libvips callback
    did, and so did the fork server while importing its preload)."""
    project, temp = photo_project(tmp_path), private_temp(tmp_path)
    process = installed.popen("cdn-deploy", "variants", "--target-dir", "cdn", cwd=project,
                              new_session=True, TMPDIR=str(temp))
    assert process.stderr is not None
    for line in iter(process.stderr.readline, ""):
        if "encoding" in line:
            break
    deadline = time.monotonic() + 60
    while len(group_members(process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling /proc for the pool's workers to start
    helpers = [pid for pid in group_members(process.pid) if pid != process.pid]
    assert process.poll() is None and len(helpers) >= 3, helpers
    assert [pid for pid in helpers if not sigint_is_blocked_or_ignored(pid)] == []

    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)  # a bound: the encodes take far longer
    finally:
        if group_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1] == "error: interrupted"
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # the fork server and resource tracker see the command gone
    assert group_members(process.pid) == []
    assert not list(project.rglob("*.tmp"))
    assert list(temp.iterdir()) == []
