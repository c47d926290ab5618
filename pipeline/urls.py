"""URL helpers shared by the CLI, the storage layer and the Flask extension."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

#: ``//user:password@`` at the start of an authority (used only when ``urlsplit`` fails).
_USER_INFO = re.compile(r"//[^/]*@")


def redact_url(url: str | None) -> str:
    """Drop any ``user:password@`` part and the query so a URL can be logged safely."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparsable (an unclosed "["): cut what could be secret by hand
        return _USER_INFO.sub("//", url.split("?", 1)[0].split("#", 1)[0])
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def cdn_url(base_url: str, key: str) -> str:
    """The public URL of an object key under a CDN base URL.

    Keys are percent-encoded except for ``/``: S3 decodes a raw ``+`` in a path as a
    space, and ``#``/``?``/``%`` in a file name would otherwise change the URL's meaning.
    """
    return base_url.rstrip("/") + "/" + quote_key(key)


#: What ``quote(key, safe="/")`` leaves as it is: letters, digits, ``_.-~`` and ``/``.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.\-~/]*")


def quote_key(key: str) -> str:
    """``quote(key, safe="/")``, with one regex match for the usual key that needs nothing
    (an app loading a 100,000-entry manifest builds every URL at start-up)."""
    return key if _UNQUOTED.fullmatch(key) else quote(key, safe="/")
