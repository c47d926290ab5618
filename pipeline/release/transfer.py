"""The deploy's middle phases: plan (listing, plan, variants) and upload.

Each takes the frozen values it needs (what the folders hold,
:class:`pipeline.release.prepare.OnDisk`; what the bucket holds,
:class:`pipeline.release.prepare.InBucket`; the hashes, :class:`pipeline.release.prepare.Hashed`)
and returns its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..build.compress import brotli_available
from ..build.fingerprint import HashCache
from ..manifest import Manifest
from ..storage.base import RemoteObject, Upload
from .confirm import DeployObserver, checked, upload_all
from .documents import Current
from .early import EarlyUploads
from .plan import Plan, PlannedFile, entry_upload, plan_deploy
from .prepare import Hashed, InBucket, OnDisk, is_current
from .result import DeployOptions, DeployResult, LocalPaths
from .sibling_step import NO_BROTLI, plan_siblings
from .store import ReleaseStore
from .variant_phase import variant_phase


@dataclass(frozen=True)
class Planned:
    """What to upload, against one listing of the prefix."""

    #: The release current when the deploy started (publishing replaces it).
    current: Current
    hashed: Hashed
    #: The manifest to publish (with every source's variants).
    manifest: Manifest
    plan: Plan
    existing: dict[str, RemoteObject]
    #: ``time.monotonic()`` before that listing (see :attr:`InBucket.started`).
    started: float
    result: DeployResult
    uploads: list[Upload]
    #: Every object the release names that this run can upload, by key (confirmation
    #: re-uploads from it what a concurrent prune deleted).
    by_key: dict[str, Upload]


@dataclass(frozen=True)
class Uploaded:
    """Everything planned is stored."""

    planned: Planned
    stored: dict[str, RemoteObject]


def plan(disk: OnDisk, bucket: InBucket, hashed: Hashed, paths: LocalPaths,
         store: ReleaseStore, options: DeployOptions, observer: DeployObserver) -> Planned:
    """List the prefix (unless listed first), plan the uploads, find or encode the variants.
    A dry run's result says whether a release would be published."""
    if not options.dry_run:  # publishing relies on conditional writes: know before any work
        # (probed once per bucket; early uploads probed before their first)
        store.require_conditional_writes(unsafe=options.unsafe_no_conditional_writes)
    started, existing, current = bucket.started, bucket.listing, bucket.current
    if existing is None:
        started = time.monotonic()
        hints = [e.key for e in hashed.manifest.files.values()]
        existing = store.list(hints=hints + sorted(hashed.vplan.keys() if hashed.vplan else ()))
    planned = plan_deploy(hashed.manifest, hashed.sources, existing, known_etags=bucket.known)
    observer.planned(planned)
    result = _result(disk, current, hashed.manifest, planned, paths, store, existing, options)
    manifest, variant_uploads = hashed.manifest, list[Upload]()
    if hashed.vplan is not None:
        assert options.variants is not None
        made = variant_phase(hashed.vplan, hashed.built.manifest, existing,
                             cache_dir=paths.variant_cache, settings=options.variants,
                             observer=observer, dry_run=options.dry_run,
                             budget=options.variant_budget)
        manifest, variant_uploads = made.manifest, list(made.uploads)
        result = replace(result, manifest=manifest, encoded=made.encoded,
                         variant_uploads=len(variant_uploads),
                         variant_bytes=sum(u.size for u in variant_uploads),
                         images_left=made.images_left, variants_left=made.variants_left,
                         encode_seconds=made.encode_seconds)
    if options.dry_run:  # what the real run would do: publish unless this is the current release
        result = replace(result, new_release=not is_current(current, manifest))
        return Planned(current, hashed, manifest, planned, existing, started, result, [], {})
    if options.precompress:
        manifest, variant_uploads, result = _siblings(manifest, hashed, existing, variant_uploads,
                                                      result, observer, relist=options.relist)
    by_key = {item.entry.key: _upload_for(item, hashed.built.bodies) for item in planned.files}
    uploads = [by_key[item.entry.key] for item in planned.uploads] + variant_uploads
    by_key.update((upload.key, upload) for upload in variant_uploads)
    return Planned(current, hashed, manifest, planned, existing, started, result, uploads, by_key)


def upload(planned: Planned, store: ReleaseStore, observer: DeployObserver,
           early: EarlyUploads | None, cache: HashCache) -> Uploaded:
    """Store every planned upload (after those begun while hashing, if any); the hash cache
    is saved whatever happens: the hashes are right even if uploads failed (a file
    rewritten in place is forgotten first, so it is hashed afresh)."""
    try:
        if early is not None:  # queue the rest after those begun while hashing; wait for all
            stored = checked(early.finish(planned.uploads), early.queued, cache)
        else:
            stored = upload_all(store.storage, planned.uploads, observer, cache)
    finally:
        cache.save()
    return Uploaded(planned, stored)


def _result(disk: OnDisk, current: Current, manifest: Manifest, planned: Plan,
            paths: LocalPaths, store: ReleaseStore, existing: dict[str, RemoteObject],
            options: DeployOptions) -> DeployResult:
    """The result so far: the plan, and whether the current release is a rollback."""
    current_id = current.release_id
    ids = store.release_ids(existing)
    return DeployResult(
        manifest, planned, paths.manifest, store.manifest_key, store.description,
        options.dry_run, current_release=current_id, ignored=disk.ignored,
        current_is_rollback=bool(current_id and ids and ids[-1] > current_id),
        hashes_from_git=disk.hashes_from_git,
    )


def _siblings(manifest: Manifest, hashed: Hashed, existing: dict[str, RemoteObject],
              extra_uploads: list[Upload], result: DeployResult, observer: DeployObserver,
              *, relist: bool) -> tuple[Manifest, list[Upload], DeployResult]:
    """The manifest with precompressed siblings, the uploads beside the files' (variants
    first, then siblings) and the result counting them; brotli's absence said once."""
    siblings = plan_siblings(manifest, hashed.sources, hashed.built.bodies, existing,
                             relist=relist)
    if siblings.compressed and not brotli_available():
        observer.warned(NO_BROTLI)
    result = replace(result, manifest=siblings.manifest, compressed=siblings.compressed,
                     sibling_uploads=len(siblings.uploads),
                     sibling_bytes=sum(upload.size for upload in siblings.uploads))
    return siblings.manifest, extra_uploads + siblings.uploads, result


def _upload_for(item: PlannedFile, bodies: Mapping[str, bytes]) -> Upload:
    return entry_upload(item.entry, item.source, bodies.get(item.logical_path))
