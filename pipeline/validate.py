"""Validators shared by the deploy settings, the Flask extension and the image views.

A leaf: each function checks one value and raises :class:`~pipeline.errors.ConfigError`
with a message that says what a valid value looks like; nothing here reads the
environment or knows where the value came from (callers add that). It also holds
the one default both sides of the deploy must agree on: where the manifest is written
and read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import ConfigError
from .urls import redact_url

#: Where the deploy writes the manifest and the Flask app reads it (``CDN_MANIFEST``).
DEFAULT_MANIFEST_PATH = Path("build/cdn-manifest.json")

#: Flask's default ``static_url_path``: where the app serves the static folder, so a
#: root-absolute CSS reference (``url(/static/img/x.png)``) names a file in it.
DEFAULT_STATIC_URL_PATH = "/static"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")


def validate_bucket(name: str) -> str:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ConfigError(
            f"bucket name {name!r} is not valid: use 3-63 lowercase letters, digits, '.' or '-'"
        )
    return name


def validate_prefix(prefix: str) -> str:
    """Normalise ``/static/`` to ``static``; refuse what could escape, collide or mislead.

    An empty prefix (``""``, ``/``) is refused: the manifest and release documents
    would sit at the bucket's root among unrelated objects, and prune would consider
    the whole bucket.
    """
    cleaned = prefix.strip("/")
    if not cleaned:
        raise ConfigError(f"prefix {prefix!r} is empty: use a name like 'static' or 'site/v1'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in prefix) or "\\" in cleaned:
        raise ConfigError(f"prefix {prefix!r} contains a backslash or control character")
    if any(part in ("", ".", "..") or part != part.strip() for part in cleaned.split("/")):
        raise ConfigError(f"prefix {prefix!r} is not valid: use names like 'static' or "
                          "'site/v1' (no '..', empty parts or surrounding spaces)")
    return cleaned


def validate_static_url_path(value: str) -> str:
    """Normalise a URL path like Flask's ``static_url_path``: ``/assets/`` -> ``/assets``.

    ``/`` (Flask's ``""``) means the static folder is served at the site's root.
    """
    parts = value.strip("/").split("/") if value.strip("/") else []
    unsafe = any(ch in value for ch in "?#\\ ") or any(ord(ch) < 32 or ord(ch) == 127
                                                       for ch in value)
    if not value.startswith("/") or unsafe or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"static URL path {value!r} is not valid: use the app's "
                          "static_url_path, e.g. '/static' or '/assets'")
    return "/" + "/".join(parts)


def parse_url(value: str, what: str) -> SplitResult:
    """``urlsplit(value)`` with its port checked, or a :class:`ConfigError` naming ``what``.

    The one way every URL setting is parsed (``CDN_URL``, ``CDN_MANIFEST``, the endpoint
    URLs, ``--cdn-url``...): ``urlsplit`` raises ``ValueError`` for an unclosed ``[``
    (``http://[::1``), and ``.port`` for a port that is not a number up to 65535, which
    would otherwise surface as a traceback wherever the URL is first used.
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (read for its ValueError)
    except ValueError as exc:
        raise ConfigError(f"{what} {redact_url(value)!r} is not a valid URL ({exc})") from None
    return parts


def validate_url(value: str | None, what: str) -> str | None:
    """An http(s) URL with a host, or ``None`` when unset."""
    if not value:
        return None
    parts = parse_url(value, what)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {redact_url(value)!r} is not an http(s) URL with a host")
    return value


def validate_int(value: Any, what: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{what} must be between {low} and {high}, not {number}")
    return number


_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, what: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` (a bare number means days)."""
    match = _DURATION_RE.match(value or "")
    if not match:
        raise ConfigError(f"{what} {value!r} is not a duration: use e.g. 7d, 12h, 30m or 0")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_budget(value: Any, what: str) -> timedelta:
    """A time budget: ``90s``, ``15m``, ``1h`` or ``0`` (nothing). Unlike
    :func:`parse_duration` (``--grace``, in days by default) a bare number other than 0 is
    refused: for a budget, seconds and days are both plausible readings."""
    text = str(value).strip()
    if text == "0" or (_DURATION_RE.match(text) and not text.isdigit()):
        return parse_duration(text, what)
    raise ConfigError(f"{what} {value!r} is not a duration: use e.g. 90s, 15m, 1h, or 0 "
                      "(encode nothing)")


def format_duration(period: timedelta) -> str:
    """A duration the way one is written (``1m``, ``36h``, ``7d``): the largest unit of
    :func:`parse_duration` that divides it exactly, so ``--grace 1m`` is echoed as ``1m``."""
    seconds = int(period.total_seconds())
    if seconds == 0:
        return "0"
    for unit in ("d", "h", "m"):  # not weeks: "7d" (the default grace) stays "7d"
        if seconds % _DURATION_UNITS[unit] == 0:
            return f"{seconds // _DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"
