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

Ordering and ``@import`` cycles (hashed as a group) are :mod:`pipeline.build.linking`'s,
shared with JS module specifiers and source-map comments.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..validate import DEFAULT_STATIC_URL_PATH
from .linking import (
    EscapesRoot,
    Link,
    ParsedFile,
    Rewritten,
    find_target,
    relative_url,
    resolve,
    rewrite_all,
    split_url,
    strongly_connected,
)
from .mounts import UrlRoots

__all__ = ["EscapesRoot", "relative_url", "resolve", "split_url", "strongly_connected"]

_ASCII_WS = " \t\n\r\f"


class MissingReferenceError(ConfigError):
    """Strict mode: a CSS or JS file points at a file that is not in the static folder."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        listing = "\n  ".join(problems)
        super().__init__(
            f"CSS/JS references {len(problems)} file(s) that will not be deployed:\n  {listing}\n"
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


#: A rewritten CSS file (the type every linked file shares).
RewrittenCSS = Rewritten


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

# Possessive (``*+``): whitespace is never given back. ``url(`` then a long run of
# whitespace with no ``)`` otherwise made the two runs around the (empty) value try every
# split of it: quadratic in the run (40,000 blanks took 1 s).
_WS = r"[ \t\n\r\f]*+"
# A string ends at its quote or, unterminated, at the end of the line (CSS Syntax 4.3.5).
# It cannot hold its own quote, so giving characters back never finds another end.
_STRING_BODY = r"(?:\\.|(?!(?P={q}))[^\\\n])*+"
# An escape outside strings: hex digits swallow one whitespace after them (CSS Syntax 4.3.7).
_ESCAPE = r"\\[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|\\[^\n]"

_TOKEN = re.compile(
    rf"""
      (?P<comment>/\*.*?(?:\*/|\Z))
    | (?<![\w\\-])url\({_WS}
        (?: (?P<uq>["'])(?P<uval>{_STRING_BODY.format(q="uq")})(?P=uq)
          | (?P<bare>(?:{_ESCAPE}|[^"'()\\ \t\n\r\f])*+) )
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


# --- one file -----------------------------------------------------------------------------


def parse_css(path: str, text: str, *, exists: Collection[str],
              static_url_path: str | UrlRoots | None) -> tuple[ParsedFile, list[str]]:
    """The links of one CSS file; problems (missing targets) come back as ``file:line: ...``.

    ``static_url_path``: where root-absolute URLs land (:class:`UrlRoots`).
    """
    links: list[Link] = []
    problems: list[str] = []
    for ref in find_references(text):
        target, problem = find_target(ref.url, path, line=ref.line, exists=exists,
                                      static_url_path=static_url_path)
        if problem is not None:
            problems.append(problem)
        if target is not None:
            suffix = split_url(ref.url.strip(_ASCII_WS))[1]
            links.append(Link(ref.start, ref.end, target, _css_escape(suffix, ref.quote)))
    return ParsedFile(path, text, tuple(links)), problems


def comment_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every comment, found by the same tokenizer (never inside a string)."""
    return [m.span() for m in _TOKEN.finditer(text) if m["comment"] is not None]


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
    return CSSBuild(rewrite_all(parsed, hashes), tuple(problems))


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
) -> tuple[dict[str, ParsedFile], list[str]]:
    """Every CSS file among ``logical_paths`` parsed, with every reference problem found."""
    url_path = UrlRoots.of(static_url_path)
    exists = frozenset(logical_paths)
    parsed: dict[str, ParsedFile] = {}
    problems: list[str] = []
    for path in sorted(p for p in exists if is_css(p)):
        # surrogateescape: bytes that are not UTF-8 come back out exactly as they went in.
        text = read_text(read, path)
        parsed[path], found = parse_css(path, text, exists=exists, static_url_path=url_path)
        problems += found
    return parsed, problems


def read_text(read: Callable[[str], bytes], path: str) -> str:
    """A text file's content; bytes that are not UTF-8 come back out exactly as they went in
    (``surrogateescape``)."""
    try:
        data = read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r} in the static folder: {exc.strerror}") from exc
    return data.decode("utf-8", "surrogateescape")
