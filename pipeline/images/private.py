"""Private images in an S3 bucket: how they get there and how a logged-in user reads them.

Framework-neutral: the Flask views in :mod:`pipeline.images.views` call this after their
own access check.

How private objects reach the bucket, and why they stay private:

* ``upload_private(folder, storage, prefix)`` publishes a local folder (say
  ``private/``) to ``<prefix>/<path>`` - the same walk as the static deploy (dot-files
  skipped, symlinks leaving the folder refused), the same parallel uploads, but no
  fingerprinting or manifest, since these objects are never linked from the CDN.
* The demo's upload form, in CDN mode, writes a private upload straight to
  ``<prefix>/<generated name>`` with :meth:`PrivateObjects.put`.
* Neither path sends an ACL, so every object is owner-only (the S3 default and, with
  *Object Ownership: bucket owner enforced*, the only possibility). Keep the private
  prefix out of any public-read bucket policy - best, use a separate bucket with
  *Block Public Access* on and no CDN in front of it.
* The server has the last word, whatever the policy says (SeaweedFS with an anonymous
  read identity, an R2 bucket with public access on its ``r2.dev`` URL): so the
  first file is uploaded alone and read back without credentials, from the S3
  endpoint and, when a CDN URL is configured, through it. Any 2xx answer removes it
  and refuses the rest (:func:`check_unreadable`); "readable only through presigned
  URLs" is claimed only after every probe was refused (401/403).
* Readers get a presigned GET URL valid for at most :data:`MAX_EXPIRES_IN` seconds,
  minted only after the application checked the user. The URL is a bearer token:
  never log it (use :func:`pipeline.urls.redact_url` if a URL must be logged).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError, DeployError
from ..localfs import check_readable, collect_files
from ..media_types import content_type_for
from ..storage.base import ProgressCallback, Upload, UploadOutcome
from ..urls import cdn_url, redact_url

#: SigV4 allows a week; a leaked link should die quickly, so 15 minutes is our ceiling.
MAX_EXPIRES_IN = 15 * 60
DEFAULT_EXPIRES_IN = 5 * 60

#: Shared caches (a CDN, a corporate proxy) must never keep a private image.
PRIVATE_CACHE_CONTROL = "private, no-store"

#: What a stranger must get for a private object: "authenticate first" or "forbidden".
REFUSED_STATUSES = frozenset({401, 403})
#: Seconds a probe through the CDN may take (a refusal comes quickly).
PROBE_TIMEOUT = 5.0


class PrivateStorage(Protocol):
    """What private images need from a backend (``S3Storage`` provides all of it)."""

    description: str

    def check(self) -> None: ...

    def upload_files(
        self, uploads: Sequence[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome: ...

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, cache_control: str
    ) -> None: ...

    def presigned_url(self, key: str, *, expires_in: int) -> str: ...

    def list_keys(self, prefix: str) -> Mapping[str, object]: ...

    def delete_keys(self, keys: Sequence[str]) -> object: ...


class ProbedStorage(PrivateStorage, Protocol):
    """A backend that can also be asked as a stranger (``S3Storage``)."""

    def anonymous_read_status(self, key: str) -> int: ...


def validate_expires_in(seconds: object) -> int:
    """Return ``seconds`` as an int in 1..900, or raise :class:`ConfigError` (never clamp
    silently)."""
    try:
        value: int = int(seconds)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"presigned URL expiry must be whole seconds, not {seconds!r}") from None
    if not 1 <= value <= MAX_EXPIRES_IN:
        raise ConfigError(
            f"presigned URL expiry must be between 1 and {MAX_EXPIRES_IN} seconds "
            f"(15 minutes), not {value}"
        )
    return value


def public_grants(policy_json: str | None, *, bucket: str, key: str) -> list[str]:
    """Resources of statements in a bucket policy that let anyone read ``key``.

    Conservative on purpose: an ``Allow`` for principal ``*`` with a read action and a
    resource pattern matching the key counts, whatever its conditions (a condition
    such as a CDN's source ARN narrows it, but this check must never miss a grant).
    """
    if not policy_json:
        return []
    statements = _statements(policy_json)
    arn = f"arn:aws:s3:::{bucket}/{key}"
    found = []
    for statement in statements:
        if statement.get("Effect") != "Allow" or not _anyone(statement.get("Principal")):
            continue
        actions = [a.lower() for a in _as_list(statement.get("Action"))]  # IAM: any case
        if not any(fnmatchcase("s3:getobject", a) for a in actions):
            continue
        found += [r for r in _as_list(statement.get("Resource")) if fnmatchcase(arn, r)]
    return found


class UnreadablePolicy(ConfigError):
    """The bucket policy the server returned is not a JSON policy document."""


def _statements(policy_json: str) -> list[dict[str, object]]:
    """The policy's statements, or :class:`UnreadablePolicy`: a server that does not
    implement bucket policies may answer with an error page or XML instead."""
    try:
        document = json.loads(policy_json)
    except ValueError:
        document = None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        shown = " ".join(policy_json.split())[:60]
        raise UnreadablePolicy(f"the bucket policy is not a JSON policy document "
                               f"(it starts {shown!r})")
    return statements


def _anyone(principal: object) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in _as_list(principal.get("AWS"))


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def private_key(prefix: str, relative_path: str) -> str:
    """The object key of a private file; ``relative_path`` must already be checked as safe."""
    return f"{prefix}/{relative_path}" if prefix else relative_path


def upload_private(
    folder: Path, storage: PrivateStorage, prefix: str, *,
    on_stored: ProgressCallback | None = None,
    check_first: Callable[[str], object] | None = None,
) -> list[str]:
    """Upload every file of ``folder`` to ``<prefix>/<path>`` without any ACL; return the keys.

    Re-uploads everything (private folders are small, and an unchanged object is
    simply replaced). With ``check_first``, the first file goes alone and is handed
    to it by key; if it raises, that object is deleted and nothing else uploaded.
    Raises :class:`DeployError` if any upload failed.
    """
    files = collect_files(folder)
    check_readable(files)  # every one is uploaded: refuse an unreadable one before any
    storage.check()
    uploads = [
        Upload(
            key=private_key(prefix, item.logical_path),
            source=item,
            size=item.size,
            content_type=content_type_for(item.logical_path),
            cache_control=PRIVATE_CACHE_CONTROL,
        )
        for item in files
    ]
    stored: list[str] = []
    if check_first is not None and uploads:
        stored += _upload_all(storage, uploads[:1], on_stored)
        try:
            check_first(uploads[0].key)
        except BaseException:
            storage.delete_keys([uploads[0].key])
            raise
        uploads = uploads[1:]
    return sorted(stored + _upload_all(storage, uploads, on_stored))


def _upload_all(storage: PrivateStorage, uploads: Sequence[Upload],
                on_stored: ProgressCallback | None) -> list[str]:
    outcome = storage.upload_files(uploads, on_stored=on_stored)
    if outcome.failures:
        first = outcome.failures[0]
        raise DeployError(
            f"{len(outcome.failures)} private upload(s) to {storage.description} failed, "
            f"first: {first.key}: {first.message}; run the upload again"
        )
    return list(outcome.stored)


@dataclass(frozen=True)
class PrivacyCheck:
    """What a request without credentials got for one uploaded private object."""

    key: str
    #: (where it was asked: the storage or a CDN URL, HTTP status; 0: no answer).
    answers: tuple[tuple[str, int], ...]

    @property
    def confirmed(self) -> bool:
        """Every probe was refused, so the claim "readable only through presigned URLs"
        holds for this object."""
        return all(status in REFUSED_STATUSES for _, status in self.answers)


def check_unreadable(storage: ProbedStorage, key: str, *, cdn_base: str | None) -> PrivacyCheck:
    """Ask for ``key`` without credentials (storage, then ``cdn_base`` if given); raise
    :class:`ConfigError` if any answer is 2xx (the object is public)."""
    answers = [(storage.description, storage.anonymous_read_status(key))]
    if cdn_base:
        url = cdn_url(cdn_base, key)
        answers.append((redact_url(url), _unsigned_status(url)))
    for where, status in answers:
        if 200 <= status < 300:
            prefix = key.rpartition("/")[0]
            raise ConfigError(
                f"an unsigned GET of {key!r} from {where} answered {status}: anyone can read "
                f"{prefix}/ (an anonymous read identity, a public-access setting or a bucket "
                "policy grants it); that object was deleted and nothing else was uploaded. "
                "Make the prefix private, or use a bucket without public access"
            )
    return PrivacyCheck(key, tuple(answers))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect (to a login page, say) is not the object: report the 3xx itself."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _unsigned_status(url: str) -> int:
    """The status of a plain GET of the first byte of ``url``; 0 if nothing answered."""
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=PROBE_TIMEOUT) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


class PrivateObjects:
    """Private images under one prefix of one bucket: presign reads, store uploads."""

    def __init__(self, storage: PrivateStorage, *, prefix: str, expires_in: int) -> None:
        self.storage = storage
        self.prefix = prefix
        self.expires_in = validate_expires_in(expires_in)

    def presigned_url(self, relative_path: str) -> str:
        """A short-lived GET URL; call only after the user's access was checked."""
        return self.storage.presigned_url(
            private_key(self.prefix, relative_path), expires_in=self.expires_in
        )

    def names(self) -> list[str]:
        """The relative paths of all private objects (one listing request per 1,000)."""
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted(key[start:] for key in self.storage.list_keys(self.prefix))

    def put(self, relative_path: str, data: bytes) -> str:
        """Store ``data`` as a private object (no ACL); return its key."""
        key = private_key(self.prefix, relative_path)
        self.storage.put_bytes(
            key, data, content_type=content_type_for(key), cache_control=PRIVATE_CACHE_CONTROL
        )
        return key
