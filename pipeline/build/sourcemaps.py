"""Source maps on the CDN: point ``sourceMappingURL`` comments at the fingerprinted map.

On the CDN ``js/app.js`` lives at ``js/app.<h>.js`` and its map at
``js/app.js.<h>.map``: a ``//# sourceMappingURL=app.js.map`` comment left as
written would 404. So, in dependency order:

1. every map's ``sources`` that name a deployed file are pointed at its fingerprinted
   name (a map stays in its folder, so the other, relative, sources stay valid);
2. each CSS/JS comment is rewritten to the map's fingerprinted name, relative to
   the file, *before* the file is hashed: a changed map renames the file using it.
   A comment naming a map that is not deployed is removed with a warning.

Sources that are themselves CSS, maps or JS carrying a comment are left as
written: their names depend on a map, and a map naming them would make a cycle
(browsers then use ``sourcesContent``). Comments with a scheme (``data:``,
``https:``) or a root-absolute path outside the static URL path are not ours and
stay. Nothing here touches the file system.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from .css import _EscapesRoot, is_css, relative_url, resolve
from .fingerprint import hashed_name
from .mounts import UrlRoots

#: ``/*# sourceMappingURL=x.css.map */`` (``@`` is the old spelling).
_CSS_COMMENT = re.compile(r"/\*[#@][ \t]*sourceMappingURL=(?P<url>[^\s*]*)[ \t]*\*/")
#: ``//# sourceMappingURL=x.js.map`` on a line of its own.
_JS_COMMENT = re.compile(
    r"^[ \t]*//[#@][ \t]*sourceMappingURL=(?P<url>[^\s'\"]*)[ \t]*(?:\r?\n|\Z)", re.MULTILINE
)

JS_SUFFIXES = (".js", ".mjs")


def is_js(logical_path: str) -> bool:
    return logical_path.lower().endswith(JS_SUFFIXES)


def is_map(logical_path: str) -> bool:
    return logical_path.lower().endswith(".map")


@dataclass(frozen=True)
class LinkedBodies:
    """Files whose bytes changed: maps with rewritten sources, CSS/JS with rewritten comments.

    ``hashes`` is the input hashes updated for every file in ``bodies`` (sha256 of
    the new bytes), so a later step names them by what is uploaded.
    """

    bodies: Mapping[str, bytes]
    hashes: Mapping[str, str]
    warnings: tuple[str, ...]


def has_comment(logical_path: str, data: bytes) -> bool:
    """Does this CSS/JS file carry a ``sourceMappingURL`` comment (a cheap pre-check)?"""
    return (is_css(logical_path) or is_js(logical_path)) and b"sourceMappingURL=" in data


def link_maps(
    logical_paths: Collection[str],
    *,
    read: Callable[[str], bytes],
    hashes: Mapping[str, str],
    commented: Collection[str],
    static_url_path: str | UrlRoots | None,
) -> LinkedBodies:
    """Rewrite maps, then the JS files in ``commented`` (see the module docstring).

    ``commented`` are the CSS/JS files for which :func:`has_comment` is true. CSS
    files are not rewritten here: :func:`rewrite_comment` is applied to their text
    before :func:`pipeline.build.css.build_css` hashes them.
    """
    exists = frozenset(logical_paths)
    new_hashes = dict(hashes)
    bodies: dict[str, bytes] = {}
    warnings: list[str] = []
    unstable = {p for p in exists if is_css(p) or is_map(p)} | set(commented)
    for path in sorted(p for p in exists if is_map(p)):
        body = rewrite_sources(path, read(path), exists=exists - unstable, hashes=hashes)
        if body is not None:
            bodies[path] = body
            new_hashes[path] = hashlib.sha256(body).hexdigest()
    for path in sorted(p for p in commented if is_js(p)):
        text = read(path).decode("utf-8", "surrogateescape")
        new, warning = rewrite_comment(path, text, exists=exists, hashes=new_hashes,
                                       static_url_path=static_url_path)
        if warning:
            warnings.append(warning)
        if new != text:
            bodies[path] = new.encode("utf-8", "surrogateescape")
            new_hashes[path] = hashlib.sha256(bodies[path]).hexdigest()
    return LinkedBodies(bodies, new_hashes, tuple(warnings))


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


def rewrite_comment(
    path: str,
    text: str,
    *,
    exists: Collection[str],
    hashes: Mapping[str, str],
    static_url_path: str | UrlRoots | None,
) -> tuple[str, str | None]:
    """``text`` with its last ``sourceMappingURL`` comment pointed at the fingerprinted map.

    Returns the new text and a warning when the comment was removed because the map
    it names is not deployed.
    """
    pattern = _CSS_COMMENT if is_css(path) else _JS_COMMENT
    matches = list(pattern.finditer(text))
    match = matches[-1] if matches else None  # browsers use the last one
    if match is None:
        return text, None
    url = match["url"]
    try:
        target = resolve(url, path, static_url_path=static_url_path)
    except _EscapesRoot:
        target = ""  # above the static root: certainly not deployed
    if target is None:
        return text, None
    if target in exists and target in hashes:
        new_url = relative_url(path, hashed_name(target, hashes[target]))
        start, end = match.span("url")
        return text[:start] + new_url + text[end:], None
    start, end = match.span()
    # Keep the line break a JS comment consumed, so line numbers of the code stay right.
    comment = text[start:end]
    keep = comment[len(comment.rstrip("\r\n")):]
    warning = f"{path}: source map {url!r} is not deployed: sourceMappingURL comment removed"
    return text[:start] + keep + text[end:], warning


def _resolve(url: str, from_path: str, *, static_url_path: str | UrlRoots | None) -> str | None:
    try:
        return resolve(url, from_path, static_url_path=static_url_path)
    except _EscapesRoot:
        return None
