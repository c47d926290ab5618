"""The deploy's first step: walk, then answer an unchanged tree from its record
(:mod:`pipeline.release.tree_record`), or, after a full run, leave the record for the next.

The answer is the full path's own :class:`~pipeline.release.result.DeployResult` for an
unchanged release, with ``from_tree_record`` set: its manifest's entries and its plan are
made from the local manifest (whose bytes were just checked) only if a caller looks at
them; the count and total size the summary prints come from the record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..build.mounts import Mounts
from ..errors import DeployError
from ..localfs import Scan
from ..manifest import Entry, Manifest, Summarised
from ..releasedoc import ReleaseDoc
from ..storage.base import Upload
from .plan import AllUnchanged, Plan
from .result import DeployOptions, DeployResult, LocalPaths
from .store import ReleaseStore
from .tree_record import (
    TreeRecord,
    cache_stamps,
    file_sha256,
    forget,
    may_answer,
    read_record,
    still_holds,
    tree_digest,
    write_record,
)

if TYPE_CHECKING:
    from .confirm import DeployObserver  # the publish phase's module: never imported here


@dataclass(frozen=True)
class Walked:
    """The walk, and the record this run may be answered from and may leave."""

    scan: Scan
    #: The record file (``None``: no hash cache, or a dry run, which never touches it).
    record: Path | None
    #: :func:`~pipeline.release.tree_record.tree_digest` (``None``: a run not to be answered).
    digest: str | None


def walk(folders: Mounts, store: ReleaseStore, paths: LocalPaths,
         options: DeployOptions) -> Walked:
    """Walk the folders and digest what the outcome depends on (when it may be answered)."""
    store.require_prefix()
    scan = folders.scan(options.filters, allow_hard_links=options.allow_hard_links)
    record = None if options.dry_run else paths.tree_record
    digest = None
    if record is not None and may_answer(options):
        digest = tree_digest(scan, store=store, settings=(folders, str(paths.manifest), options))
    return Walked(scan, record, digest)


def answer(walked: Walked, store: ReleaseStore, paths: LocalPaths,
           observer: DeployObserver) -> DeployResult | None:
    """The result of an unchanged tree whose record still holds, else ``None`` (and the
    record is removed: only a full run that succeeds writes one again)."""
    if walked.record is None:
        return None
    record = read_record(walked.record) if walked.digest is not None else None
    if (record is None or record.tree != walked.digest
            or not still_holds(record, store=store, paths=paths)):
        forget(walked.record)
        return None
    entries = RecordedEntries(paths.manifest, record)
    plan = Plan(AllUnchanged(entries, {item.logical_path: item for item in walked.scan.files}))
    observer.planned(plan)
    return DeployResult(Manifest(entries), plan, paths.manifest, store.manifest_key,
                        store.description, False, release_id=record.release,
                        current_release=record.release, ignored=tuple(walked.scan.ignored),
                        from_tree_record=True)


def remember_tree(walked: Walked, result: DeployResult, paths: LocalPaths, *,
                  etag: str | None, clean: bool) -> None:
    """Record a full run that made (or found) ``result.release_id`` current, when it may be
    answered next time: ``clean`` (no warning, no Vite build) and everything stamped."""
    if (walked.record is None or walked.digest is None or not clean
            or result.release_id is None or not etag):
        return
    cache, sha256 = cache_stamps(paths), file_sha256(paths.manifest)
    if cache is None or sha256 is None:
        return  # no hash cache was written (nothing to vouch for the hashes) or no manifest
    manifest = result.manifest
    write_record(walked.record, TreeRecord(
        walked.digest, result.release_id, etag, sha256, cache, len(manifest.files),
        manifest.total_bytes, list(manifest.first() or ())))


class RecordedEntries(Summarised):
    """The entries of the local manifest a record vouched for, decoded on first use
    (decoding 100,000 took 0.7 s and ~100 MiB); their count, total size and first path
    are the record's."""

    def __init__(self, path: Path, record: TreeRecord) -> None:
        self._path, self._sha256, self._count = path, record.manifest_sha256, record.files
        self.total_bytes = record.bytes
        self.first = (record.first[0], record.first[1]) if len(record.first) == 2 else None

    @cached_property
    def _entries(self) -> Mapping[str, Entry]:
        try:
            data = self._path.read_bytes()
        except OSError as exc:
            raise DeployError(f"cannot read manifest {str(self._path)!r}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != self._sha256:
            raise DeployError(f"manifest {str(self._path)!r} was changed after the deploy "
                              "checked it; run the deploy again")
        return ReleaseDoc.from_json(data, source=f"manifest {str(self._path)!r}").manifest.files

    def __getitem__(self, logical_path: str) -> Entry:
        return self._entries[logical_path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return self._count


class Watched:
    """An observer passed through, noting whether the run warned (then it is not recorded:
    a re-run answered from the record would not repeat the warning)."""

    def __init__(self, inner: DeployObserver) -> None:
        self.inner = inner
        self.warnings = 0

    def planned(self, plan: Plan) -> None:
        self.inner.planned(plan)

    def stored(self, upload: Upload) -> None:
        self.inner.stored(upload)

    def warned(self, message: str) -> None:
        self.warnings += 1
        self.inner.warned(message)

    def encoding(self, sources: int, variants: int, *, dry_run: bool) -> None:
        self.inner.encoding(sources, variants, dry_run=dry_run)

    def encoded(self, logical_path: str, done: int, total: int) -> None:
        self.inner.encoded(logical_path, done, total)

    def variants_ready(self, uploads: int, size: int) -> None:
        self.inner.variants_ready(uploads, size)
