"""``--include`` / ``--exclude``: gitignore-like glob patterns over logical paths.

The rules, as in ``.gitignore``:

* ``*`` and ``?`` match within one path segment, ``[abc]`` / ``[!abc]`` one character;
* ``**`` as a whole segment matches any number of folders (``a/**/b``, ``**/x``, ``a/**``);
* a pattern with a ``/`` other than a trailing one is anchored at the static folder
  (``img/raw``); without one it matches a name at any depth (``*.psd``, ``drafts``);
* a trailing ``/`` matches folders only; a pattern that matches a folder matches
  everything inside it.

A file is deployed when it matches an include pattern (or none are given) and no
exclude pattern. Written here rather than taken from ``pathspec``: these ~40 lines
are the whole feature, and the runtime dependencies stay what the library imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    dir_only: bool

    def matches(self, logical_path: str, *, is_dir: bool) -> bool:
        """Whether the pattern matches this path or one of the folders above it."""
        parts = logical_path.split("/")
        for depth in range(len(parts), 0, -1):
            candidate_is_dir = is_dir or depth < len(parts)
            if self.dir_only and not candidate_is_dir:
                continue
            if self.regex.fullmatch("/".join(parts[:depth])):
                return True
        return False


def compile_pattern(text: str) -> Pattern:
    """Translate one gitignore-like pattern into a regular expression over logical paths."""
    body = text.rstrip("/")
    if not body.strip("/") or text != text.strip() or any(ord(ch) < 32 for ch in text):
        raise ConfigError(f"pattern {text!r} is not valid: use globs like '*.psd' or 'img/raw/'")
    anchored = "/" in body
    segments = body.lstrip("/").split("/")
    if not anchored:
        segments = ["**", *segments]
    pieces: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            pieces.append(".+" if last else "(?:[^/]+/)*")
        else:
            pieces.append(_segment(segment) + ("" if last else "/"))
    return Pattern(text, re.compile("".join(pieces)), dir_only=text.endswith("/"))


def _segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif ch == "[" and (end := segment.find("]", i + 2)) != -1:
            inner = segment[i + 1:end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            out.append(f"[{'^' if negate else ''}{inner.replace(chr(92), chr(92) * 2)}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class PathFilter:
    """The include and exclude patterns of one deploy."""

    include: tuple[Pattern, ...] = ()
    exclude: tuple[Pattern, ...] = ()

    @classmethod
    def from_globs(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> PathFilter:
        return cls(tuple(map(compile_pattern, include)), tuple(map(compile_pattern, exclude)))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def excluded_by(self, logical_path: str, *, is_dir: bool) -> str | None:
        """Why the path is left out (a folder: only by an exclude pattern), or ``None``."""
        for pattern in self.exclude:
            if pattern.matches(logical_path, is_dir=is_dir):
                return f"excluded by {pattern.text!r}"
        if self.include and not is_dir and not any(
                p.matches(logical_path, is_dir=False) for p in self.include):
            return "matches no include pattern"
        return None
