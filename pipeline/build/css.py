"""CSS reference rewriting: point every local ``url()``/``@import`` at a fingerprinted name.

A CSS file on the CDN lives at ``css/site.<h>.css``, so ``url(../img/bg.png)``
must become ``url(../img/bg.<h>.png)``. The rewritten URL is *relative* to the CSS
file's own location (every object shares one key prefix), so the CSS works under
any CDN host or prefix. A CSS file's hash covers its rewritten bytes, so changing
an image renames every stylesheet that reaches it, through ``@import`` chains.

Nothing here touches the file system: :func:`build_css` receives a ``read``
callable and the hashes of the other files, which keeps every rule testable.

Root-absolute references: a reference starting with ``static_url_path``
(``/static/`` by default, Flask's ``static_url_path``) is resolved from the static
root, or with several folders (:class:`pipeline.build.mounts.UrlRoots`) from the
folder served at the longest matching URL path; any other ``/path`` belongs to
something else the site serves and is left alone, as are ``data:``/``http(s):``/other
schemes, ``//host/x`` and ``#fragment``.

Cycles (``a.css`` imports ``b.css`` imports ``a.css``): a file's name cannot cover
a hash that covers its own name, so the files of one cycle share a *group hash*
over their contents with every reference out of the cycle already rewritten.
Each member is then named ``hashed_name(path, group_hash)`` and references inside
the cycle point at those names. Any change in or below the cycle changes the group
hash, so every member is still renamed; only for those members does the name hash
(``name_hash``) differ from the sha256 of the final bytes.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..errors import ConfigError
from ..validate import DEFAULT_STATIC_URL_PATH
from .fingerprint import hashed_name
from .mounts import UrlRoots

#: Marks the group-hash input format; change it and every cycle member is renamed.
_GROUP_HASH_TAG = b"pipeline.build.css cycle group v1\0"


class MissingReferenceError(ConfigError):
    """Strict mode: a CSS file points at a file that is not in the static folder."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        listing = "\n  ".join(problems)
        super().__init__(
            f"CSS references {len(problems)} file(s) that will not be deployed:\n  {listing}\n"
            "add the file or fix the reference (non-strict mode leaves it unchanged with a warning)"
        )
        self.problems = problems


@dataclass(frozen=True)
class Reference:
    """One URL written in a CSS text: where its value sits and what it says.

    ``start``/``end`` delimit the value only (inside the quotes, without the
    surrounding whitespace), so a rewrite keeps the author's quoting and layout.
    ``url`` has CSS escapes decoded but percent-escapes kept, as a browser sees it.
    """

    start: int
    end: int
    line: int
    url: str
    quote: str  # '"', "'" or "" (unquoted url())
    kind: str  # "url", "import" or "image-set"


@dataclass(frozen=True)
class RewrittenCSS:
    """A CSS file ready to upload.

    ``content`` is what goes to storage (``sha256`` is its digest, use it for the
    SRI value and size); ``name_hash`` is what the object is named by. They are
    equal unless the file is in an import cycle (see the module docstring).
    """

    logical_path: str
    content: bytes
    sha256: str
    name_hash: str
    #: Local files it references, sorted: what its name depends on.
    dependencies: tuple[str, ...]

    @property
    def hashed_name(self) -> str:
        return hashed_name(self.logical_path, self.name_hash)


@dataclass(frozen=True)
class CSSBuild:
    files: Mapping[str, RewrittenCSS]
    #: Non-strict mode: ``"css/a.css:12: ..."`` for each reference left unchanged.
    warnings: tuple[str, ...]


def sri_hash(data: bytes) -> str:
    """The Subresource Integrity value for ``data`` (sha384, the level browsers all check)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def is_css(logical_path: str) -> bool:
    return logical_path.lower().endswith(".css")


# --- finding references -------------------------------------------------------------------

_WS = r"[ \t\n\r\f]*"
# A string ends at its quote or, unterminated, at the end of the line (CSS Syntax 4.3.5).
_STRING_BODY = r"(?:\\.|(?!(?P={q}))[^\\\n])*"
# An escape outside strings: hex digits swallow one whitespace after them (CSS Syntax 4.3.7).
_ESCAPE = r"\\[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|\\[^\n]"

_TOKEN = re.compile(
    rf"""
      (?P<comment>/\*.*?(?:\*/|\Z))
    | (?<![\w\\-])url\({_WS}
        (?: (?P<uq>["'])(?P<uval>{_STRING_BODY.format(q="uq")})(?P=uq)
          | (?P<bare>(?:{_ESCAPE}|[^"'()\\ \t\n\r\f])*) )
      {_WS}\)
    | @import{_WS}(?P<iq>["'])(?P<ival>{_STRING_BODY.format(q="iq")})(?P=iq)
    | (?P<imageset>(?<![\w\\-])(?:-webkit-)?image-set\()
    | (?P<sq>["'])(?P<sval>{_STRING_BODY.format(q="sq")})(?P<send>(?P=sq))?
    | (?P<escape>\\.)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<stop>[;{{}}])
    """,
    re.VERBOSE | re.IGNORECASE | re.DOTALL,
)

_HEX_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\n\r\f])?|(\n)|(.))", re.DOTALL)


def find_references(text: str) -> list[Reference]:
    """Every URL in ``text`` that a browser would fetch, in source order.

    One regular expression walks the text token by token, so URLs inside
    comments and ordinary strings (``content: "url(x)"``) are consumed without
    being seen. Bare strings count only as ``@import`` targets or directly inside
    ``image-set()`` (not in a nested ``type("image/avif")``), tracked with a stack
    of open parentheses that ``;``, ``{`` and ``}`` reset in case of broken CSS.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]
    found: list[Reference] = []
    stack: list[bool] = []  # one entry per open "(": is it an image-set()?
    for match in _TOKEN.finditer(text):
        if match["comment"] is not None or match["escape"] is not None:
            continue
        if match["imageset"] is not None or match["open"] is not None:
            stack.append(match["imageset"] is not None)
            continue
        if match["close"] is not None:
            if stack:
                stack.pop()
            continue
        if match["stop"] is not None:
            stack.clear()
            continue
        ref = _reference_of(match, in_image_set=bool(stack) and stack[-1])
        if ref is not None:
            start, end, quote_char, kind = ref
            line = bisect.bisect_right(newlines, start - 1) + 1
            url = css_unescape(text[start:end])
            found.append(Reference(start, end, line, url, quote_char, kind))
    return found


def _reference_of(match: re.Match[str], *, in_image_set: bool) -> tuple[int, int, str, str] | None:
    """The value span, quote and kind of a token that is a URL, else ``None``."""
    if match["uval"] is not None:
        return (*match.span("uval"), match["uq"], "url")
    if match["bare"] is not None:
        return (*match.span("bare"), "", "url")
    if match["ival"] is not None:
        return (*match.span("ival"), match["iq"], "import")
    if match["sval"] is not None and in_image_set and match["send"] is not None:
        return (*match.span("sval"), match["sq"], "image-set")
    return None


def css_unescape(value: str) -> str:
    """Decode CSS escapes (``\\26 `` -> ``&``, ``\\)`` -> ``)``, escaped newline -> nothing)."""

    def decode(match: re.Match[str]) -> str:
        hex_digits, newline, char = match.groups()
        if newline is not None:
            return ""
        if char is not None:
            return char
        code = int(hex_digits, 16)
        # Zero, surrogates and values beyond Unicode become U+FFFD (CSS Syntax 4.3.7).
        return "\ufffd" if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else chr(code)

    return _HEX_ESCAPE.sub(decode, value) if "\\" in value else value


def _css_escape(value: str, quote_char: str) -> str:
    """Make ``value`` safe to write back inside ``quote_char`` quotes (or unquoted)."""
    special = "\\" + (quote_char if quote_char else "\"'() \t")
    # Line breaks cannot follow a bare backslash; they need the hex form.
    return "".join(
        f"\\{ord(c):x} " if c in "\n\r\f" else f"\\{c}" if c in special else c for c in value
    )


# --- resolving and relative URLs ----------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_ASCII_WS = " \t\n\r\f"


class _EscapesRoot(ValueError):
    """Internal: a reference climbs above the static root."""


def split_url(url: str) -> tuple[str, str]:
    """Split ``font.eot?#iefix`` into the path and the verbatim ``?query#fragment`` suffix."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut], url[cut:]


def resolve(url: str, css_path: str, *, static_url_path: str | UrlRoots | None) -> str | None:
    """The logical path ``url`` names from ``css_path``, or ``None`` if it is not ours.

    ``None`` means leave it alone: empty, fragment-only, any scheme (``data:``,
    ``https:``, ``blob:``...), ``//host/x``, or a root-absolute path outside
    ``static_url_path`` (or every folder's URL path, :class:`UrlRoots`). A reference
    never climbs above the folder it resolves in (the static root, or a blueprint's
    folder). Percent-escapes are decoded per segment after splitting on ``/``, and
    ``%2e%2e`` counts as ``..`` as in browsers (WHATWG URL).
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
        base = roots.base_of(css_path)
        parts = css_path.split("/")[:-1]
    floor = base.count("/")  # the folder's own segments: ".." may not pop them
    for segment in (unquote(s) for s in path.split("/")):
        if segment == "..":
            if len(parts) <= floor:
                raise _EscapesRoot(url)
            parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    return "/".join(parts)


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


# --- rewriting one file -------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    """A reference that resolved to a file which exists."""

    ref: Reference
    target: str


@dataclass(frozen=True)
class _ParsedCSS:
    path: str
    text: str
    links: tuple[_Link, ...]

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(link.target for link in self.links)


def _parse(
    path: str, text: str, *, exists: Collection[str], static_url_path: UrlRoots
) -> tuple[_ParsedCSS, list[str]]:
    """Resolve each reference of one file; problems come back as ``file:line: ...``."""
    links: list[_Link] = []
    problems: list[str] = []
    for ref in find_references(text):
        where = f"{path}:{ref.line}: {ref.url!r}"
        try:
            target = resolve(ref.url, path, static_url_path=static_url_path)
        except _EscapesRoot:
            problems.append(f"{where} points outside the static folder")
            continue
        if target is None:
            continue
        if target not in exists:
            problems.append(f"{where} points to {target!r}, which is not in the static folder")
            continue
        links.append(_Link(ref, target))
    return _ParsedCSS(path, text, tuple(links)), problems


def _rewrite(parsed: _ParsedCSS, name_for: Callable[[str], str | None]) -> str:
    """Replace each link's value by the relative URL of ``name_for(target)``.

    ``name_for`` returns the target's fingerprinted logical name, or ``None`` to
    keep a reference as written (used for references inside a cycle).
    """
    out: list[str] = []
    pos = 0
    for link in parsed.links:
        name = name_for(link.target)
        if name is None:
            continue
        suffix = split_url(link.ref.url.strip(_ASCII_WS))[1]
        value = relative_url(parsed.path, name) + _css_escape(suffix, link.ref.quote)
        out += [parsed.text[pos : link.ref.start], value]
        pos = link.ref.end
    out.append(parsed.text[pos:])
    return "".join(out)


# --- the whole tree -----------------------------------------------------------------------


def build_css(
    logical_paths: Collection[str],
    *,
    read: Callable[[str], bytes],
    hashes: Mapping[str, str],
    strict: bool = True,
    static_url_path: str | UrlRoots | None = DEFAULT_STATIC_URL_PATH,
) -> CSSBuild:
    """Rewrite every ``.css`` file among ``logical_paths``, dependencies first.

    ``read`` returns a CSS file's bytes (only CSS files are read); ``hashes``
    holds the sha256 of every other file that may be referenced. A reference to a
    file not in ``logical_paths`` raises :class:`MissingReferenceError` listing
    every ``file:line``, or with ``strict=False`` becomes a warning and stays as
    written. The output depends on the inputs only, never on their order.
    """
    parsed, problems = _parse_all(logical_paths, read, static_url_path)
    if problems and strict:
        raise MissingReferenceError(tuple(problems))
    done: dict[str, RewrittenCSS] = {}
    graph = {path: sorted(p for p in item.targets if p in parsed) for path, item in parsed.items()}
    for group in strongly_connected(graph):
        if len(group) == 1 and group[0] not in graph[group[0]]:
            done[group[0]] = _finish(parsed[group[0]], _namer(done, hashes), None)
        else:
            done.update(_finish_cycle([parsed[p] for p in group], done, hashes))
    return CSSBuild(dict(sorted(done.items())), tuple(problems))


def check_references(
    logical_paths: Collection[str],
    *,
    read: Callable[[str], bytes],
    static_url_path: str | UrlRoots | None = DEFAULT_STATIC_URL_PATH,
) -> None:
    """Raise the :class:`MissingReferenceError` a strict :func:`build_css` would, without
    needing any hash: a deploy that uploads while it hashes refuses a broken reference
    before anything is read but the CSS."""
    problems = _parse_all(logical_paths, read, static_url_path)[1]
    if problems:
        raise MissingReferenceError(tuple(problems))


def _parse_all(
    logical_paths: Collection[str], read: Callable[[str], bytes],
    static_url_path: str | UrlRoots | None,
) -> tuple[dict[str, _ParsedCSS], list[str]]:
    """Every CSS file among ``logical_paths`` parsed, with every reference problem found."""
    url_path = UrlRoots.of(static_url_path)
    exists = frozenset(logical_paths)
    parsed: dict[str, _ParsedCSS] = {}
    problems: list[str] = []
    for path in sorted(p for p in exists if is_css(p)):
        # surrogateescape: bytes that are not UTF-8 come back out exactly as they went in.
        text = _read(read, path).decode("utf-8", "surrogateescape")
        parsed[path], found = _parse(path, text, exists=exists, static_url_path=url_path)
        problems += found
    return parsed, problems


def _read(read: Callable[[str], bytes], path: str) -> bytes:
    try:
        return read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r} in the static folder: {exc.strerror}") from exc


def _namer(done: Mapping[str, RewrittenCSS], hashes: Mapping[str, str]) -> Callable[[str], str]:
    """Fingerprinted name of a target: CSS from this build, anything else from ``hashes``."""

    def name_for(target: str) -> str:
        if target in done:
            return done[target].hashed_name
        try:
            return hashed_name(target, hashes[target])
        except KeyError:
            raise ValueError(f"no hash given for {target!r}, referenced from CSS") from None

    return name_for


def _finish(
    parsed: _ParsedCSS, name_for: Callable[[str], str], name_hash: str | None
) -> RewrittenCSS:
    content = _rewrite(parsed, name_for).encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(content).hexdigest()
    return RewrittenCSS(
        parsed.path, content, digest, name_hash or digest, tuple(sorted(parsed.targets))
    )


def _finish_cycle(
    members: list[_ParsedCSS], done: Mapping[str, RewrittenCSS], hashes: Mapping[str, str]
) -> dict[str, RewrittenCSS]:
    """Name every file of one cycle by a group hash (see the module docstring)."""
    inside = {item.path for item in members}
    outer = _namer(done, hashes)
    group = hashlib.sha256(_GROUP_HASH_TAG)
    for item in sorted(members, key=lambda m: m.path):
        # References out of the cycle are final already; inside ones stay as written.
        partial = _rewrite(item, lambda t: None if t in inside else outer(t))
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
