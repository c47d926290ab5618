"""Writing releases and moving the current pointer, safely under concurrency.

Optimistic concurrency with S3 conditional writes, no lock object:

* a release object is created with ``If-None-Match: *`` and never rewritten;
* the current manifest is replaced with ``If-Match: <ETag read at the start>``.

A deploy that loses the race re-reads the manifest and tries again, so the last
deploy to finish wins and every intermediate state is a complete release. A
rollback does not retry: it was asked for against a state that no longer holds.

Why not a lock object with expiry: a deploy killed by SIGKILL would leave the lock
behind and block every deploy until it expired, and the expiry would have to
outlast the slowest upload. Conditional writes leave nothing behind when a
process dies, and their only cost is a retry in the rare race.

A retried request whose first attempt was applied but whose response was lost
also fails its precondition; comparing the bytes now stored with ours tells that
case (success) from a real conflict.
"""

from __future__ import annotations

import time

from ..errors import ConfigError, ConflictError
from ..keys import manifest_key, release_key
from ..media_types import MANIFEST_CACHE_CONTROL, content_type_for
from ..storage.base import Storage
from .documents import Current, ReleaseDoc, make_release, read_current

#: Tries to replace the current manifest before a deploy gives up (each loss means
#: another deploy finished in between, so this bounds a pile-up, not bad luck).
MAX_PUBLISH_TRIES = 8
#: Tries to find a free release id (a clash needs the same millisecond and content).
MAX_ID_TRIES = 3

#: Release documents never change: cache them like fingerprinted objects.
RELEASE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def require_conditional_writes(storage: Storage, prefix: str, *, unsafe: bool = False) -> None:
    """Refuse (exit 2) a backend that ignores conditional writes, unless ``unsafe``.

    Everything in this module relies on them: without, two deploys (or a rollback
    from a stale read) overwrite each other silently and nobody sees a conflict.
    """
    if unsafe or storage.supports_conditional_writes(prefix):
        return
    raise ConfigError(
        f"{storage.description} ignores conditional writes (a second PUT with "
        "If-None-Match: * was not refused with 412): concurrent deploys and rollbacks could "
        "silently overwrite each other's releases. Use a server that enforces them (AWS S3, "
        "MinIO, Cloudflare R2, SeaweedFS), or pass --unsafe-no-conditional-writes if only "
        "one deploy or rollback ever runs at a time"
    )


def store_release(storage: Storage, prefix: str, doc: ReleaseDoc) -> ReleaseDoc:
    """Create the immutable release object; return the document actually stored."""
    assert doc.release_id is not None
    for _ in range(MAX_ID_TRIES):
        key = release_key(prefix, doc.release_id)
        data = doc.to_json()
        try:
            storage.put_if(key, data, content_type=content_type_for(key),
                           cache_control=RELEASE_CACHE_CONTROL, if_absent=True)
            return doc
        except ConflictError:
            existing = storage.read(key)
            if existing is not None and existing.data == data:
                return doc  # our own write, whose response was lost
            if existing is not None:
                other = ReleaseDoc.from_json(existing.data, source=f"release {key!r}")
                if other.manifest == doc.manifest:
                    return other  # a concurrent deploy of the same files: one release
        time.sleep(0.002)  # the next id is for a later millisecond
        doc = make_release(doc.manifest, doc.etags, doc.git_blobs)
    raise ConflictError(f"could not find a free release id after {MAX_ID_TRIES} tries")


def point_current(
    storage: Storage, prefix: str, doc: ReleaseDoc, *, expected: Current, retry: bool
) -> int:
    """Make ``doc`` the current manifest if it is still ``expected``; return conflicts met.

    With ``retry`` (deploys) a lost race re-reads and tries again: last writer wins.
    Without it (rollback) the first conflict raises :class:`ConflictError`.
    """
    key = manifest_key(prefix)
    data = doc.to_json()
    conflicts = 0
    for _ in range(MAX_PUBLISH_TRIES):
        try:
            storage.put_if(key, data, content_type=content_type_for(key),
                           cache_control=MANIFEST_CACHE_CONTROL,
                           if_match=expected.etag, if_absent=expected.etag is None)
            return conflicts
        except ConflictError:
            conflicts += 1
            now = read_current(storage, prefix)
            if now.data == data:
                return conflicts  # already in place: ours (response lost) or identical
            if not retry:
                raise ConflictError(
                    f"the current manifest changed while this ran (now release "
                    f"{now.release_id or 'unknown'}); nothing was changed: check "
                    "`deploy.py releases` and run the command again"
                ) from None
            expected = now
    raise ConflictError(
        f"the current manifest kept changing ({conflicts} conflicting writes): another "
        "deploy is publishing in a loop; the release was stored but is not current"
    )
