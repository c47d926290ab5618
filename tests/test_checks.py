"""The checks a developer runs, run by the suite: ruff, mypy strict, and every script and name
the documentation points at.

The tool versions come from ``.ci/constraints.txt`` (the README's test command installs
with it), so a fresh machine gets the result a developer got.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A dotted name of ours in prose: ``pipeline.release.publish`` or ``pipeline.keys.MANIFEST_NAME``
#: (not ``flask-cdn-pipeline.x``, and not a sentence that ends in "pipeline.").
DOTTED_NAME = re.compile(r"(?<![\w.-])pipeline(?:\.[A-Za-z_]\w*)+")


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    result = run_tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # a cold mypy run takes tens of seconds
def test_mypy_strict_finds_nothing() -> None:
    result = run_tool("mypy", "--no-incremental")  # files and strictness: pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


SCRIPT_FOLDERS = ("bench", "site")

IMPORT_EACH = """
import importlib.util, os, sys, traceback
failed = []
for path in sys.argv[1:]:
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the script's own folder first, as when it runs
    spec = importlib.util.spec_from_file_location("checked_" + path.replace("/", "_")[:-3], path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        failed.append(path + ": " + traceback.format_exc(limit=-1).strip().splitlines()[-1])
    finally:
        sys.path.remove(folder)
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_script_imports() -> None:
    """A bench or demo script that no longer imports (a moved module) fails here, not on the
    day someone runs it. One interpreter for both folders (no script name is in both; a
    second interpreter costs as much as the imports); each script's folder is first on
    sys.path while it loads, as when it runs."""
    scripts = {folder: sorted(str(path.relative_to(ROOT)) for path in (ROOT / folder).glob("*.py"))
               for folder in SCRIPT_FOLDERS}
    assert all(len(names) >= 3 for names in scripts.values()), scripts
    names = [Path(name).name for folder in SCRIPT_FOLDERS for name in scripts[folder]]
    assert len(names) == len(set(names)), names  # else one folder's module shadows another's
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH,
                             *(name for folder in SCRIPT_FOLDERS for name in scripts[folder])],
                            cwd=ROOT, env=_env_with_path(), capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _env_with_path() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDN_", "FLASK_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def resolve(dotted: str) -> object:
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def documented_names() -> dict[str, str]:
    """Every dotted ``pipeline.…`` name in the READMEs and in the package's docstrings and
    comments, with where it was seen first."""
    names: dict[str, str] = {}
    for doc in (ROOT / "README.md", ROOT / "bench" / "README.md"):
        _collect(names, doc.read_text(encoding="utf-8"), doc.name)
    for source in sorted((ROOT / "pipeline").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        prose = [node.value for node in ast.walk(ast.parse(text))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)]
        prose += [line for line in text.splitlines() if line.lstrip().startswith("#")]
        _collect(names, "\n".join(prose), str(source.relative_to(ROOT)))
    return names


def _collect(names: dict[str, str], text: str, where: str) -> None:
    for match in DOTTED_NAME.finditer(text):
        names.setdefault(match.group(0).rstrip("."), where)


def test_every_dotted_name_in_the_docs_exists() -> None:
    names = documented_names()
    assert len(names) >= 10, names  # the check reads something: the docs do name our modules
    missing = []
    for name, where in sorted(names.items()):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(f"{where}: {name}")
    assert not missing, "names that no longer exist:\n" + "\n".join(missing)


def test_the_name_check_can_fail() -> None:
    with pytest.raises(AttributeError):
        resolve("pipeline.keys.NO_SUCH_NAME")
    with pytest.raises(ModuleNotFoundError):
        resolve("pipelinex.keys")
