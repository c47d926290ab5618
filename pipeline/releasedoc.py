"""The release-document format: immutable records of what each deploy published.

A leaf beside :mod:`pipeline.manifest` (whose format it extends), so the readers
(:mod:`pipeline.serving`, :mod:`pipeline.flaskext`) parse releases without the deploy's
:mod:`pipeline.release` package; writing them is :mod:`pipeline.release.store`'s business.

A release is ``<prefix>/releases/<id>.json``, written once (``If-None-Match: *``)
after every object it names is confirmed in storage. Its bytes are a version 1
manifest (the same ``files`` section, byte for byte) plus three top-level fields
that :meth:`Manifest.from_json` ignores::

    {"version": 1, "release": "20261124T161500.123Z-3f9a1c",
     "created": "2026-11-24T16:15:00.123Z",
     "etags": {"static/img/cat.<h>.jpg": "<md5 hex>"},
     "files": {...}}

The current manifest ``<prefix>/manifest.json`` is a byte copy of the current
release's document, so "current" is simply the ``release`` field of that object:
publishing and rolling back are one conditional PUT of an existing document, and
the Flask app keeps reading the format it knows. ``etags`` records the ETag each
object had when the release was made (the server's MD5 of bytes that passed the
CRC32 check on upload), so verify can compare listings instead of downloading.
``git_blobs`` (only when the deploy ran in a git work tree) maps logical paths of
plain files to the git blob id their bytes had, so a later deploy from a fresh
checkout can reuse their SHA-256 without reading them (:mod:`pipeline.build.gitindex`).

Ids are ``<UTC time to the millisecond>Z-<6 hex of the files' hash>``: they sort by
time as strings, and identical content shows the same suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from .errors import ConfigError, ManifestError
from .keys import RELEASE_ID_RE
from .manifest import Manifest, dump_json, iter_json, parse_json


def new_release_id(manifest: Manifest, *, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{files_digest(manifest)[:6]}"


def files_digest(manifest: Manifest) -> str:
    """SHA-256 of the manifest's canonical JSON: equal content, equal digest (fed piece by
    piece: the encoding of 100,000 entries is never held whole)."""
    digest = hashlib.sha256()
    for chunk in iter_json(manifest.json_document()):
        digest.update(chunk)
    return digest.hexdigest()


def validate_release_id(release_id: str) -> str:
    if not RELEASE_ID_RE.match(release_id):
        raise ConfigError(
            f"release id {release_id!r} is not valid: ids look like 20261124T161500.123Z-3f9a1c "
            "(see `cdn-deploy releases`)"
        )
    return release_id


@dataclass(frozen=True)
class ReleaseDoc:
    """One release document (also the current manifest's content)."""

    manifest: Manifest
    #: ``None`` for a manifest published before releases existed.
    release_id: str | None
    created: str | None
    etags: Mapping[str, str]
    #: Logical path -> git blob id of the bytes whose SHA-256 the entry records.
    git_blobs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The document's bytes; encoded once, since a deploy writes them up to three times."""
        return self._json

    @cached_property
    def _json(self) -> bytes:
        document = self.manifest.json_document()
        document["release"] = self.release_id
        document["created"] = self.created
        document["etags"] = self.etags  # dump_json sorts every object's members itself
        if self.git_blobs:
            document["git_blobs"] = self.git_blobs
        return dump_json(document)

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> ReleaseDoc:
        document = parse_json(data, source=source)
        manifest = Manifest.from_document(document, source=source)
        release_id = document.get("release")
        etags = document.get("etags") or {}
        if release_id is not None and not (isinstance(release_id, str)
                                           and RELEASE_ID_RE.match(release_id)):
            raise ManifestError(f"{source} has a malformed release id {release_id!r}")
        if not isinstance(etags, dict):
            raise ManifestError(f"{source} has a malformed 'etags' object")
        blobs = document.get("git_blobs") or {}
        if not isinstance(blobs, dict):
            raise ManifestError(f"{source} has a malformed 'git_blobs' object")
        created = document.get("created")
        return cls(manifest, release_id, str(created) if created else None,
                   {str(k): str(v) for k, v in etags.items()},
                   {str(k): str(v) for k, v in blobs.items()})

    @property
    def created_at(self) -> datetime | None:
        if not self.created:
            return None
        try:
            return datetime.fromisoformat(self.created)
        except ValueError:
            return None
