"""The ``[tool.flask-cdn-pipeline]`` table of the deployed project's ``pyproject.toml``.

Found like ruff and pytest find theirs: the first ``pyproject.toml`` in the working
directory or one of its parents (the search stops there, even if that file has no
table). Relative paths in the table are resolved against the folder of that
``pyproject.toml``, so the deploy does the same thing from any subfolder.

The table can name a Python file the deploy runs (``assets``), so the search trusts only
what the user could have written: it stops at the repository root (a folder with
``.git``), and at a ``pyproject.toml`` owned by someone other than the user or root,
which is ignored with a note (a file planted in a shared parent such as ``/tmp`` would
otherwise run its ``assets`` file as the user).

Only the keys the caller lists (:data:`pipeline.cli.settings.TABLE_KEYS`) are accepted,
each with one TOML type: a typo (``statc-dir``) or a wrong type (``workers = "8"``) is a
:class:`ConfigError` naming the key and the file, never a silently ignored setting.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

TABLE_NAME = "flask-cdn-pipeline"
PYPROJECT = "pyproject.toml"

#: Table key -> (settings field, kind): ``str``, ``path``, ``int``, ``bool``, ``patterns``,
#: ``ints``, ``words`` or ``mapping`` (a table of strings).
#: The keys are defined with the options, in :data:`pipeline.cli.settings.TABLE_KEYS`.
KeyTable = Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class ProjectConfig:
    """The table's values by settings field (paths already absolute), and where they came from."""

    path: Path
    values: Mapping[str, Any] = field(default_factory=dict)
    #: Warnings about the file (a ``[tool.*]`` table whose name is close to ours).
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.path} [tool.{TABLE_NAME}]"


@dataclass(frozen=True)
class Search:
    """The ``pyproject.toml`` to use (``None``: none), and why others were passed over."""

    path: Path | None
    notes: tuple[str, ...] = ()


def search_pyproject(start: Path) -> Search:
    """The first trusted ``pyproject.toml`` in ``start`` or its parents, up to the repository
    root; a file owned by another user stops the search and is named in a note."""
    start = start.absolute()
    for folder in (start, *start.parents):
        candidate = folder / PYPROJECT
        try:
            info = candidate.stat()
        except OSError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode):
            if info.st_uid not in _TRUSTED_OWNERS:
                return Search(None, (f"ignored {str(candidate)!r}: it is owned by uid "
                                     f"{info.st_uid}, not by you or root (settings from it "
                                     "could run its 'assets' file as you)",))
            return Search(candidate)
        if (folder / ".git").exists():  # the repository root: what is above is not the project's
            return Search(None)
    return Search(None)


#: Owners whose ``pyproject.toml`` is read: the user running the deploy, and root.
_TRUSTED_OWNERS = frozenset({os.getuid(), 0})


def find_pyproject(start: Path) -> Path | None:
    """The ``pyproject.toml`` :func:`search_pyproject` finds, or ``None``."""
    return search_pyproject(start).path


def load_project_config(start: Path, keys: KeyTable, *,
                        others: bool = False) -> ProjectConfig | None:
    """Read the table of the nearest trusted ``pyproject.toml``; ``None`` when there is none.

    ``others``: keys not in ``keys`` are left alone instead of refused, for a reader that
    needs only some of them (the Flask extension reads the variant keys; the deploy, which
    checks the whole table, runs with every key).
    """
    path = find_pyproject(start)
    if path is None:
        return None
    return read_project_config(path, keys, others=others)


def read_project_config(path: Path, keys: KeyTable, *, others: bool = False) -> ProjectConfig:
    """Read and check the table of ``path`` (see :func:`load_project_config`)."""
    import tomllib  # only once a file is found: a run without one never parses TOML

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc
    tools = document.get("tool", {})
    notes = _near_misses(tools, path) if isinstance(tools, dict) else ()
    table = tools.get(TABLE_NAME) if isinstance(tools, dict) else None
    if table is None:
        return ProjectConfig(path, notes=notes)
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.{TABLE_NAME}] in {str(path)!r} must be a table")
    if others:
        table = {key: value for key, value in table.items() if key in keys}
    return ProjectConfig(path, parse_table(table, path, keys), notes)


def _near_misses(tools: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    """A note per ``[tool.*]`` table whose name is close to ours (``flask_cdn_pipeline``,
    ``flask-cdn-pipline``): its settings would otherwise be ignored without a word."""
    notes = []
    for name in tools:
        if name == TABLE_NAME or not isinstance(tools[name], dict):
            continue
        folded = name.lower().replace("_", "-").replace(".", "-")
        if folded == TABLE_NAME or _close_matches(folded, [TABLE_NAME], cutoff=0.8):
            notes.append(f"[tool.{name}] in {str(path)!r} is not read: did you mean "
                         f"[tool.{TABLE_NAME}]?")
    return tuple(notes)


def parse_table(table: Mapping[str, Any], path: Path, keys: KeyTable) -> dict[str, Any]:
    """Check every key and type; resolve relative paths against the file's folder."""
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in keys:
            known = f"did you mean {guess!r}? " if (guess := closest(key, keys)) else ""
            raise ConfigError(
                f"unknown key {key!r} in [tool.{TABLE_NAME}] of {str(path)!r}: {known}"
                f"known keys are {', '.join(sorted(keys))}"
            )
        name, kind = keys[key]
        values[name] = _typed(raw, kind, where=f"{key!r} in [tool.{TABLE_NAME}] of {str(path)!r}",
                              base=path.parent)
    return values


def closest(key: str, known: Iterable[str]) -> str | None:
    """The known key a misspelled one most likely means (``bucekt`` -> ``bucket``,
    ``static_dir`` -> ``static-dir``), or ``None``."""
    folded = key.lower().replace("_", "-")
    matches = _close_matches(folded, list(known), cutoff=0.6)
    return matches[0] if matches else None


def _close_matches(word: str, candidates: list[str], *, cutoff: float) -> list[str]:
    """difflib's best match, imported only when a table has a name to check (a deploy
    without a pyproject.toml never needs it)."""
    import difflib

    return difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)


def _typed(raw: Any, kind: str, *, where: str, base: Path) -> Any:
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{where} must be a whole number, not {raw!r}")
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(f"{where} must be true or false, not {raw!r}")
        return raw
    if kind == "patterns":
        if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
            raise ConfigError(f"{where} must be a list of non-empty strings, not {raw!r}")
        return tuple(raw)
    if kind == "ints":
        if not isinstance(raw, list) or not all(type(item) is int for item in raw):
            raise ConfigError(f"{where} must be a list of whole numbers, not {raw!r}")
        return tuple(raw)
    if kind == "mapping":
        if not isinstance(raw, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in raw.items()):
            raise ConfigError(f"{where} must be a table of non-empty strings, not {raw!r}")
        return dict(raw)
    if kind == "words":
        if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
            raise ConfigError(f"{where} must be a list of non-empty strings, not {raw!r}")
        return tuple(raw)
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string, not {raw!r}")
    if not raw:
        raise ConfigError(f"{where} is empty: remove the key or give a value")
    return base / raw if kind == "path" else raw
