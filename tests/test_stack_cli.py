"""`python site/stack.py --help` is help, not a running stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_stack_help_prints_usage_and_starts_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "site" / "stack.py"), "--help"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python site/stack.py")
    assert "Ctrl-C" in result.stdout
    assert "Deployed" not in result.stdout + result.stderr
    assert not list(tmp_path.iterdir())  # no work folder: nothing was started


def test_stack_rejects_unknown_arguments(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "site" / "stack.py"), "--port", "1"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "unrecognized arguments: --port 1" in result.stderr
    assert not list(tmp_path.iterdir())
