"""The ``[tool.flask-cdn-pipeline]`` table of the deployed project's ``pyproject.toml``.

Found like ruff and pytest find theirs: the first ``pyproject.toml`` in the working
directory or one of its parents (the search stops there, even if that file has no
table). Relative paths in the table are resolved against the folder of that
``pyproject.toml``, so the deploy does the same thing from any subfolder.

Only the keys the caller lists (:data:`pipeline.cli.settings.TABLE_KEYS`) are accepted,
each with one TOML type: a typo (``statc-dir``) or a wrong type (``workers = "8"``) is a
:class:`ConfigError` naming the key and the file, never a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

TABLE_NAME = "flask-cdn-pipeline"
PYPROJECT = "pyproject.toml"

#: Table key -> (settings field, kind): ``str``, ``path``, ``int``, ``bool`` or ``patterns``.
#: The keys are defined with the options, in :data:`pipeline.cli.settings.TABLE_KEYS`.
KeyTable = Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class ProjectConfig:
    """The table's values by settings field (paths already absolute), and where they came from."""

    path: Path
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.path} [tool.{TABLE_NAME}]"


def find_pyproject(start: Path) -> Path | None:
    """The first ``pyproject.toml`` in ``start`` or its parents, or ``None``."""
    start = start.absolute()
    for folder in (start, *start.parents):
        candidate = folder / PYPROJECT
        if candidate.is_file():
            return candidate
    return None


def load_project_config(start: Path, keys: KeyTable, *,
                        others: bool = False) -> ProjectConfig | None:
    """Read the table of the nearest ``pyproject.toml``; ``None`` when there is none.

    ``others``: keys not in ``keys`` are left alone instead of refused, for a reader that
    needs only some of them (the Flask extension reads the variant keys; the deploy, which
    checks the whole table, runs with every key).
    """
    path = find_pyproject(start)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc
    table = document.get("tool", {}).get(TABLE_NAME)
    if table is None:
        return ProjectConfig(path)
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.{TABLE_NAME}] in {str(path)!r} must be a table")
    if others:
        table = {key: value for key, value in table.items() if key in keys}
    return ProjectConfig(path, parse_table(table, path, keys))


def parse_table(table: Mapping[str, Any], path: Path, keys: KeyTable) -> dict[str, Any]:
    """Check every key and type; resolve relative paths against the file's folder."""
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in keys:
            hint = key.replace("_", "-")
            known = f"did you mean {hint!r}? " if hint in keys else ""
            raise ConfigError(
                f"unknown key {key!r} in [tool.{TABLE_NAME}] of {str(path)!r}: {known}"
                f"known keys are {', '.join(sorted(keys))}"
            )
        name, kind = keys[key]
        values[name] = _typed(raw, kind, where=f"{key!r} in [tool.{TABLE_NAME}] of {str(path)!r}",
                              base=path.parent)
    return values


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
    if kind == "words":
        if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
            raise ConfigError(f"{where} must be a list of non-empty strings, not {raw!r}")
        return tuple(raw)
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string, not {raw!r}")
    if not raw:
        raise ConfigError(f"{where} is empty: remove the key or give a value")
    return base / raw if kind == "path" else raw
