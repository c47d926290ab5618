"""Every CSS and JS file of a deploy, parsed into the links its bytes carry.

One pass per file finds what :mod:`pipeline.build.linking` rewrites: CSS ``url()``,
``@import`` and ``image-set()`` references (:mod:`pipeline.build.css`), ES module
specifiers (:mod:`pipeline.build.jsmodules`) and the trailing ``sourceMappingURL``
directive of either (:mod:`pipeline.build.sourcemaps`), each found by its language's
tokenizer so comments, strings and templates are never edited.

A file that is not UTF-8 is still parsed (``surrogateescape`` keeps its bytes exactly)
but reported: it is served as ``charset=utf-8``, so its non-ASCII text would show
garbled. Strict mode refuses it, like a reference to a missing file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from .css import MissingReferenceError, comment_spans, parse_css
from .jsmodules import parse_js
from .jsscan import scan
from .linking import ParsedFile
from .mounts import UrlRoots
from .sourcemaps import directive_link

#: Files whose bytes may name other files.
TEXT_SUFFIXES = (".css", ".js", ".mjs")
_MAP_MARK = b"sourceMappingURL="


def is_text_asset(logical_path: str) -> bool:
    return logical_path.lower().endswith(TEXT_SUFFIXES)


class EncodingError(ConfigError):
    """Strict mode: a CSS or JS file is not UTF-8."""


@dataclass(frozen=True)
class TextLinks:
    """The parsed files with at least one link, and what was wrong on the way."""

    parsed: Mapping[str, ParsedFile]
    #: ``file:line: ...`` for each reference to a file that is not deployed.
    problems: tuple[str, ...]
    #: Source-map comments removed because the map is not deployed.
    warnings: tuple[str, ...]
    #: ``path: ...`` for each file that is not UTF-8.
    not_utf8: tuple[str, ...]
    #: Scripts that are UTF-8 and name nothing (stored as they are): what a hash cache may
    #: remember about their bytes (:meth:`pipeline.build.fingerprint.HashCache.remember_plain`).
    plain: frozenset[str] = frozenset()

    def refuse_if_broken(self) -> None:
        """Strict mode: raise for a file that is not UTF-8 or a reference to a missing file."""
        if self.not_utf8:
            listing = "\n  ".join(self.not_utf8)
            raise EncodingError(
                f"{len(self.not_utf8)} CSS/JS file(s) are not UTF-8 (they are served as "
                f"charset=utf-8):\n  {listing}\nsave them as UTF-8 (non-strict mode uploads "
                "them as they are with a warning)")
        if self.problems:
            raise MissingReferenceError(self.problems)

    def all_warnings(self) -> tuple[str, ...]:
        """What non-strict mode reports: encodings, then comments removed, then references."""
        encodings = tuple(f"{item}: uploaded as it is, served as charset=utf-8"
                          for item in self.not_utf8)
        return (*encodings, *self.warnings, *self.problems)


def parse_texts(logical_paths: Collection[str], *, read: Callable[[str], bytes],
                static_url_path: str | UrlRoots | None,
                known_plain: Collection[str] = ()) -> TextLinks:
    """Parse every CSS/JS file among ``logical_paths`` (see the module docstring).

    ``known_plain``: scripts a hash cache vouches are unchanged since they were found plain
    (UTF-8, naming nothing): not read again."""
    url_path = UrlRoots.of(static_url_path)
    exists = frozenset(logical_paths)
    parsed: dict[str, ParsedFile] = {}
    problems: list[str] = []
    warnings: list[str] = []
    not_utf8: list[str] = []
    plain = set(known_plain)
    for path in sorted(p for p in exists if is_text_asset(p) and p not in plain):
        data = _read(read, path)
        utf8 = _check_utf8(path, data, not_utf8)
        css = path.lower().endswith(".css")
        # A JS file naming nothing cannot carry a link: skip the scan (most classic scripts).
        if not css and b"import" not in data and b"export" not in data \
                and _MAP_MARK not in data:
            if utf8:
                plain.add(path)
            continue
        # surrogateescape: bytes that are not UTF-8 come back out exactly as they went in.
        text = data.decode("utf-8", "surrogateescape")
        if css:
            item, found = parse_css(path, text, exists=exists, static_url_path=url_path)
            comments = comment_spans(text) if _MAP_MARK in data else []
        else:
            scanned = scan(text)
            item, found = parse_js(path, text, exists=exists, static_url_path=url_path,
                                   scanned=scanned)
            comments = list(scanned.comments)
        problems += found
        link, warning = directive_link(path, text, comments, exists=exists,
                                       static_url_path=url_path) if comments else (None, None)
        if warning:
            warnings.append(warning)
        if link is not None:  # trailing: after every other link
            item = ParsedFile(path, text, (*item.links, link))
        if item.links or css:
            parsed[path] = item
    return TextLinks(parsed, tuple(problems), tuple(warnings), tuple(not_utf8), frozenset(plain))


def _read(read: Callable[[str], bytes], path: str) -> bytes:
    try:
        return read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r} in the static folder: {exc.strerror}") from exc


def _check_utf8(path: str, data: bytes, not_utf8: list[str]) -> bool:
    """Whether ``data`` is UTF-8; if not, say where in ``not_utf8``."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        not_utf8.append(f"{path}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
                        "UTF-8")
        return False
    return True
