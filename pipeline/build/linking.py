"""Files whose bytes name other files: rewrite the names, hash in dependency order.

A CSS ``url()``/``@import``, a JS module specifier and a ``sourceMappingURL`` comment
are all the same thing to a deploy: a span of a text file that must end up naming
another file's *fingerprinted* name. So one mechanism serves them all (the finders
live in :mod:`pipeline.build.css`, :mod:`pipeline.build.jsmodules` and
:mod:`pipeline.build.sourcemaps`): each file is parsed into :class:`Link` spans, the
files are hashed dependencies first, and each file's hash covers its rewritten bytes,
so a changed dependency renames every file that reaches it.

Cycles (``a.css`` imports ``b.css`` imports ``a.css``; two ES modules importing each
other): a file's name cannot cover a hash that covers its own name, so the files of one
cycle share a *group hash* over their contents with every link out of the cycle
already rewritten. Each member is then named ``hashed_name(path, group_hash)`` and
links inside the cycle point at those names. Any change in or below the cycle changes
the group hash, so every member is still renamed; only for those members does the name
hash (``name_hash``) differ from the sha256 of the final bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .fingerprint import hashed_name
from .mounts import UrlRoots

#: Marks the group-hash input format; change it and every cycle member is renamed.
_GROUP_HASH_TAG = b"pipeline.build.css cycle group v1\0"


# --- resolving -----------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_ASCII_WS = " \t\n\r\f"


class EscapesRoot(ValueError):
    """A reference climbs above the static root."""


def split_url(url: str) -> tuple[str, str]:
    """Split ``font.eot?#iefix`` into the path and the verbatim ``?query#fragment`` suffix."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut], url[cut:]


def resolve(url: str, from_path: str, *, static_url_path: str | UrlRoots | None) -> str | None:
    """The logical path ``url`` names from ``from_path``, or ``None`` if it is not ours.

    ``None`` means leave it alone: empty, fragment-only, any scheme (``data:``,
    ``https:``, ``blob:``...), ``//host/x``, or a root-absolute path outside
    ``static_url_path`` (or every folder's URL path, :class:`UrlRoots`). A reference
    never climbs above the folder it resolves in (the static root, or a blueprint's
    folder): that raises :class:`EscapesRoot`. Percent-escapes are decoded per segment
    after splitting on ``/``, and ``%2e%2e`` counts as ``..`` as in browsers (WHATWG URL).
    """
    roots = UrlRoots.of(static_url_path)
    path = split_url(url.strip(_ASCII_WS))[0]
    if not path or path.startswith("//") or _SCHEME.match(path):
        return None
    if path.startswith("/"):
        found = roots.for_url(path)
        if found is None:
            return None
        base, path = found
        parts = base.split("/")[:-1]
    else:
        base = roots.base_of(from_path)
        parts = from_path.split("/")[:-1]
    floor = base.count("/")  # the folder's own segments: ".." may not pop them
    for segment in (unquote(s) for s in path.split("/")):
        if segment == "..":
            if len(parts) <= floor:
                raise EscapesRoot(url)
            parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    return "/".join(parts)


def find_target(url: str, from_path: str, *, line: int, exists: Collection[str],
                static_url_path: str | UrlRoots | None) -> tuple[str | None, str | None]:
    """``(target, problem)`` for a URL written in ``from_path`` at ``line``.

    The target is the deployed file it names, or ``None`` when it is not ours or names
    nothing deployed; the problem, ``file:line: ...``, says which of the latter.
    """
    where = f"{from_path}:{line}: {url!r}"
    try:
        target = resolve(url, from_path, static_url_path=static_url_path)
    except EscapesRoot:
        return None, f"{where} points outside the static folder"
    if target is None:
        return None, None
    if target not in exists:
        return None, f"{where} points to {target!r}, which is not in the static folder"
    return target, None


def relative_url(from_path: str, to_path: str) -> str:
    """The percent-encoded URL of ``to_path`` as seen from a file at ``from_path``.

    Both are logical (POSIX, root-relative) names. Encoding matches
    :func:`pipeline.urls.cdn_url`: a raw ``+``, ``#``, ``?``, ``%``, space or
    non-ASCII character in a file name would change the URL's meaning.
    """
    from_dir = from_path.split("/")[:-1]
    to_parts = to_path.split("/")
    common = 0
    while common < min(len(from_dir), len(to_parts) - 1) and from_dir[common] == to_parts[common]:
        common += 1
    relative = [".."] * (len(from_dir) - common) + to_parts[common:]
    return quote("/".join(relative), safe="/")


@dataclass(frozen=True, slots=True)
class Link:
    """A span of a file's text to replace.

    With a ``target`` (a logical path), the span becomes the URL of the target's
    fingerprinted name relative to the file, then ``suffix`` (already escaped for its
    context: a ``?query#fragment``). ``dot_slash``: a same-folder URL starts with
    ``./`` (a JS specifier without it would be a bare name). Without a target, the span
    becomes ``suffix`` as it is (removing a comment that names a missing map).
    """

    start: int
    end: int
    target: str | None
    suffix: str = ""
    dot_slash: bool = False


@dataclass(frozen=True)
class ParsedFile:
    path: str
    text: str
    links: tuple[Link, ...]

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(link.target for link in self.links if link.target is not None)


@dataclass(frozen=True)
class Rewritten:
    """A file ready to upload.

    ``content`` is what goes to storage (``sha256`` is its digest, use it for the
    SRI value and size); ``name_hash`` is what the object is named by. They are
    equal unless the file is in a cycle (see the module docstring).
    """

    logical_path: str
    content: bytes
    sha256: str
    name_hash: str
    #: Files its links name, sorted: what its name depends on.
    dependencies: tuple[str, ...]

    @property
    def hashed_name(self) -> str:
        return hashed_name(self.logical_path, self.name_hash)


def rewrite_all(parsed: Mapping[str, ParsedFile], hashes: Mapping[str, str]
                ) -> dict[str, Rewritten]:
    """Rewrite every parsed file, dependencies first; cycles get a group hash.

    ``hashes`` holds the sha256 of every file a link may name that is not in
    ``parsed``. The output depends on the inputs only, never on their order.
    """
    done: dict[str, Rewritten] = {}
    graph = {path: sorted(p for p in item.targets if p in parsed) for path, item in parsed.items()}
    for group in strongly_connected(graph):
        if len(group) == 1 and group[0] not in graph[group[0]]:
            done[group[0]] = _finish(parsed[group[0]], _namer(done, hashes), None)
        else:
            done.update(_finish_cycle([parsed[p] for p in group], done, hashes))
    return dict(sorted(done.items()))


def apply_links(parsed: ParsedFile, name_for: Callable[[str], str | None]) -> str:
    """Replace each link's span (see :class:`Link`).

    ``name_for`` returns the target's fingerprinted logical name, or ``None`` to keep
    a link as written (used for links inside a cycle).
    """
    out: list[str] = []
    pos = 0
    for link in parsed.links:
        if link.target is None:
            value = link.suffix
        else:
            name = name_for(link.target)
            if name is None:
                continue
            url = relative_url(parsed.path, name)
            if link.dot_slash and not url.startswith("../"):
                url = "./" + url
            value = url + link.suffix
        out += [parsed.text[pos : link.start], value]
        pos = link.end
    out.append(parsed.text[pos:])
    return "".join(out)


def _namer(done: Mapping[str, Rewritten], hashes: Mapping[str, str]) -> Callable[[str], str]:
    """Fingerprinted name of a target: a rewritten file's, or from ``hashes``."""

    def name_for(target: str) -> str:
        if target in done:
            return done[target].hashed_name
        try:
            return hashed_name(target, hashes[target])
        except KeyError:
            raise ValueError(f"no hash given for {target!r}, named by a rewritten file") \
                from None

    return name_for


def _finish(parsed: ParsedFile, name_for: Callable[[str], str], name_hash: str | None
            ) -> Rewritten:
    content = apply_links(parsed, name_for).encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(content).hexdigest()
    return Rewritten(parsed.path, content, digest, name_hash or digest,
                     tuple(sorted(parsed.targets)))


def _finish_cycle(members: list[ParsedFile], done: Mapping[str, Rewritten],
                  hashes: Mapping[str, str]) -> dict[str, Rewritten]:
    """Name every file of one cycle by a group hash (see the module docstring)."""
    inside = {item.path for item in members}
    outer = _namer(done, hashes)
    group = hashlib.sha256(_GROUP_HASH_TAG)
    for item in sorted(members, key=lambda m: m.path):
        # Links out of the cycle are final already; inside ones stay as written.
        partial = apply_links(item, lambda t: None if t in inside else outer(t))
        body = partial.encode("utf-8", "surrogateescape")
        group.update(
            b"%s\0%d\0%s" % (item.path.encode("utf-8", "surrogateescape"), len(body), body)
        )
    name_hash = group.hexdigest()

    def name_for(target: str) -> str:
        return hashed_name(target, name_hash) if target in inside else outer(target)

    return {item.path: _finish(item, name_for, name_hash) for item in members}


def strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, dependencies before dependants.

    Iterative (a long ``@import`` chain must not hit the recursion limit) and
    deterministic for a given graph: nodes are visited in sorted order and each
    component comes back sorted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    result.append(_pop_component(stack, on_stack, node))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result


def _pop_component(stack: list[str], on_stack: set[str], node: str) -> list[str]:
    component: list[str] = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
            return sorted(component)
