"""Making a release, and which one is current (the format: :mod:`pipeline.releasedoc`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

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
class Current:
    """The current manifest as read, with the ETag a conditional replace must match."""

    doc: ReleaseDoc | None
    etag: str | None
    data: bytes | None
    #: Why ``data`` is not a release document (``doc`` is then ``None``).
    problem: str | None = None

    @property
    def release_id(self) -> str | None:
        return self.doc.release_id if self.doc else None
