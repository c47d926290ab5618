"""Strict JSON for documents read from elsewhere: manifests, releases, the current pointer.

Those documents come from a bucket, a CDN or a local copy that anyone with write
access to them may have replaced, and an app server reads them at start-up. Python's
:func:`json.loads` accepts more than ours ever contain, and fails in ways that are not
``ValueError``: a document nested 100,000 deep raises ``RecursionError`` (the C
scanner recurses once per level), and ``1e400`` parses to ``inf``, which ``int()``
turns into an ``OverflowError``. :func:`parse_document` answers every such input with
a :class:`~pipeline.errors.ManifestError`, so callers that fall back (the app's
last-known-good copy, a deploy replacing an unreadable current manifest) always do.

Integer fields are checked where they are read, with :func:`whole_number`: a JSON
``1.0``, ``true`` or ``"12"`` is not an integer there.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import ManifestError

#: The deepest our documents nest is 5 (top, ``files``, entry, ``variants``, variant);
#: the margin leaves room for new fields without letting the C scanner recurse far.
MAX_DEPTH = 16

#: A string literal once its escaped quotes and backslashes are gone.
_STRING = re.compile(rb'"[^"]*"')
#: Every byte but brackets and quotes, deleted in one C pass by :meth:`bytes.translate`,
#: which also maps braces to square brackets (one kind of pair to remove per level).
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_ONE_BRACKET_KIND = bytes.maketrans(b"{}", b"[]")


def parse_document(data: bytes | str, *, source: str) -> Any:
    """``data`` as JSON, refusing what no document of ours contains (:class:`ManifestError`).

    Refused: invalid JSON, nesting deeper than :data:`MAX_DEPTH` (checked before the
    parser recurses), ``NaN``, ``Infinity`` and numbers too large for a float.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if nesting_exceeds(raw, MAX_DEPTH):
        raise ManifestError(f"{source} nests deeper than {MAX_DEPTH} levels: it is not a "
                            "document this tool writes")
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # RecursionError: the check above is a bound
        raise ManifestError(f"{source} is not valid JSON: {exc}") from exc


def nesting_exceeds(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` has brackets nested deeper than ``limit``.

    No recursion, and no per-byte Python loop for a document within the limit: escaped
    quotes and backslashes are dropped, then every byte but brackets and quotes (braces
    become square brackets), then string literals (a ``[`` in a name does not count).
    Each ``.replace(b"[]", b"")`` then removes the innermost pairs, exactly one level,
    so a balanced document within the limit is empty after ``limit`` rounds.
    """
    if b"\\" in data:  # rare in our documents: keys and names are plain, never escaped
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Removing two adjacent quotes (an empty string, or the end of one string and the
    # start of the next) moves no bracket into or out of a string; most strings hold no
    # bracket, so few quotes are left for the regex.
    brackets = data.translate(_ONE_BRACKET_KIND, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        brackets = _STRING.sub(b"", brackets).replace(b'"', b"")
    remainder = brackets
    for _ in range(limit):
        if not remainder:
            return False
        remainder = remainder.replace(b"[]", b"")
    return _deeper_than(brackets, limit) if remainder else False


def _deeper_than(brackets: bytes, limit: int) -> bool:
    """The depth counted bracket by bracket; run only when the rounds left something, which
    is deeper than ``limit`` or unbalanced (a truncated document's unclosed brackets stay
    whatever their depth, and it deserves the parser's own message)."""
    depth = 0
    for byte in brackets:
        depth += 1 if byte == ord("[") else -1
        if depth > limit:
            return True
    return False


def whole_number(value: Any, *, low: int, high: int) -> int:
    """``value`` if it is a JSON integer within ``[low, high]``; ``ValueError`` otherwise.

    ``type() is int`` on purpose: ``bool`` is an ``int`` subclass and ``int(1.9)`` is 1.
    """
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"not a whole number from {low} to {high}: {value!r}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a document may contain")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is out of range")
    return number
