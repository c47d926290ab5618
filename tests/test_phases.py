"""The deploy's phases, checked on the source (issue 22, item 1): the folders reach only the
phases that read them, and the phases stay small.

A value that holds the folders (:class:`pipeline.build.mounts.Mounts`) passed from phase to
phase made every phase a reader of them in principle, and a trace of the folders through the
deploy visited every module of ``release/``. The phases take frozen values instead
(``OnDisk``, ``InBucket``, ``LocalPaths``, ``Hashed``, ...); these checks keep it so.
"""

from __future__ import annotations

import ast
from pathlib import Path

RELEASE = Path(__file__).resolve().parent.parent / "pipeline" / "release"

#: Functions of ``release/`` that take the folders: the deploy and the shard command (given
#: them by the CLI), prepare (the walk, git, Vite, their URL paths) and git's second word.
# The commands' entry points (deploy and its phases after the walk, a shard, verify
# --repair), the walk and the one scan the deploy and repair share (read_folders), and the
# two that read the folders again (git's blob ids).
TAKES_FOLDERS = {"publish.deploy", "publish._full", "shard.encode_shard", "repair.repair",
                 "tree_run.walk", "prepare.prepare", "prepare.read_folders",
                 "prepare._on_disk", "publish.git_blobs_to_record"}


def _trees() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(RELEASE.glob("*.py"))}


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def _annotation(node: ast.arg | ast.AnnAssign) -> str:
    return ast.unparse(node.annotation) if node.annotation is not None else ""


def test_the_folders_reach_only_the_phases_that_read_them() -> None:
    takes = set()
    for module, tree in _trees().items():
        for function in _functions(tree):
            args = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
            if any("Mounts" in _annotation(arg) for arg in args):
                takes.add(f"{module}.{function.name}")
    assert takes == TAKES_FOLDERS


def test_no_value_of_the_phases_holds_the_folders() -> None:
    holders = [f"{module}.{node.name}" for module, tree in _trees().items()
               for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
               if any(isinstance(item, ast.AnnAssign) and "Mounts" in _annotation(item)
                      for item in node.body)]
    classes = {node.name for tree in _trees().values() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef)}
    assert {"OnDisk", "InBucket", "Hashed", "Planned", "Uploaded"} <= classes  # not vacuous
    assert holders == []


def test_the_phases_stay_small() -> None:
    """No function of ``release/`` over 40 lines (docstring included), ``publish.py`` within
    300 lines."""
    long = [f"{module}.{function.name}: {function.end_lineno - function.lineno + 1}"
            for module, tree in _trees().items() for function in _functions(tree)
            if (function.end_lineno or 0) - function.lineno + 1 > 40]
    assert long == []
    assert len((RELEASE / "publish.py").read_text(encoding="utf-8").splitlines()) <= 300
