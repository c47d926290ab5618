"""`python site/stack.py | tee log`: the URLs show as soon as the stack is up, and SIGTERM
stops it cleanly."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request

from tests.e2e.conftest import ROOT


def test_piped_stack_prints_its_urls_at_once_and_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen([sys.executable, str(ROOT / "site" / "stack.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 120
            buffer = b""
            # While the stack runs: the lines must arrive through the pipe, not at exit.
            while not any(line.startswith("Press Ctrl-C") for line in lines):
                assert time.monotonic() < deadline, f"no URLs through the pipe: {lines}"
                assert process.poll() is None, f"the stack exited: {lines}"
                if selector.select(timeout=1):
                    chunk = os.read(process.stdout.fileno(), 65536)
                    buffer += chunk
                    *done, rest = buffer.split(b"\n")
                    lines += [line.decode() for line in done]
                    buffer = rest
        site = next(line for line in lines if line.startswith("Site:")).split()[1]
        with urllib.request.urlopen(site + "/", timeout=30) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0
    assert "stopping..." in rest
