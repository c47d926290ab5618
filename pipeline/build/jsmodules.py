"""ES module specifiers on the CDN: point ``import "./util.js"`` at the fingerprinted name.

On the CDN ``js/util.js`` lives at ``js/util.<h>.js``; a module importing
``./util.js`` as written would ask for a name that does not exist and the whole module
graph would fail to load. So every specifier that names a deployed file is rewritten,
relative to the importing file (the modules then work under any CDN host or prefix),
and, through :mod:`pipeline.build.linking`, each module is hashed after its
dependencies, import cycles as a group.

Ours: relative specifiers (``./x.js``, ``../x.js``) and root-absolute ones under the
static URL path (``/static/js/x.js`` with Flask's default). Left alone: bare names
(``"lit"``, resolved by an import map), full URLs, ``//host/x``, other root paths, and
dynamic imports whose argument is not a plain string. Finding them is
:mod:`pipeline.build.jsscan`'s job (never inside comments, strings, templates or
regular expressions).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection

from .jsscan import JSScan, scan
from .linking import Link, ParsedFile, find_target, split_url
from .mounts import UrlRoots

#: Specifiers a browser resolves as URLs, not through an import map (HTML spec:
#: "resolve a module specifier"); a bare "x.js" is a bare name.
_URL_LIKE = ("./", "../", "/")

_JS_ESCAPE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]+)\}|u([0-9a-fA-F]{4})|(\r\n|[\n\r\u2028\u2029])|(.))",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def parse_js(path: str, text: str, *, exists: Collection[str],
             static_url_path: str | UrlRoots | None,
             scanned: JSScan | None = None) -> tuple[ParsedFile, list[str]]:
    """The specifier links of one JS file; problems come back as ``file:line: ...``.

    ``static_url_path``: where root-absolute URLs land (:class:`UrlRoots`); ``scanned``
    is the file's :func:`~pipeline.build.jsscan.scan` when the caller has it already.
    """
    found = scanned if scanned is not None else scan(text)
    links: list[Link] = []
    problems: list[str] = []
    newlines: list[int] | None = None
    for spec in found.specifiers:
        raw = text[spec.start : spec.end]
        url = js_unescape(raw) if "\\" in raw else raw
        if not url.startswith(_URL_LIKE) or url.startswith("//"):
            continue
        if newlines is None:
            newlines = [m.start() for m in re.finditer("\n", text)]
        line = bisect.bisect_right(newlines, spec.start - 1) + 1
        target, problem = find_target(url, path, line=line, exists=exists,
                                      static_url_path=static_url_path)
        if problem is not None:
            problems.append(problem)
        if target is not None:
            suffix = _js_escape(split_url(url)[1], spec.quote)
            links.append(Link(spec.start, spec.end, target, suffix, dot_slash=True))
    return ParsedFile(path, text, tuple(links)), problems


def js_unescape(value: str) -> str:
    """Decode the escapes of a JS string body (``\\x2e`` -> ``.``, ``\\u{2F}`` -> ``/``)."""

    def decode(match: re.Match[str]) -> str:
        hex2, brace, hex4, newline, char = match.groups()
        if newline is not None:
            return ""  # a line continuation
        if char is not None:
            return _SIMPLE_ESCAPES.get(char, char)
        code = int(hex2 or brace or hex4, 16)
        return chr(code) if code <= 0x10FFFF else "\ufffd"

    return _JS_ESCAPE.sub(decode, value)


def _js_escape(value: str, quote: str) -> str:
    """Make ``value`` safe to write back inside ``quote`` quotes."""
    special = {"\\": "\\\\", quote: "\\" + quote, "\n": "\\n", "\r": "\\r",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}
    return "".join(special.get(c, c) for c in value)
