"""Deploy settings, resolved once (command line > environment > default) and validated.

Library functions take the resulting frozen :class:`DeploySettings`, never the
environment, so what a deploy does is visible in one value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .urls import redact_url

DEFAULT_STATIC_DIR = Path("static")
DEFAULT_PREFIX = "static"
#: Where the deploy writes the manifest the Flask app reads (``CDN_MANIFEST``).
DEFAULT_MANIFEST_PATH = Path("build/cdn-manifest.json")
DEFAULT_HASH_CACHE_PATH = Path("build/.cdn-hash-cache.json")
#: The embedded default target: a folder laid out like the bucket.
DEFAULT_EMBEDDED_DIR = Path("build/cdn")
DEFAULT_WORKERS = 16
#: Tries per request (botocore "standard" mode: jittered exponential backoff, 20 s cap).
DEFAULT_MAX_ATTEMPTS = 6

#: Option name -> environment variable that supplies it when the option is absent.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "static_dir": ("CDN_STATIC_DIR",),
    "bucket": ("CDN_BUCKET",),
    "prefix": ("CDN_PREFIX",),
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "cdn_url": ("CDN_URL",),
    "manifest": ("CDN_MANIFEST",),
    "target_dir": ("CDN_TARGET_DIR",),
    "workers": ("CDN_WORKERS",),
    "max_attempts": ("CDN_MAX_ATTEMPTS",),
    "assets": ("CDN_ASSETS",),
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class DeploySettings:
    static_dir: Path
    prefix: str
    manifest_path: Path
    hash_cache_path: Path | None
    bucket: str | None
    endpoint_url: str | None
    region: str | None
    target_dir: Path | None
    cdn_url: str | None
    workers: int
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dry_run: bool = False
    #: A CSS reference to a missing file is an error (``--no-strict``: a warning).
    strict: bool = True
    #: A Python file with a ``BUNDLES`` dict of webassets bundles to build first.
    assets: Path | None = None

    @property
    def embedded(self) -> bool:
        """No bucket and no folder configured: publish to the embedded default folder."""
        return self.bucket is None and self.target_dir is None


def resolve_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> DeploySettings:
    """Merge command-line ``options`` (``None`` = not given) over ``env`` and validate."""

    def pick(name: str) -> Any:
        value = options.get(name)
        if value is not None and value != "":
            return value
        for var in ENV_VARS.get(name, ()):
            if env.get(var):
                return env[var]
        return None

    bucket = pick("bucket")
    target_dir = pick("target_dir")
    if bucket and target_dir:
        raise ConfigError("give either a bucket (--bucket/CDN_BUCKET) or a folder "
                          "(--target-dir/CDN_TARGET_DIR), not both")
    no_cache = bool(options.get("no_hash_cache"))
    return DeploySettings(
        static_dir=Path(pick("static_dir") or DEFAULT_STATIC_DIR),
        prefix=validate_prefix(pick("prefix") if pick("prefix") is not None else DEFAULT_PREFIX),
        manifest_path=Path(pick("manifest") or DEFAULT_MANIFEST_PATH),
        hash_cache_path=None if no_cache else Path(options.get("hash_cache") or DEFAULT_HASH_CACHE_PATH),
        bucket=validate_bucket(bucket) if bucket else None,
        endpoint_url=validate_url(pick("endpoint_url"), "endpoint URL (--endpoint-url/AWS_ENDPOINT_URL)"),
        region=pick("region"),
        target_dir=Path(target_dir) if target_dir else None,
        cdn_url=validate_url(pick("cdn_url"), "CDN URL (--cdn-url/CDN_URL)"),
        workers=validate_int(_default(pick("workers"), DEFAULT_WORKERS), "workers", 1, 64),
        max_attempts=validate_int(_default(pick("max_attempts"), DEFAULT_MAX_ATTEMPTS),
                                  "max attempts", 1, 20),
        dry_run=bool(options.get("dry_run")),
        strict=not options.get("no_strict"),
        assets=None if options.get("no_assets") or not pick("assets") else Path(pick("assets")),
    )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def validate_bucket(name: str) -> str:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ConfigError(
            f"bucket name {name!r} is not valid: use 3-63 lowercase letters, digits, '.' or '-'"
        )
    return name


def validate_prefix(prefix: str) -> str:
    """Normalise ``/static/`` to ``static``; refuse segments that could escape or collide."""
    cleaned = prefix.strip("/")
    if cleaned and any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise ConfigError(f"prefix {prefix!r} is not valid: use names like 'static' or 'site/v1'")
    if "\\" in cleaned or any(ord(ch) < 32 for ch in cleaned):
        raise ConfigError(f"prefix {prefix!r} contains a backslash or control character")
    return cleaned


def validate_url(value: str | None, what: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
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
