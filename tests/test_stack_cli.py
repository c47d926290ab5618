"""`python site/stack.py --help` is help, not a running stack."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

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


def load_stack(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``site/stack.py`` as a module of this process; the sys.path entries it adds are undone
    after the test (with ``site/`` first, its ``app.py`` would shadow other modules)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("stack_under_test", ROOT / "site" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_stack_rejects_unknown_arguments(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # In this process (the help test above runs the real one): main() itself, with the stack
    # replaced by a failure, so a regression that accepts the flag fails here and starts
    # nothing.
    stack = load_stack(monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def must_not_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack was started")

    monkeypatch.setattr(stack, "running_stack", must_not_start)
    monkeypatch.setattr(stack.signal, "signal", lambda *args: None)  # this process's handlers
    with pytest.raises(SystemExit) as exited:
        stack.main(["--port", "1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --port 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
