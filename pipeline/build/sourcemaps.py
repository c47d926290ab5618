"""Source maps on the CDN: point ``sourceMappingURL`` comments at the fingerprinted map.

On the CDN ``js/app.js`` lives at ``js/app.<h>.js`` and its map at
``js/app.js.<h>.map``: a ``//# sourceMappingURL=app.js.map`` comment left as
written would 404. So, in dependency order:

1. every map's ``sources`` that name a deployed file are pointed at its fingerprinted
   name (a map stays in its folder, so the other, relative, sources stay valid);
2. each CSS/JS file's directive (:func:`directive_link`: only a trailing comment, found
   by the file's own tokenizer, never text inside a string or template) becomes a
   link to the map's fingerprinted name, relative to the file, rewritten *before* the
   file is hashed (:mod:`pipeline.build.linking`): a changed map renames the file
   using it. A comment naming a map that is not deployed is removed with a warning.

Sources that are themselves CSS, maps or JS with links are left as written: their
names depend on other files, and a map naming them could make a cycle (browsers then
use ``sourcesContent``). Comments with a scheme (``data:``,
``https:``) or a root-absolute path outside the static URL path are not ours and
stay. Nothing here touches the file system.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from .fingerprint import hashed_name
from .linking import EscapesRoot as _EscapesRoot
from .linking import Link, relative_url, resolve
from .mounts import UrlRoots

#: The text of a ``sourceMappingURL`` comment (``@`` is the old spelling), from ``//``
#: or ``/*`` on; the comment itself is found by the file's own tokenizer.
_DIRECTIVE = re.compile(r"(?://|/\*)[#@][ \t]*sourceMappingURL=(?P<url>[^\s'\"*]*)")
_BLANK = re.compile(r"[\s\ufeff]*\Z")

JS_SUFFIXES = (".js", ".mjs")


def is_js(logical_path: str) -> bool:
    return logical_path.lower().endswith(JS_SUFFIXES)


def is_map(logical_path: str) -> bool:
    return logical_path.lower().endswith(".map")


@dataclass(frozen=True)
class LinkedBodies:
    """Maps whose ``sources`` were rewritten.

    ``hashes`` is the input hashes updated for every file in ``bodies`` (sha256 of
    the new bytes), so a later step names them by what is uploaded.
    """

    bodies: Mapping[str, bytes]
    hashes: Mapping[str, str]


def link_maps(
    logical_paths: Collection[str],
    *,
    read: Callable[[str], bytes],
    hashes: Mapping[str, str],
    unstable: Collection[str],
) -> LinkedBodies:
    """Point every map's ``sources`` at the fingerprinted names of deployed files.

    ``unstable`` are the files whose names depend on other files (CSS, JS with links):
    a source naming one of them is left as written (see the module docstring).
    """
    exists = frozenset(logical_paths)
    new_hashes = dict(hashes)
    bodies: dict[str, bytes] = {}
    stable = exists - frozenset(unstable) - {p for p in exists if is_map(p)}
    for path in sorted(p for p in exists if is_map(p)):
        body = rewrite_sources(path, read(path), exists=stable, hashes=hashes)
        if body is not None:
            bodies[path] = body
            new_hashes[path] = hashlib.sha256(body).hexdigest()
    return LinkedBodies(bodies, new_hashes)


def rewrite_sources(
    map_path: str, data: bytes, *, exists: Collection[str], hashes: Mapping[str, str]
) -> bytes | None:
    """The map with ``sources`` naming deployed files fingerprinted, or ``None`` if unchanged.

    A file that is not a JSON object with a list of ``sources``, or that has a
    ``sourceRoot`` (sources are then relative to it, not to the map), is left alone.
    """
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("sourceRoot"):
        return None
    sources = document.get("sources")
    if not isinstance(sources, list):
        return None
    changed = False
    for index, source in enumerate(sources):
        target = _resolve(source, map_path, static_url_path=None) if isinstance(source, str) \
            else None
        if target is not None and target in exists:
            sources[index] = relative_url(map_path, hashed_name(target, hashes[target]))
            changed = True
    if not changed:
        return None
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def directive_link(
    path: str,
    text: str,
    comments: Sequence[tuple[int, int]],
    *,
    exists: Collection[str],
    static_url_path: str | UrlRoots | None,
) -> tuple[Link | None, str | None]:
    """The file's ``sourceMappingURL`` directive as a link to the map, and a warning.

    Only a trailing comment is a directive (source map spec, "extract a source map URL
    from JavaScript through parsing": any later token other than a comment cancels it);
    of several, the last. ``comments`` are the file's comment spans from its own
    tokenizer, so text inside a string or template is never taken for one. A directive
    naming a map that is not deployed becomes a link that removes the comment, with a
    warning; one with a scheme or a root path outside ``static_url_path`` is not ours:
    ``(None, None)``.
    """
    end = len(text)
    for start, stop in reversed(comments):
        if not _BLANK.match(text, stop, end):
            return None, None  # code follows: no directive
        match = _DIRECTIVE.match(text, start, stop)
        if match is not None:
            return _directive(path, match, (start, stop), exists=exists,
                              static_url_path=static_url_path)
        end = start
    return None, None


def _directive(path: str, match: re.Match[str], span: tuple[int, int], *,
               exists: Collection[str], static_url_path: str | UrlRoots | None
               ) -> tuple[Link | None, str | None]:
    url = match["url"]
    try:
        target = resolve(url, path, static_url_path=static_url_path)
    except _EscapesRoot:
        target = ""  # above the static root: certainly not deployed
    if target is None:
        return None, None
    if target in exists:
        return Link(match.start("url"), match.end("url"), target), None
    warning = f"{path}: source map {url!r} is not deployed: sourceMappingURL comment removed"
    return Link(span[0], span[1], None), warning


def _resolve(url: str, from_path: str, *, static_url_path: str | UrlRoots | None) -> str | None:
    try:
        return resolve(url, from_path, static_url_path=static_url_path)
    except _EscapesRoot:
        return None
