"""Making a release, and which one is current (the format: :mod:`pipeline.releasedoc`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from ..manifest import Manifest
from ..releasedoc import ReleaseDoc, new_release_id


def make_release(manifest: Manifest, etags: Mapping[str, str | None],
                 git_blobs: Mapping[str, str] | None = None) -> ReleaseDoc:
    now = datetime.now(UTC)
    keys = manifest.object_keys()
    return ReleaseDoc(
        manifest=manifest,
        release_id=new_release_id(manifest, now=now),
        created=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        etags={key: etag for key, etag in etags.items() if etag and key in keys},
        git_blobs={path: blob for path, blob in (git_blobs or {}).items()
                   if path in manifest.files},
    )


@dataclass(frozen=True)
class KnownCurrent:
    """What a deploy learned from a current manifest's bytes, kept beside the hash cache
    (:mod:`pipeline.release.recognise`): a fact about those bytes, whoever published them."""

    #: SHA-256 of the manifest's bytes.
    sha256: str
    release_id: str
    #: :func:`pipeline.release.recognise.manifest_digest` of the manifest they decode to.
    files: str


@dataclass(frozen=True)
class Current:
    """The current manifest as read, with the ETag a conditional replace must match.

    Bytes an earlier run decoded (``known``, matched by their SHA-256) are decoded again
    only when ``doc`` is asked for: a no-change deploy needs just "is it still ours?", and
    decoding a 100,000-file document took 0.7 s and ~100 MiB.
    """

    #: The document, when decoded on reading (``doc`` is the one to use).
    parsed: ReleaseDoc | None
    etag: str | None
    data: bytes | None
    #: Why ``data`` is not a release document (``doc`` is then ``None``).
    problem: str | None = None
    #: Set when ``data`` was recognised; ``doc`` is then decoded on first use.
    known: KnownCurrent | None = None
    source: str = "current manifest"

    @cached_property
    def doc(self) -> ReleaseDoc | None:
        if self.parsed is None and self.known is not None and self.data is not None:
            return ReleaseDoc.from_json(self.data, source=self.source)
        return self.parsed

    @property
    def decoded(self) -> bool:
        """Whether ``doc`` is at hand without decoding anything."""
        return self.known is None or "doc" in self.__dict__  # cached_property's own slot

    @property
    def release_id(self) -> str | None:
        if not self.decoded and self.known is not None:
            return self.known.release_id
        return self.doc.release_id if self.doc else None
