"""Is production consistent? Check every object a release names, mostly from one listing.

What each check costs and why it is enough:

* **presence, size, checksum**: from the listing (1,000 keys a request). The release
  recorded each object's ETag when it was made (the server's MD5 of bytes that
  passed a CRC32 check on upload), so an object overwritten since, even with the
  same size, shows a different ETag.
* **Content-Type and Cache-Control**: only a HEAD tells, and a HEAD per object is
  far too slow for 10,000 objects. S3 metadata cannot change without a write (a
  PUT, or a COPY onto itself), and every write moves ``LastModified``. So objects
  last modified at or after their release object was written get a HEAD, because
  something touched them after the release was recorded, plus a random sample
  (:data:`SAMPLE_SIZE`) as a spot check of objects that were reused as they were.
  ``--full`` reads every object instead: a GET, its bytes hashed as they stream in
  and compared with the manifest's SHA-256 (``workers`` downloads at a time). That
  is the only check that finds an object whose bytes never had its content hash
  (stored by an old deploy while its file was being rewritten): its ETag is the
  one its release recorded.
* A folder target has no ETags in its listing and stores no headers: every file is
  read and its SHA-256 compared with the manifest's hash instead.

Some servers (SeaweedFS) replace a stored ``application/octet-stream`` with a type
they derive from the name (``.psd`` -> ``image/vnd.adobe.photoshop``). For objects
the deploy stored as octet-stream (our table does not know the extension) another
type is accepted and listed in the report's ``server_types``, not counted as a
problem: the bytes are right, and the server, not the deploy, chose the header. Any
other type mismatch is a problem.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError, ManifestError
from ..manifest import Entry
from ..media_types import DEFAULT_CONTENT_TYPE, IMMUTABLE_CACHE_CONTROL
from ..releasedoc import ReleaseDoc
from ..storage.base import ObjectInfo, RemoteObject
from .documents import Current
from .plan import is_present
from .store import ReleaseStore

#: Objects HEADed at random besides those modified after their release.
SAMPLE_SIZE = 32

ETAG_MISMATCH = "wrong checksum (ETag)"


@dataclass(frozen=True)
class Problem:
    key: str
    #: The logical path (``img/cat.jpg``), or ``""`` for the release object itself.
    path: str
    kind: str
    expected: str | None = None
    actual: str | None = None

    def describe(self) -> str:
        what = f"{self.path} ({self.key})" if self.path else self.key
        if self.expected is None and self.actual is None:
            return f"{what}: {self.kind}"
        return f"{what}: {self.kind}: expected {self.expected!r}, found {self.actual!r}"


@dataclass(frozen=True)
class VerifyReport:
    release_id: str | None
    is_current: bool
    doc: ReleaseDoc
    checked: int
    inspected: int
    problems: tuple[Problem, ...]
    #: (key, type served) of objects stored as octet-stream that the server serves with
    #: a type of its own choosing (accepted: see the module docstring).
    server_types: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _current_doc(store: ReleaseStore, current: Current) -> ReleaseDoc:
    """The current release, or why there is none to verify."""
    if current.problem is not None:
        raise ManifestError(f"{current.problem}; a deploy or `deploy.py rollback ID` "
                            "replaces it, or pass --release ID")
    if current.doc is None:
        # A usage problem, not a failed check: usually a wrong --prefix or bucket.
        raise ConfigError(
            f"no manifest at {store.manifest_key!r} in {store.description}: nothing "
            "is deployed under this prefix; check --prefix/--bucket, deploy first, or "
            "pass --release ID (`cdn-deploy releases`)"
        )
    return current.doc


def verify(
    store: ReleaseStore, *, release_id: str | None = None, full: bool = False,
    sample: int = SAMPLE_SIZE,
) -> VerifyReport:
    """Check the release ``release_id`` (default: the current manifest) against storage."""
    current = store.read_current()
    doc = _current_doc(store, current) if release_id is None else store.read_release(release_id)
    entries = unique_entries(doc)
    listing = store.list(hints=sorted(doc.manifest.object_keys()))
    problems = list(_release_problems(doc, store, listing, is_current=release_id is None))
    problems += listing_problems(entries, listing, doc.etags)
    problems += variant_problems(doc, listing)
    problems += sibling_problems(doc, listing)
    present = [key for key in entries if _listed_intact(key, entries, listing)]
    to_inspect = _choose_inspections(store, doc, present, listing, full, sample)
    found = store.storage.inspect(to_inspect, content=full)
    problems += inspection_problems(entries, found, doc.etags)
    problems += sibling_header_problems(store, entries, to_inspect, listing)
    # Bytes that hash to the manifest's SHA-256 are right whatever ETag was recorded
    # (a repaired object replacing one stored with the wrong bytes has a new ETag).
    hashed = {key for key, info in found.items()
              if info is not None and info.sha256 == entries[key][1].hash}
    problems = [p for p in problems if not (p.key in hashed and p.kind == ETAG_MISMATCH)]
    return VerifyReport(
        release_id=doc.release_id, is_current=doc.release_id == current.release_id,
        doc=doc, checked=len(entries), inspected=len(to_inspect),
        problems=tuple(sorted(set(problems), key=lambda p: (p.key, p.kind))),
        server_types=tuple(sorted(server_typed(entries, found))),
    )


def unique_entries(doc: ReleaseDoc) -> dict[str, tuple[str, Entry]]:
    """Key -> (logical path, entry); two paths sharing a key are one object."""
    return {entry.key: (path, entry) for path, entry in sorted(doc.manifest.files.items())}


def _release_problems(
    doc: ReleaseDoc, store: ReleaseStore, listing: Mapping[str, RemoteObject], *,
    is_current: bool,
) -> Iterable[Problem]:
    """The current manifest must point at a release object that exists."""
    if is_current and doc.release_id is not None:
        key = store.release_key(doc.release_id)
        if key not in listing:
            yield Problem(key, "", "release object missing (the current manifest names it)")


def listing_problems(
    entries: Mapping[str, tuple[str, Entry]], listing: Mapping[str, RemoteObject],
    etags: Mapping[str, str],
) -> Iterable[Problem]:
    for key, (path, entry) in entries.items():
        remote = listing.get(key)
        if remote is None:
            yield Problem(key, path, "missing")
        elif remote.size != entry.size:
            yield Problem(key, path, "wrong size", str(entry.size), str(remote.size))
        elif remote.etag and etags.get(key) and remote.etag != etags[key]:
            yield Problem(key, path, ETAG_MISMATCH, etags[key], remote.etag)


def variant_problems(doc: ReleaseDoc, listing: Mapping[str, RemoteObject]) -> Iterable[Problem]:
    """Image variants the release names, checked by the listing (presence and size). Their
    bytes have no recorded hash to inspect; a re-deploy with ``--relist`` makes them again."""
    for path, entry in sorted(doc.manifest.files.items()):
        for variant in entry.variants:
            remote = listing.get(variant.key)
            if remote is None:
                yield Problem(variant.key, path, "variant missing (verify --repair restores it "
                              "from the local variant cache, deploy --relist makes it)")
            elif remote.size != variant.size:
                yield Problem(variant.key, path, "variant of the wrong size",
                              str(variant.size), str(remote.size))


def sibling_problems(doc: ReleaseDoc, listing: Mapping[str, RemoteObject]) -> Iterable[Problem]:
    """Precompressed siblings the release names, checked by the listing (presence, size)."""
    for path, entry in sorted(doc.manifest.files.items()):
        for sibling in entry.encodings or ():
            remote = listing.get(sibling.key)
            if remote is None:
                yield Problem(sibling.key, path, f"{sibling.encoding} sibling missing "
                              "(verify --repair or deploy --relist makes it again)")
            elif remote.size != sibling.size:
                yield Problem(sibling.key, path, f"{sibling.encoding} sibling of the wrong size",
                              str(sibling.size), str(remote.size))


def sibling_header_problems(store: ReleaseStore, entries: Mapping[str, tuple[str, Entry]],
                            inspected: Iterable[str], listing: Mapping[str, RemoteObject],
                            ) -> Iterable[Problem]:
    """The headers of the listed siblings of the inspected objects: a client that gets one
    must be told its encoding, the original's type and the immutable cache policy."""
    wanted = {s.key: (path, entry, s.encoding) for key in inspected
              for path, entry in (entries[key],) for s in entry.encodings or ()
              if s.key in listing}
    for key, info in store.storage.inspect(sorted(wanted)).items():
        path, entry, encoding = wanted[key]
        if info is None:
            continue  # listed a moment ago; the listing's check reports a missing one
        expected = (("Content-Encoding", encoding, info.content_encoding),
                    ("Content-Type", entry.content_type, info.content_type),
                    ("Cache-Control", IMMUTABLE_CACHE_CONTROL, info.cache_control))
        for header, want, got in expected:
            if got is not None and got != want:  # None: a folder stores no headers
                yield Problem(key, path, f"wrong {header}", want, got)


def _listed_intact(key: str, entries: Mapping[str, tuple[str, Entry]],
                   listing: Mapping[str, RemoteObject]) -> bool:
    return is_present(listing, key, entries[key][1].size)


def _choose_inspections(
    store: ReleaseStore, doc: ReleaseDoc, present: list[str],
    listing: Mapping[str, RemoteObject], full: bool, sample: int,
) -> list[str]:
    """Every present key without listing ETags or with ``full``; else touched + a sample."""
    if full or not store.storage.listing_has_etags:
        return present
    since = _recorded_at(doc, store, listing)
    touched = [key for key in present if since is None or _modified_since(listing[key], since)]
    rest = sorted(set(present) - set(touched))
    return touched + random.sample(rest, min(sample, len(rest)))


def _recorded_at(doc: ReleaseDoc, store: ReleaseStore, listing: Mapping[str, RemoteObject]
                 ) -> datetime | None:
    """When the release was written, by the server's clock (its object's LastModified)."""
    key = store.release_key(doc.release_id) if doc.release_id else store.manifest_key
    remote = listing.get(key)
    return remote.last_modified if remote is not None else None


def _modified_since(remote: RemoteObject, since: datetime) -> bool:
    # LastModified has one-second resolution: a tie counts as "after".
    return remote.last_modified is None or remote.last_modified >= since


def inspection_problems(
    entries: Mapping[str, tuple[str, Entry]], found: Mapping[str, ObjectInfo | None],
    etags: Mapping[str, str],
) -> Iterable[Problem]:
    for key, info in found.items():
        path, entry = entries[key]
        if info is None:
            yield Problem(key, path, "missing")
            continue
        if info.size != entry.size:
            yield Problem(key, path, "wrong size", str(entry.size), str(info.size))
        if info.sha256 is not None:
            if info.sha256 != entry.hash:
                yield Problem(key, path, "wrong content (SHA-256)", entry.hash, info.sha256)
        elif info.etag and etags.get(key) and info.etag != etags[key]:
            yield Problem(key, path, ETAG_MISMATCH, etags[key], info.etag)
        if info.content_type is not None and info.content_type != entry.content_type \
                and entry.content_type != DEFAULT_CONTENT_TYPE:
            yield Problem(key, path, "wrong Content-Type", entry.content_type, info.content_type)
        if info.cache_control is not None and info.cache_control != IMMUTABLE_CACHE_CONTROL:
            yield Problem(key, path, "wrong Cache-Control", IMMUTABLE_CACHE_CONTROL,
                          info.cache_control)


def server_typed(entries: Mapping[str, tuple[str, Entry]],
                 found: Mapping[str, ObjectInfo | None]) -> Iterable[tuple[str, str]]:
    """(key, served type) for objects stored as octet-stream but served as another type."""
    for key, info in found.items():
        if info is not None and info.content_type is not None \
                and entries[key][1].content_type == DEFAULT_CONTENT_TYPE \
                and info.content_type != DEFAULT_CONTENT_TYPE:
            yield key, info.content_type
