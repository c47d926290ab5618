"""The tool as a user installs it: a wheel of this checkout, non-editable, in a fresh venv.

Tests that run a real command from a foreign project folder use :class:`InstalledTool`
(the ``installed`` fixture in conftest.py) instead of this repository's ``deploy.py``: an
installed user has no ``deploy.py``, and an editable install hides packaging mistakes
(a module left out of the wheel, a console script that is not declared).

The venv sees the test machine's site-packages for the dependencies (Flask, boto3,
Pillow, ...), but ``pipeline`` itself comes from the wheel: :meth:`InstalledTool.check`
asserts that, so a test cannot pass on the checkout by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRUBBED_PREFIXES = ("AWS_", "CDN_", "FLASK_")

#: What a wheel is never built from: version control, caches, build output, tests' debris.
NOT_SOURCES = (".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv",
               "venv", "test-artifacts", "node_modules")


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of our CDN/AWS/FLASK settings, no PYTHONPATH,
    and boto3 never reads this machine's AWS files or metadata address."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(SCRUBBED_PREFIXES) and name != "PYTHONPATH"}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Served:
    """A running ``cdn-deploy serve``: its base URL and its first line of output."""

    url: str
    announced: str


@dataclass(frozen=True)
class InstalledTool:
    """A venv with ``flask-cdn-pipeline`` installed from a wheel of this checkout."""

    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def command(self, name: str) -> str:
        """The path of a console script (``cdn-deploy``, ``flask``) or ``python`` in the venv."""
        return str(self.bin / name)

    def run(self, name: str, *args: str, cwd: Path, timeout: float = 180,
            **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``name`` from the venv in ``cwd`` as a user would: their environment, no stdin."""
        return subprocess.run([self.command(name), *args], cwd=cwd,
                              env=user_env(**self._path_env(), **env), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def popen(self, name: str, *args: str, cwd: Path, new_session: bool = False,
              **env: str) -> subprocess.Popen[str]:
        """:meth:`run` without waiting: a test that signals the process (Ctrl-C) while it
        works; stdout and stderr are pipes, read with ``communicate``. ``new_session``: the
        process leads its own session and process group (id = its pid), as a CI runner starts
        a job's command, so a test can find every process it started."""
        return subprocess.Popen([self.command(name), *args], cwd=cwd,
                                env=user_env(**self._path_env(), **env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=new_session)

    @contextmanager
    def serving(self, *args: str, cwd: Path) -> Iterator[Served]:
        """``cdn-deploy serve --port 0 ARGS`` running in ``cwd`` until the block ends; yields its
        base URL and the line it announced itself with. A traceback on stderr fails the test."""
        server = self.popen("cdn-deploy", "serve", "--port", "0", *args, cwd=cwd)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert " at http://127.0.0.1:" in line, line
            yield Served(url=line.split(" at ")[1].split(";")[0], announced=line)
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=20)
            assert "Traceback" not in errors, errors

    def _path_env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "VIRTUAL_ENV": str(self.venv)}

    def check(self) -> None:
        """``pipeline`` is imported from the venv's site-packages, not from this checkout."""
        # Every sub-package: a machine's editable install can supply one the wheel lacks.
        result = self.run("python", "-c", "import pipeline, pipeline.build, pipeline.cli; "
                          "[print(m.__file__) for m in (pipeline, pipeline.build, pipeline.cli)]",
                          cwd=self.venv)
        assert result.returncode == 0, result.stderr
        for line in result.stdout.split():
            where = Path(line)
            assert self.venv in where.parents, f"{where} is not in the venv"


def install_tool(work: Path) -> InstalledTool:
    """Build a wheel of this checkout and install it (non-editable) into a new venv in ``work``."""
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_sources)
    wheels = work / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
          "--wheel-dir", str(wheels), str(source)], cwd=work)
    (wheel,) = wheels.glob("flask_cdn_pipeline-*.whl")
    target = work / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(target)
    # --system-site-packages lends the dependencies; the wheel's own copy of pipeline sits in
    # the venv's site-packages, which comes first on sys.path.
    _run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
          "--quiet", "--no-deps", "--ignore-installed", str(wheel)], cwd=work)
    tool = InstalledTool(venv=target)
    tool.check()
    return tool


def _not_sources(folder: str, names: list[str]) -> set[str]:
    """:data:`NOT_SOURCES`, but ``build`` only at the root: ``pipeline/build`` is a package
    (left out, the wheel lacked it and the machine's editable install supplied it)."""
    ignored = set(shutil.ignore_patterns(*NOT_SOURCES)(folder, names))
    if Path(folder) != ROOT:
        ignored.discard("build")
    return ignored


def _run(args: list[str], *, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed:\n{result.stderr[-2000:]}")
