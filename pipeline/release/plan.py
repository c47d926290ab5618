"""Deciding what to upload: pure functions over the manifest and a bucket listing.

No I/O happens here, so every rule (what counts as present, what a re-run does)
is tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import overload

from ..localfs import StrPath
from ..manifest import Entry, Manifest
from ..media_types import IMMUTABLE_CACHE_CONTROL
from ..storage.base import RemoteObject, Upload


class Reason(StrEnum):
    NEW = "new"
    UNCHANGED = "unchanged"
    #: An object with the right name but the wrong size: a torn upload by another tool.
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class PlannedFile:
    logical_path: str
    entry: Entry
    #: The local file (a plain string from the walk, see :class:`~pipeline.localfs.LocalFile`).
    source: StrPath
    reason: Reason

    @property
    def needs_upload(self) -> bool:
        return self.reason is not Reason.UNCHANGED


class AllUnchanged(Sequence[PlannedFile]):
    """Every file of a manifest planned unchanged, made only when looked at.

    A no-change re-run knows the answer for every file without a listing; making its
    100,000 :class:`PlannedFile` (0.3 s) only to count them was most of its plan's cost,
    and a re-run answered from its record (:mod:`pipeline.release.tree_record`) has not
    even decoded the entries (``entries`` may load on use).
    """

    def __init__(self, entries: Mapping[str, Entry], sources: Mapping[str, StrPath]) -> None:
        self._entries = entries
        self._sources = sources

    @cached_property
    def _files(self) -> tuple[PlannedFile, ...]:
        return tuple(PlannedFile(path, self._entries[path], self._sources[path],
                                 Reason.UNCHANGED) for path in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> PlannedFile: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PlannedFile]: ...

    def __getitem__(self, index: int | slice) -> PlannedFile | Sequence[PlannedFile]:
        return self._files[index]

    def __iter__(self) -> Iterator[PlannedFile]:
        return iter(self._files)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # equal to a tuple, so not hashable


@dataclass(frozen=True)
class Plan:
    files: Sequence[PlannedFile]

    @cached_property
    def uploads(self) -> tuple[PlannedFile, ...]:
        """Computed once: the CLI asks several times, and a plan may have 100,000 files."""
        if isinstance(self.files, AllUnchanged):
            return ()
        return tuple(item for item in self.files if item.needs_upload)

    @property
    def bytes_to_upload(self) -> int:
        return sum(item.entry.size for item in self.uploads)

    @property
    def skipped(self) -> int:
        return len(self.files) - len(self.uploads)


def plan_deploy(
    manifest: Manifest,
    sources: Mapping[str, StrPath],
    existing: Mapping[str, RemoteObject],
    *,
    known_etags: Mapping[str, str] | None = None,
) -> Plan:
    """Mark each manifest entry new, unchanged or damaged against the listing.

    Keys are content hashes, so presence with the right size means the right bytes.
    ``known_etags`` (key -> ETag recorded by an earlier release) sharpens that: an
    object whose listed ETag differs from the recorded one was overwritten since, so
    it is damaged even with the right size. Two logical paths can share one key only
    if they are the same file under the same name, so each key is uploaded at most once.
    """
    known = known_etags or {}
    planned: list[PlannedFile] = []
    claimed: set[str] = set()
    for logical_path in sorted(manifest.files):
        entry = manifest.files[logical_path]
        if already_stored(existing, entry, known) or entry.key in claimed:
            reason = Reason.UNCHANGED
        else:
            reason = Reason.NEW if entry.key not in existing else Reason.DAMAGED
            claimed.add(entry.key)
        planned.append(PlannedFile(logical_path, entry, sources[logical_path], reason))
    return Plan(tuple(planned))


def entry_upload(entry: Entry, source: StrPath, body: bytes | None = None) -> Upload:
    """The upload that stores a manifest entry's object (deploys and repairs alike)."""
    return Upload(key=entry.key, source=source, size=entry.size,
                  content_type=entry.content_type, cache_control=IMMUTABLE_CACHE_CONTROL,
                  body=body, sha256=entry.hash)


def is_present(listing: Mapping[str, RemoteObject], key: str, size: int) -> bool:
    """Listed with the right size: under a content-hashed key, that means the right bytes
    (a torn upload by another tool has the name but not the size)."""
    remote = listing.get(key)
    return remote is not None and remote.size == size


def already_stored(existing: Mapping[str, RemoteObject], entry: Entry,
                   known_etags: Mapping[str, str]) -> bool:
    """Listed with the right size, and with the ETag an earlier release recorded for the key
    if it recorded one and the listing shows one: no need to upload it again."""
    remote = existing.get(entry.key)
    if remote is None or remote.size != entry.size:
        return False
    known = known_etags.get(entry.key)
    return known is None or remote.etag is None or remote.etag == known


def missing_keys(manifest: Manifest, confirmed: Mapping[str, RemoteObject]) -> list[str]:
    """Keys the manifest names (variants and siblings too) not confirmed present with the
    right size."""
    pairs = [(entry.key, entry.size) for entry in manifest.files.values()]
    pairs += [(v.key, v.size) for entry in manifest.files.values() for v in entry.variants]
    pairs += [(s.key, s.size) for entry in manifest.files.values() for s in entry.encodings or ()]
    return sorted(
        key for key, size in pairs
        if not is_present(confirmed, key, size)
    )
