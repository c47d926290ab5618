"""The one rule for names and keys: what the deploy refuses is what an app would refuse.

The deploy checks every file and folder name (and every object key it makes) with
:func:`key_problem`, and the manifest reader checks every key with it, so a name an app
would refuse to load is refused before anything is uploaded. A leaf of its own: an app that
only reads a manifest loads this, not the key layout (:mod:`pipeline.keys`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: Keys every rule accepts, in one match (what deploys write): ``/``-separated segments of
#: ASCII letters, digits and ``_-~.``, none empty and none starting with a dot. Checking
#: 10,000 keys one regex match each took 12 ms; a generator over characters, 43 ms.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)*")

#: C0, DEL and C1 control characters: browsers strip or mangle them in URLs (so they can hide
#: a ``..``), and they break listings, XML responses and every log line that shows the name.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _not_utf8(key: str) -> bool:
    """Bytes that were not UTF-8 on disk arrive as lone surrogates; S3 keys are UTF-8."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_segment(key: str) -> bool:
    parts = key.split("/")
    return "" in parts or "." in parts or ".." in parts


@dataclass(frozen=True)
class KeyRule:
    """One thing a key must not be, and keys that break it (the tests' cases, so the deploy's
    side and the reader's side are checked with the same names)."""

    reason: str
    breaks: Callable[[str], bool]
    examples: tuple[str, ...]


#: Every rule, in the order they are reported. A key becomes a URL path under ``CDN_URL``
#: and a file under a folder target: a ``.``/``..``/empty segment, a leading ``/`` or a
#: backslash (which browsers read as ``/``) could point outside the prefix.
KEY_RULES: tuple[KeyRule, ...] = (
    KeyRule("is empty", lambda key: not key, ("",)),
    KeyRule("contains a control character", lambda key: bool(_CONTROL_CHARACTER.search(key)),
            ("new\nline.png", "carriage\rreturn.png", "tab\there.png", "esc\x1b[31m.png",
             "del\x7f.png", "c1\x85next-line.png", "img/nul\x00.png")),
    KeyRule("contains a backslash", lambda key: "\\" in key,
            ("img/back\\slash.png", "..\\up.png", "img\\", "\\")),
    KeyRule("is not valid UTF-8", _not_utf8, ("caf\udce9.png", "img/\udcff")),
    KeyRule("is absolute or has an empty, '.' or '..' segment", _bad_segment,
            ("/abs.png", "img//a.png", "img/./a.png", "../a.png", "img/../../a.png", "a/")),
)


def key_problem(key: str) -> str | None:
    """Why ``key`` (an object key, or a file or folder name that goes into one) cannot be
    deployed and loaded, or ``None`` when it can. See :data:`KEY_RULES`."""
    if _PLAIN_KEY.fullmatch(key):  # the common case: one match
        return None
    for rule in KEY_RULES:
        if rule.breaks(key):
            return rule.reason
    return None
