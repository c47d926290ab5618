"""The release store: one deploy prefix in one storage, its key layout, reads and writes.

:class:`ReleaseStore` is what publish, verify, repair, rollback and prune take instead
of a ``(storage, prefix)`` pair: the keys come from :mod:`pipeline.keys` with the
prefix bound once, and the current manifest and release documents are read and
written here only.

Writing releases and moving the current pointer, safely under concurrency.

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

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .. import keys
from ..errors import ConfigError, ConflictError, ManifestError
from ..media_types import IMMUTABLE_CACHE_CONTROL, MANIFEST_CACHE_CONTROL, content_type_for
from ..releasedoc import ReleaseDoc, validate_release_id
from ..storage.base import RemoteObject, Storage
from .documents import Current, KnownCurrent, make_release

#: Tries to replace the current manifest before a deploy gives up (each loss means
#: another deploy finished in between, so this bounds a pile-up, not bad luck).
MAX_PUBLISH_TRIES = 8
#: Tries to find a free release id (a clash needs the same millisecond and content).
MAX_ID_TRIES = 3
#: Release documents read at once (each is one GET).
_READ_WORKERS = 8


def require_prefix(prefix: str) -> str:
    """Refuse an empty or root prefix: the bucket root holds other prefixes' objects.

    The CLI validates ``--prefix`` first; library callers get the same guard here.
    """
    if not prefix.strip("/ ") or prefix != prefix.strip("/"):
        raise ConfigError(
            f"prefix {prefix!r} is not usable: deploys, releases and prune need their own "
            "prefix (e.g. 'static'), never the bucket root"
        )
    return prefix


@dataclass(frozen=True)
class ReleaseStore:
    """The deploy under ``prefix`` in ``storage``: where its keys are, and its documents."""

    storage: Storage
    prefix: str

    # -- the key layout, with the prefix bound ---------------------------------------

    @property
    def description(self) -> str:
        return self.storage.description

    @property
    def manifest_key(self) -> str:
        return keys.manifest_key(self.prefix)

    @property
    def releases_prefix(self) -> str:
        return keys.releases_prefix(self.prefix)

    def release_key(self, release_id: str) -> str:
        return keys.release_key(self.prefix, release_id)

    def object_key(self, fingerprinted_name: str) -> str:
        return keys.object_key(self.prefix, fingerprinted_name)

    def release_ids(self, listing: Iterable[str]) -> list[str]:
        """Ids of the release objects in a listing of the prefix, oldest first."""
        return sorted(rid for key in listing if (rid := keys.release_id_of(key, self.prefix)))

    def require_prefix(self) -> None:
        require_prefix(self.prefix)

    # -- reads ---------------------------------------------------------------------

    def list(self, *, hints: Sequence[str] = ()) -> dict[str, RemoteObject]:
        """Every object under the prefix (``hints``: keys expected to be there)."""
        return self.storage.list_keys(self.prefix, hints=hints)

    def list_releases(self) -> dict[str, RemoteObject]:
        """The objects under ``<prefix>/releases/`` only (one cheap listing)."""
        return self.storage.list_keys(self.releases_prefix)

    def read_current(self, *, known: KnownCurrent | None = None) -> Current:
        """The current manifest; an unreadable one counts as absent-with-ETag (it gets
        replaced). Bytes ``known`` describes are decoded only when used (:class:`Current`)."""
        key = self.manifest_key
        stored = self.storage.read(key)
        if stored is None:
            return Current(None, None, None)
        source = f"current manifest {key!r}"
        if known is not None and known.sha256 == hashlib.sha256(stored.data).hexdigest():
            return Current(None, stored.etag, stored.data, known=known, source=source)
        try:
            doc = ReleaseDoc.from_json(stored.data, source=source)
        except ManifestError as exc:
            return Current(None, stored.etag, stored.data, problem=str(exc))
        return Current(doc, stored.etag, stored.data)

    def read_release(self, release_id: str) -> ReleaseDoc:
        key = self.release_key(validate_release_id(release_id))
        stored = self.storage.read(key)
        if stored is None:
            raise ConfigError(
                f"release {release_id!r} does not exist in {self.description} "
                "(see `cdn-deploy releases`)"
            )
        return ReleaseDoc.from_json(stored.data, source=f"release {key!r}")

    def read_releases(self, ids: Iterable[str]) -> dict[str, ReleaseDoc]:
        """Several release documents, fetched concurrently (one GET each)."""
        from concurrent.futures import ThreadPoolExecutor  # here: a deploy never needs it

        wanted = sorted(set(ids))
        with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
            docs = list(pool.map(self.read_release, wanted))
        return dict(zip(wanted, docs, strict=True))

    # -- writes --------------------------------------------------------------------

    def require_conditional_writes(self, *, unsafe: bool = False) -> None:
        """Refuse (exit 2) a backend that ignores conditional writes, unless ``unsafe``.

        Everything here relies on them: without, two deploys (or a rollback from a
        stale read) overwrite each other silently and nobody sees a conflict.
        """
        if unsafe or self.storage.supports_conditional_writes(self.prefix):
            return
        raise ConfigError(
            f"{self.description} ignores conditional writes (a second PUT with "
            "If-None-Match: * was not refused with 412): concurrent deploys and rollbacks "
            "could silently overwrite each other's releases. Use a server that enforces them "
            "(AWS S3, MinIO, Cloudflare R2, SeaweedFS), or pass --unsafe-no-conditional-writes "
            "if only one deploy or rollback ever runs at a time"
        )

    def store_release(self, doc: ReleaseDoc) -> ReleaseDoc:
        """Create the immutable release object; return the document actually stored."""
        assert doc.release_id is not None
        for _ in range(MAX_ID_TRIES):
            key = self.release_key(doc.release_id)
            data = doc.to_json()
            try:
                # Release documents never change: cached like fingerprinted objects.
                self.storage.put_if(key, data, content_type=content_type_for(key),
                                    cache_control=IMMUTABLE_CACHE_CONTROL, if_absent=True)
                return doc
            except ConflictError:
                existing = self.storage.read(key)
                if existing is not None and existing.data == data:
                    return doc  # our own write, whose response was lost
                if existing is not None:
                    other = ReleaseDoc.from_json(existing.data, source=f"release {key!r}")
                    if other.manifest == doc.manifest:
                        return other  # a concurrent deploy of the same files: one release
            time.sleep(0.002)  # the next id is for a later millisecond
            doc = make_release(doc.manifest, doc.etags, doc.git_blobs)
        raise ConflictError(f"could not find a free release id after {MAX_ID_TRIES} tries")

    def point_current(self, doc: ReleaseDoc, *, expected: Current, retry: bool) -> int:
        """Make ``doc`` the current manifest if it is still ``expected``; return conflicts met.

        With ``retry`` (deploys) a lost race re-reads and tries again: last writer wins.
        Without it (rollback) the first conflict raises :class:`ConflictError`.
        """
        return self.make_current(doc, expected=expected, retry=retry)[0]

    def make_current(self, doc: ReleaseDoc, *, expected: Current, retry: bool
                     ) -> tuple[int, str | None]:
        """:meth:`point_current`, and the ETag of the manifest object it left (a deploy
        records it: :mod:`pipeline.release.tree_record`)."""
        key = self.manifest_key
        data = doc.to_json()
        conflicts = 0
        for _ in range(MAX_PUBLISH_TRIES):
            try:
                etag = self.storage.put_if(key, data, content_type=content_type_for(key),
                                           cache_control=MANIFEST_CACHE_CONTROL,
                                           if_match=expected.etag,
                                           if_absent=expected.etag is None)
                return conflicts, etag or None
            except ConflictError:
                conflicts += 1
                now = self.read_current()
                if now.data == data:  # already in place: ours (response lost) or identical
                    return conflicts, now.etag
                if not retry:
                    raise ConflictError(
                        f"the current manifest changed while this ran (now release "
                        f"{now.release_id or 'unknown'}); nothing was changed: check "
                        "`cdn-deploy releases` and run the command again"
                    ) from None
                expected = now
        raise ConflictError(
            f"the current manifest kept changing ({conflicts} conflicting writes): another "
            "deploy is publishing in a loop; the release was stored but is not current"
        )

