"""Where an app server reads its manifest: a bucket or the CDN, pinned or following.

``CDN_MANIFEST`` names a local file (the deploy's copy, as before) or a location the
deploy publishes to:

* ``s3://bucket/prefix`` - read through the storage layer (boto3's credential chain,
  ``CDN_ENDPOINT_URL``/``CDN_REGION``);
* ``https://cdn.example.com/prefix`` (or ``.../prefix/manifest.json``) - read over
  plain HTTP(S) from the CDN, no credentials.

With ``CDN_RELEASE=<id>`` the source is **pinned**: it reads the immutable release
document ``<prefix>/releases/<id>.json`` once. Without it the source **follows** the
current manifest ``<prefix>/manifest.json`` and is polled with ``If-None-Match``, so
an unchanged manifest costs one 304 and no parsing.

Nothing here knows Flask or imports boto3 at module level (a bucket source imports
the S3 backend when it is opened); the key layout comes from :mod:`pipeline.keys`, the formats
from :mod:`pipeline.manifest` and :mod:`pipeline.releasedoc`, which own them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, ManifestError, PipelineError, SourceError
from ..keys import MANIFEST_NAME, manifest_key, release_key
from ..manifest import Manifest
from ..releasedoc import ReleaseDoc, validate_release_id
from ..storage.base import NotModified, StoredBytes
from ..urls import cdn_url, redact_url
from ..validate import (
    DEFAULT_MANIFEST_PATH,
    parse_url,
    validate_bucket,
    validate_prefix,
    validate_url,
)
from .http import READ_TIMEOUT, HttpReader

PINNED = "pinned"
FOLLOW = "follow"
#: The mode of a plain local manifest file (no source object is involved).
FILE = "file"

DEFAULT_REFRESH_SECONDS = 30.0
#: Bounds of ``CDN_REFRESH``: below 0.05 s a fleet would hammer the bucket.
_REFRESH_RANGE = (0.05, 86400.0)
#: Requests of an app server give up fast: start-up must not hang on a dead endpoint,
#: and the refresher retries with its own backoff anyway (per socket operation).
CONNECT_TIMEOUT = 3.0
#: Overall deadlines of one read of the source (``CDN_STARTUP_DEADLINE``,
#: ``CDN_REFRESH_DEADLINE``): start-up falls back to the last-known-good copy after a
#: few seconds; a refresh runs off the request path, so it may take longer.
DEFAULT_STARTUP_DEADLINE = 5.0
DEFAULT_REFRESH_DEADLINE = 30.0
_DEADLINE_RANGE = (0.1, 3600.0)

_REMOTE_SCHEMES = ("s3", "http", "https")

#: Config keys this module reads, with their defaults (set on the app's config).
CONFIG_DEFAULTS: dict[str, Any] = {
    "CDN_RELEASE": None,
    "CDN_REFRESH": DEFAULT_REFRESH_SECONDS,
    "CDN_STARTUP_DEADLINE": DEFAULT_STARTUP_DEADLINE,
    "CDN_REFRESH_DEADLINE": DEFAULT_REFRESH_DEADLINE,
    "CDN_ENDPOINT_URL": None,
    "CDN_REGION": None,
    "CDN_MANIFEST_CACHE": str(DEFAULT_MANIFEST_PATH),
    "CDN_FALLBACK_LOCAL": False,
}


@dataclass(frozen=True)
class SourceSettings:
    """A remote manifest source, validated once at start-up."""

    #: ``s3://bucket/prefix`` or an http(s) URL, as configured.
    location: str
    #: The pinned release id, or ``None`` to follow the current manifest.
    release: str | None
    refresh_seconds: float
    endpoint_url: str | None
    region: str | None
    #: The last-known-good copy: written after every successful load, read at start-up
    #: when the source is unreachable (the deploy writes the same file by default).
    last_good: Path
    #: Start with the CDN off (and an ERROR) instead of failing when nothing can be loaded.
    fallback_local: bool
    #: Overall seconds one read may take at start-up, and during a refresh.
    startup_deadline: float = DEFAULT_STARTUP_DEADLINE
    refresh_deadline: float = DEFAULT_REFRESH_DEADLINE
    #: The app's ``CDN_URL``: keys of an http(s) source are relative to its path.
    cdn_url: str | None = None

    @property
    def mode(self) -> str:
        return PINNED if self.release else FOLLOW


def is_remote(location: str) -> bool:
    """Whether ``CDN_MANIFEST`` names a bucket or URL rather than a local file."""
    return parse_url(location, "CDN_MANIFEST").scheme in _REMOTE_SCHEMES


def read_source_settings(
    config: Mapping[str, Any], *, fallback_local: bool
) -> SourceSettings | None:
    """The remote source ``config`` asks for, or ``None`` for a local manifest file. Its
    location is checked by :func:`open_source`, which start-up calls once, whether or not the
    CDN is enabled, so a malformed location fails at start-up (nothing is contacted)."""
    location = str(config.get("CDN_MANIFEST") or "")
    release = config.get("CDN_RELEASE") or None
    if not is_remote(location):
        if release:
            raise ConfigError("CDN_RELEASE needs CDN_MANIFEST to be a bucket (s3://bucket/prefix) "
                              "or an https:// URL: a local manifest file is one release already")
        return None
    endpoint = validate_url(config.get("CDN_ENDPOINT_URL") or None, "CDN_ENDPOINT_URL")
    if endpoint and not location.startswith("s3:"):
        raise ConfigError("CDN_ENDPOINT_URL applies to an s3:// CDN_MANIFEST only")
    settings = SourceSettings(
        location=location,
        release=validate_release_id(str(release)) if release else None,
        refresh_seconds=_seconds(config.get("CDN_REFRESH", DEFAULT_REFRESH_SECONDS),
                                 "CDN_REFRESH", _REFRESH_RANGE),
        endpoint_url=endpoint,
        region=config.get("CDN_REGION") or None,
        last_good=Path(config.get("CDN_MANIFEST_CACHE") or DEFAULT_MANIFEST_PATH).absolute(),
        fallback_local=fallback_local,
        startup_deadline=_seconds(config.get("CDN_STARTUP_DEADLINE", DEFAULT_STARTUP_DEADLINE),
                                  "CDN_STARTUP_DEADLINE", _DEADLINE_RANGE),
        refresh_deadline=_seconds(config.get("CDN_REFRESH_DEADLINE", DEFAULT_REFRESH_DEADLINE),
                                  "CDN_REFRESH_DEADLINE", _DEADLINE_RANGE),
        cdn_url=validate_url(config.get("CDN_URL") or None, "CDN_URL"),
    )
    return settings


def _seconds(value: Any, name: str, bounds: tuple[float, float]) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    low, high = bounds
    if not low <= seconds <= high:  # NaN is refused here too
        raise ConfigError(f"{name} must be between {low} and {high:.0f} seconds, "
                          f"not {value!r}")
    return seconds


# --- what a load yields ------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A validated release document as read, with the token of the next conditional read."""

    doc: ReleaseDoc
    #: Opaque to callers: handed back to :meth:`ManifestSource.fetch`.
    etag: str | None
    data: bytes

    @property
    def manifest(self) -> Manifest:
        return self.doc.manifest

    @property
    def release_id(self) -> str | None:
        return self.doc.release_id


class ManifestSource(Protocol):
    """Reads and validates the manifest an app serves."""

    #: :data:`PINNED` or :data:`FOLLOW`.
    mode: str
    #: Where it reads, for logs and status (no credentials, no query).
    description: str

    def fetch(self, etag: str | None) -> Loaded | NotModified:
        """The document, or :class:`NotModified` if it still has ``etag``.

        Raises :class:`SourceError` when it cannot be read and :class:`ManifestError`
        when what was read is not a manifest this app may serve.
        """
        ...  # pragma: no cover

    def validate(self, data: bytes, *, what: str) -> ReleaseDoc:
        """Check bytes from elsewhere (the last-known-good copy) as if read here."""
        ...  # pragma: no cover


def open_source(settings: SourceSettings) -> ManifestSource:
    """The source for ``settings``; nothing is contacted before the first :meth:`fetch`."""
    parts = urlsplit(settings.location)
    if parts.query or parts.fragment:
        raise ConfigError(f"CDN_MANIFEST {redact_url(settings.location)!r} must not have a "
                          "query or fragment")
    location = bucket_location(settings)
    if location is not None:
        bucket, prefix = location
        return BucketSource(bucket, prefix, settings)
    validate_url(settings.location, "CDN_MANIFEST")
    return UrlSource(settings.location, settings.release, base_url=settings.cdn_url)


def bucket_location(settings: SourceSettings) -> tuple[str, str] | None:
    """``(bucket, prefix)`` of an ``s3://`` source (``flask cdn deploy`` publishes there)."""
    parts = urlsplit(settings.location)
    if parts.scheme != "s3":
        return None
    return validate_bucket(parts.netloc), validate_prefix(parts.path)


class _Checked:
    """The validation both sources share: a version 1 release document under the prefix."""

    prefix: str
    release: str | None
    description: str

    def validate(self, data: bytes, *, what: str) -> ReleaseDoc:
        doc = ReleaseDoc.from_json(data, source=what)
        check_keys(doc.manifest, self.prefix, source=what)
        if self.release and doc.release_id != self.release:
            raise ManifestError(f"{what} is release {doc.release_id!r}, not the pinned "
                                f"CDN_RELEASE {self.release!r}")
        return doc

    def _loaded(self, found: StoredBytes | NotModified | None, what: str) -> Loaded | NotModified:
        if isinstance(found, NotModified):
            return found
        if found is None:
            hint = ("see `cdn-deploy releases`" if self.release
                    else "deploy first, or check the bucket and prefix")
            raise SourceError(f"{what} does not exist ({hint})")
        return Loaded(self.validate(found.data, what=what), found.etag or None, found.data)


def check_keys(manifest: Manifest, prefix: str, *, source: str) -> None:
    """Refuse object keys outside the deploy's prefix.

    A manifest read over the network may have been tampered with on the way or in
    the bucket. Parsing already refused keys that could leave any path (``..``,
    ``.`` or empty segments, backslashes, control characters: see
    :func:`pipeline.manifest.unsafe_key_reason`); here every key must also lie under
    ``prefix``, so ``url_for`` only ever points at objects this deploy publishes.
    """
    if not prefix:
        return
    head = f"{prefix}/"
    for name, entry in manifest.files.items():
        for key in (entry.key, *(v.key for v in entry.variants)):
            if not key.startswith(head):
                raise ManifestError(f"{source}: entry {name!r} names key {key!r}, which is "
                                    f"not under the prefix {prefix!r}")


class BucketSource(_Checked):
    """``s3://bucket/prefix`` through the storage layer, one client per process.

    A botocore client must not cross a fork: its pooled connections would be shared
    by parent and child, mixing their responses. The client is made lazily and made
    again when the process id changes.
    """

    def __init__(self, bucket: str, prefix: str, settings: SourceSettings) -> None:
        self.prefix = prefix
        self.release = settings.release
        self.mode = settings.mode
        release = settings.release
        self.key = release_key(prefix, release) if release else manifest_key(prefix)
        endpoint = f" ({redact_url(settings.endpoint_url)})" if settings.endpoint_url else ""
        self.description = f"s3://{bucket}/{self.key}{endpoint}"
        self._bucket, self._endpoint, self._region = bucket, settings.endpoint_url, settings.region
        self._storage: Any = None
        self._pid = 0

    def fetch(self, etag: str | None) -> Loaded | NotModified:
        try:
            found = self._storage_here().read_if_changed(self.key, etag=etag)
        except PipelineError as exc:  # the storage layer's DeployError/ConfigError
            raise SourceError(f"cannot read {self.description}: {exc}") from exc
        return self._loaded(found, self.description)

    def _storage_here(self) -> Any:
        if self._storage is None or self._pid != os.getpid():
            from ..storage.s3 import S3Settings, S3Storage  # boto3 only when a bucket is used

            self._storage = S3Storage(S3Settings(
                bucket=self._bucket, endpoint_url=self._endpoint, region=self._region,
                workers=1, max_attempts=2,
                connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            ))
            self._pid = os.getpid()
        return self._storage


def split_under_base(location: str, base_url: str | None) -> tuple[str, str]:
    """``(URL the keys are relative to, path of the prefix below it)`` of a manifest URL.

    Keys are relative to ``CDN_URL`` (``url_for`` gives ``CDN_URL + "/" + key``), so when
    the manifest lies under it, the prefix is the path below ``CDN_URL``'s: a path-style
    bucket URL (``http://s3.local/blog-assets``) or a CDN mounted under ``/assets/`` reads
    ``static`` from ``http://s3.local/blog-assets/static/manifest.json``. Otherwise (no
    ``CDN_URL``, or the manifest is read from elsewhere) keys are relative to the host.
    """
    parts = urlsplit(location)
    root = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    if base_url:
        base = urlsplit(base_url)
        base_path = base.path.rstrip("/")
        same_origin = ((base.scheme.lower(), base.netloc.lower())
                       == (parts.scheme.lower(), parts.netloc.lower()))
        if same_origin and base_path and parts.path.startswith(base_path + "/"):
            return root + base_path, parts.path[len(base_path):]
    return root, parts.path


class UrlSource(_Checked):
    """An http(s) URL on the CDN (or any web server in front of the bucket), via urllib.

    ``https://host/prefix`` and ``https://host/prefix/manifest.json`` both name the
    prefix ``prefix``; a pinned release is read from ``https://host/<release key>``.
    Under ``base_url`` (``CDN_URL`` with a path), the prefix is the path below it
    (:func:`split_under_base`).
    """

    def __init__(self, location: str, release: str | None, *,
                 base_url: str | None = None) -> None:
        base, path = split_under_base(location, base_url)
        path = path.strip("/")
        if path == MANIFEST_NAME or path.endswith("/" + MANIFEST_NAME):
            path = path[: -len(MANIFEST_NAME)]
        self.prefix = validate_prefix(path)
        self.release = release
        self.mode = PINNED if release else FOLLOW
        key = release_key(self.prefix, release) if release else manifest_key(self.prefix)
        self.url = cdn_url(base, key)
        self._reader = HttpReader(self.url)
        self.description = self._reader.description

    def fetch(self, etag: str | None) -> Loaded | NotModified:
        return self._loaded(self._reader.get(etag), self.description)

    def abort(self) -> None:
        """Cut off the read in flight (its deadline passed): see :mod:`.deadline`."""
        self._reader.abort()
