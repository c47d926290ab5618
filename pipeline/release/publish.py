"""The deploy itself, as phases: prepare and hash (:mod:`pipeline.release.prepare`; uploads
may start while hashing: :mod:`pipeline.release.early`), plan and upload
(:mod:`pipeline.release.transfer`), then publish, here: confirm, record, make current,
write the local copy. Each phase takes the frozen values it needs: what the folders hold
(:class:`~pipeline.release.prepare.OnDisk`), what the bucket holds
(:class:`~pipeline.release.prepare.InBucket`), the hashes, the plan, the local paths
(:class:`~pipeline.release.result.LocalPaths`).

The manifest is published last and only when every object it names is confirmed
in storage (already listed with the right size, or stored by this run), so a
failed or interrupted deploy leaves the previous manifest, local and remote, in
place. Objects are never deleted here: old releases keep working (rollback).

Order of writes, each safe to be killed after: objects, then the immutable release
object (:mod:`pipeline.release.store`), then the current manifest (conditional on the
ETag read at the start; a lost race retries, last writer wins), then the local
manifest. A kill between the release and the manifest leaves a complete release
that is simply not current; the re-run publishes its own.

Racing a prune: after the release object is written, one listing of ``releases/``
shows prune markers and done records. If a prune may have deleted anything since
this deploy listed the bucket, it waits while a marker is live (that prune may have
checked the releases before ours was written), lists the whole prefix (cheaper than a
HEAD per reused key) and re-uploads what is missing. See :mod:`pipeline.release.prune` for
why that closes the race.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..build.mounts import Mounts, git_blob_ids
from ..errors import DeployError
from ..manifest import Manifest
from ..releasedoc import ReleaseDoc
from ..storage.base import RemoteObject
from .documents import Current, make_release
from .local_manifest import write_local_bytes, write_published_manifest
from .plan import AllUnchanged, Plan, missing_keys
from .recognise import remember
from .result import DeployOptions, DeployResult, LocalPaths
from .store import ReleaseStore
from .tree_run import Walked, Watched, answer, remember_tree, walk

if TYPE_CHECKING:
    from .confirm import DeployObserver
    from .prepare import Hashed, OnDisk
    from .transfer import Uploaded

__all__ = ["DeployOptions", "DeployResult", "deploy"]

_NO_OPTIONS = DeployOptions()


def deploy(*, folders: Mounts, store: ReleaseStore, manifest_path: Path,
           options: DeployOptions = _NO_OPTIONS,
           observer: DeployObserver | None = None) -> DeployResult:
    """Publish ``folders`` (resolved once, by the caller) to ``store``; see the module docstring.

    Only the phases that read the folders see them: prepare (the walk, git, Vite, their URL
    paths) and git asked again before publishing; the others take the frozen values.
    When files must be read and some are new to the current release, the prefix is listed
    first and uploads start while hashing (:mod:`pipeline.release.early`). When every hash is
    known without reading and the files equal the current release, nothing is listed or
    written remotely (``verify`` or ``options.relist`` finds objects deleted behind its back).
    A re-run of a tree the previous run published, with the same settings and tool, is
    answered after the walk from that run's record (:mod:`pipeline.release.tree_record`).
    """
    if observer is None:
        from .confirm import Silent

        observer = Silent()
    paths = LocalPaths.of(manifest_path, options)
    walked = walk(folders, store, paths, options)
    answered = answer(walked, store, paths, observer)
    if answered is not None:
        return answered
    watched = Watched(observer)
    result, etag, vite = _full(walked, folders, store, paths, options, watched)
    remember_tree(walked, result, paths, etag=etag, clean=watched.warnings == 0 and not vite)
    return result


def _full(walked: Walked, folders: Mounts, store: ReleaseStore, paths: LocalPaths,
          options: DeployOptions, observer: DeployObserver,
          ) -> tuple[DeployResult, str | None, bool]:
    """The deploy's phases after the walk: the result, the ETag of the current manifest
    object it left (``None``: unknown) and whether a Vite build was among the files."""
    # Imported here: a re-run answered from its record never builds (the build modules
    # were ~40 ms of its start-up).
    from .prepare import hash_files, prepare, uploads_while_hashing

    disk, bucket = prepare(folders, store, paths, options, scan=walked.scan)
    vite = disk.vite is not None
    with uploads_while_hashing(bucket, store, options, observer, keep=disk.keep) as early:
        hashed = hash_files(disk, bucket.current, store, options, observer, early,
                            paths.variant_cache)
        # Never after an early listing: a file read then was new to the release.
        if not options.relist and hashed.is_release(bucket.current):
            unchanged = _unchanged(disk, bucket.current, hashed, paths, store, observer,
                                   dry_run=options.dry_run)
            return unchanged, bucket.current.etag, vite
        # Imported only when there is something to plan: a no-change re-deploy never runs
        # it, and its frozen dataclasses are compiled at import (bench/README.md).
        from .transfer import plan, upload

        planned = plan(disk, bucket, hashed, paths, store, options, observer)
        if options.dry_run:
            return planned.result, None, vite
        uploaded = upload(planned, store, observer, early, disk.cache)
    # Asked again after every file was read and uploaded (see git_blobs_to_record).
    blobs = git_blobs_to_record(folders, disk, hashed.built.bodies)
    return (*publish(uploaded, blobs, paths, store, observer), vite)


def publish(uploaded: Uploaded, git_blobs: dict[str, str], paths: LocalPaths,
            store: ReleaseStore, observer: DeployObserver) -> tuple[DeployResult, str | None]:
    """Confirm every object, store the release (recording ``git_blobs``), make it current,
    write the local manifest; the result and the ETag of the current manifest object as it
    left it."""
    planned = uploaded.planned
    manifest, current = planned.manifest, planned.current
    restored = _restored(current, uploaded.stored, observer, target=store.description)
    confirmed = {**planned.existing, **uploaded.stored}
    missing = missing_keys(manifest, confirmed)
    if missing:
        raise DeployError(
            f"{len(missing)} object(s) could not be confirmed in {store.description}, "
            f"first: {missing[0]}; the manifest was not published"
        )
    doc, new = _release_for(store, manifest, current, planned.existing, confirmed, git_blobs)
    from .confirm import confirm_release  # the publish phase only: a no-change run never confirms

    # A failure here leaves the release object stored but not current. It is not deleted:
    # a concurrent deploy of the same files may be publishing this very release.
    confirm_release(store, manifest, planned.by_key, observer, release_id=doc.release_id,
                    started=planned.started)
    conflicts, etag = store.make_current(doc, expected=current, retry=True)
    remember(paths.record, doc.to_json(), doc.release_id, manifest, known=None)
    write_published_manifest(paths.manifest, doc, manifest_key=store.manifest_key,
                             redo="run the deploy again (it uploads nothing and writes "
                                  "the manifest)")
    previous = current.release_id if doc.release_id != current.release_id else None
    return replace(planned.result, release_id=doc.release_id, new_release=new,
                   conflicts=conflicts, previous_release=previous, restored=restored), etag


def _unchanged(disk: OnDisk, current: Current, hashed: Hashed, paths: LocalPaths,
               store: ReleaseStore, observer: DeployObserver, *, dry_run: bool) -> DeployResult:
    """Nothing changed since the current release: plan it all unchanged, write locally only."""
    manifest = hashed.manifest
    assert current.release_id is not None and current.data is not None
    # What plan_deploy answers against a listing of exactly these objects, without making
    # that listing (100,000 RemoteObjects): every file unchanged.
    plan = Plan(AllUnchanged(manifest.files, hashed.sources))
    observer.planned(plan)
    result = DeployResult(manifest, plan, paths.manifest, store.manifest_key,
                          store.description, dry_run, current_release=current.release_id,
                          ignored=disk.ignored, hashes_from_git=disk.hashes_from_git)
    if dry_run:
        return result
    disk.cache.save()
    remember(paths.record, current.data, current.release_id, manifest, known=current.known)
    write_local_bytes(paths.manifest, current.data)
    return replace(result, release_id=current.release_id, new_release=False)


def _restored(current: Current, stored: Mapping[str, RemoteObject], observer: DeployObserver,
              *, target: str) -> tuple[str, ...]:
    """Keys of the current release among those just uploaded, said out loud: they were
    missing from the bucket, so the live site was serving 404s for them until now (whichever
    path uploaded them: while hashing, after it, or as variants from the cache)."""
    if current.doc is None:
        return ()
    restored = tuple(sorted(set(stored) & current.doc.manifest.object_keys()))
    if restored:
        observer.warned(
            f"{len(restored)} object(s) of the current release {current.release_id} were "
            f"missing from (or damaged in) {target} and were uploaded again (first: "
            f"{restored[0]}); something removed them behind the deploys' back (a prune with "
            "a short --grace? a lifecycle rule?)")
    return restored


def _release_for(
    store: ReleaseStore, manifest: Manifest, current: Current,
    existing: dict[str, RemoteObject], confirmed: dict[str, RemoteObject],
    git_blobs: dict[str, str],
) -> tuple[ReleaseDoc, bool]:
    """The current release again if nothing changed, else a newly stored one."""
    doc = current.doc
    if (doc is not None and doc.release_id is not None and doc.manifest == manifest
            and store.release_key(doc.release_id) in existing):
        return doc, False
    etags = {key: remote.etag for key, remote in confirmed.items()}
    return store.store_release(make_release(manifest, etags, git_blobs)), True


def git_blobs_to_record(folders: Mounts, disk: OnDisk,
                        bodies: Mapping[str, bytes]) -> dict[str, str]:
    """Blob ids to record beside the hashes: files uploaded as they are, unchanged throughout.

    Git vouched for ``disk.blobs`` before the files were read; asking again afterwards and
    finding the same size and mtime as the walk saw means the bytes hashed are the
    blob's, even if someone edited a file while the deploy ran.
    """
    from ..build.css import is_css  # the publish phase only, see _full

    candidates = {path: blob for path, blob in disk.blobs.items()
                  if path not in bodies and not is_css(path)}
    if not candidates:
        return {}
    after = git_blob_ids(folders)
    recorded: dict[str, str] = {}
    for item in disk.files:
        blob = candidates.get(item.logical_path)
        if blob is None or after.get(item.logical_path) != blob:
            continue
        try:
            stat = os.lstat(item.fspath)  # the file itself, as the walk recorded it
        except OSError:
            continue
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) == (item.ino, item.size, item.mtime_ns):
            recorded[item.logical_path] = blob
    return recorded
