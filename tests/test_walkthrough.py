"""The README's walkthrough ("The embedded default"), run line by line as written on a copy of
this repository, the way a new user runs it after ``pip install -e``.

Each line runs in ``bash`` from the copy's root; exported variables carry over to the next
line, as in one shell. A line ending in ``&`` and the ``flask ... run`` line are servers: they
start in the background and are stopped at the end. Two things differ from a user's shell,
both because other tests share this machine: the origin's port 8001 is replaced by a free
port wherever a line names it, and ``FLASK_RUN_PORT`` gives the site a free port (5000 is
Flask's default, which the lines do not name).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.installed import user_env

pytestmark = pytest.mark.slow  # deploys the demo with its image variants: minutes of encoding

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## The embedded default"
SERVER_LINE = re.compile(r"^(\w+=\S+\s+)*flask\s.*\brun\b")


def walkthrough_lines() -> list[str]:
    """The shell lines of the bash blocks in the README's walkthrough section."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start:text.index("\n## ", start + len(SECTION))]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_copy(target: Path) -> Path:
    """The files a clone has: tracked and new, not ignored (no build/, no caches)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def shell_bin(folder: Path) -> Path:
    """``python``, ``flask`` and ``cdn-deploy`` as ``pip install -e .`` gives them, running this
    interpreter (the copy is first on PYTHONPATH)."""
    folder.mkdir()
    (folder / "python").symlink_to(sys.executable)
    for name, module in (("flask", "flask"), ("cdn-deploy", "pipeline")):
        (folder / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        (folder / name).chmod(0o755)
    return folder


def wait_for(url: str, proc: subprocess.Popen[bytes], *, seconds: float = 60) -> None:
    """Until ``url`` answers (bounded); a server that exits instead fails the test."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_readme_walkthrough_runs_as_written(
        tmp_path: Path, servers: list[subprocess.Popen[bytes]]) -> None:
    lines = walkthrough_lines()
    assert len(lines) >= 8 and any(SERVER_LINE.match(line) for line in lines)
    repo = fresh_copy(tmp_path / "clone")
    origin, site = free_port(), free_port()
    env = user_env(PATH=f"{shell_bin(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
                   PYTHONPATH=str(repo), FLASK_RUN_PORT=str(site))
    state = tmp_path / "exported.sh"
    state.write_text("")
    outputs = []
    for line in (raw.replace("8001", str(origin)) for raw in lines):
        command = line.split(" #")[0].rstrip()
        if command.endswith("&") or SERVER_LINE.match(command):
            servers.append(subprocess.Popen(
                ["bash", "-c", f"source {state}; {command.rstrip('&').strip()}"],
                cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
            continue
        result = subprocess.run(["bash", "-c", f"source {state}; {line}\nexport -p > {state}"],
                                cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=900, check=False)
        assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-2000:])
        assert "Traceback" not in result.stderr, line
        outputs.append(result.stdout)

    assert "0 uploaded" in outputs[1]  # the 2nd run, as its comment says
    assert len(servers) == 2
    cdn_origin, site_server = servers
    wait_for(f"http://127.0.0.1:{origin}/static/manifest.json", cdn_origin)
    wait_for(f"http://127.0.0.1:{site}/", site_server)
    with urllib.request.urlopen(f"http://127.0.0.1:{site}/", timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    css = re.search(rf'href="(http://127\.0\.0\.1:{origin}/static/[^"]+\.css)"', page)
    assert css, "the page names no stylesheet on the CDN origin"
    with urllib.request.urlopen(css.group(1), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    images = re.findall(rf'src="http://127\.0\.0\.1:{origin}/static/img/', page)
    assert images, "no image comes from the CDN origin"
