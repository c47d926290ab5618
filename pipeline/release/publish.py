"""The deploy itself: collect, fingerprint, plan, upload, confirm, record, publish
(uploads may start while fingerprinting: :mod:`pipeline.release.early`).

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
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from ..build.assemble import build, check_before_hashing, file_stamp, needs_hashing
from ..build.css import is_css
from ..build.fingerprint import HashCache
from ..build.mounts import Mounts, git_blob_ids
from ..build.variants import VariantSettings
from ..errors import DeployError
from ..localfs import Ignored, LocalFile, check_writable
from ..manifest import Manifest
from ..pathfilter import PathFilter
from ..releasedoc import ReleaseDoc
from ..storage.base import RemoteObject, Upload
from ..validate import DEFAULT_STATIC_URL_PATH
from .confirm import DeployObserver, Silent, checked, confirm_release, upload_all
from .documents import Current, make_release
from .early import EarlyUploads
from .local_manifest import write_local_manifest, write_published_manifest
from .plan import Plan, PlannedFile, Reason, entry_upload, missing_keys, plan_deploy
from .store import ReleaseStore
from .variant_step import (
    VariantPlan,
    encode_missing,
    find_missing,
    known_sizes,
    plan_sources,
    uploads_for,
    variant_cache_dir,
    with_variants,
)


@dataclass(frozen=True)
class DeployResult:
    manifest: Manifest
    plan: Plan
    manifest_path: Path
    manifest_key: str
    target: str
    dry_run: bool
    #: The release now current (``None`` for a dry run).
    release_id: str | None = None
    #: The release this run replaced as current (``None`` when it published none).
    previous_release: str | None = None
    #: A new release is (dry run: would be) made current; False when the files equal
    #: the current release's, which stays current.
    new_release: bool = False
    #: Conditional writes lost to concurrent deploys before this one's went through.
    conflicts: int = 0
    #: The release current when the run started, and whether it is older than the
    #: newest release (a rollback, which a new release would undo).
    current_release: str | None = None
    current_is_rollback: bool = False
    #: Files and folders the walk left out (dotfiles, junk, ``--exclude``), with why.
    ignored: tuple[Ignored, ...] = ()
    #: Image variants encoded by this run (dry run: that it would encode), and variant
    #: objects uploaded (from this run's encodes or the local cache) and their bytes.
    encoded: int = 0
    variant_uploads: int = 0
    variant_bytes: int = 0
    #: Files whose SHA-256 came from the current release because git vouched that
    #: their bytes are unchanged (:mod:`pipeline.build.gitindex`); they were not read.
    hashes_from_git: int = 0
    #: Keys the release current at the start names that were missing from the bucket
    #: (deleted behind its back) and that this run uploaded again.
    restored: tuple[str, ...] = ()

    @property
    def uploaded(self) -> int:
        return 0 if self.dry_run else len(self.plan.uploads) + self.variant_uploads

    @property
    def bytes_uploaded(self) -> int:
        return 0 if self.dry_run else self.plan.bytes_to_upload + self.variant_bytes


def deploy(
    *,
    static_dir: Path,
    store: ReleaseStore,
    manifest_path: Path,
    hash_cache_path: Path | None,
    dry_run: bool = False,
    strict: bool = True,
    relist: bool = False,
    observer: DeployObserver | None = None,
    filters: PathFilter | None = None,
    unsafe_no_conditional_writes: bool = False,
    variants: VariantSettings | None = None,
    variant_cache: Path | None = None,
    static_url_path: str = DEFAULT_STATIC_URL_PATH,
    mounts: Mounts | None = None,
    allow_hard_links: bool = False,
) -> DeployResult:
    """Publish ``static_dir`` to ``store``; see the module docstring.

    ``mounts`` deploys several folders as one (an app's and its blueprints',
    :mod:`pipeline.build.mounts`) instead of ``static_dir`` served at ``static_url_path``.

    When files must be read (their hashes are neither cached nor vouched for by git) and
    some are new to the current release (path or size), the prefix is listed first and
    uploads start while hashing (:mod:`pipeline.release.early`).
    When every hash is known without reading and the files equal the current release,
    nothing is listed or written remotely: a release is only published once all its objects
    were confirmed, so there is nothing to upload. Objects deleted behind the deploy's back
    are what ``verify`` (or ``relist=True``, or a run that lists anyway) finds.

    With ``variants``, raster images also get responsive variants
    (:mod:`pipeline.release.variant_step`): planned before the listing, the missing ones taken
    from ``variant_cache`` (default: ``variants/`` beside the local manifest) or encoded,
    uploaded and confirmed with everything else.
    """
    observer = observer or Silent()
    store.require_prefix()
    storage = store.storage
    folders = mounts or Mounts.single(static_dir, static_url_path)
    roots = folders.url_roots
    scan = folders.scan(filters, allow_hard_links=allow_hard_links)
    files = scan.files
    if not dry_run:
        check_writable(manifest_path, "the local manifest")
    storage.check()
    current = store.read_current()
    cache = HashCache(hash_cache_path)
    blobs = git_blob_ids(folders)
    from_git = reuse_git_hashes(files, blobs, current.doc, cache)
    texts = check_before_hashing(files, prefix=store.prefix, strict=strict,
                                 static_url_path=roots)
    known = dict(current.doc.etags) if current.doc else {}
    started = time.monotonic()  # deletions after this are what confirm_release looks for
    listing: dict[str, RemoteObject] | None = None
    if not dry_run and variants is None and _likely_new(files, cache, current):
        # Files must be read and some are new: list first, so each can be uploaded as soon as
        # it is hashed (pipeline.release.early). Variants are planned from every hash before
        # any upload, so a bad source image still stops the deploy before anything is stored.
        listing = store.list(hints=_release_keys(current))
    probe = partial(store.require_conditional_writes, unsafe=unsafe_no_conditional_writes)
    with _early_uploads(store, listing, known, observer, before_first=probe) as early:
        built = build(files, prefix=store.prefix, cache=cache, strict=strict,
                      static_url_path=roots, texts=texts,
                      on_hashed=early.offer if early is not None else None)
        for warning in built.warnings:
            observer.warned(warning)
        manifest = built.manifest
        sources = {f.logical_path: f for f in files}
        cache_dir = variant_cache_dir(variant_cache, manifest_path)
        vplan = (plan_sources(manifest, sources, variants, store.prefix, cache_dir,
                              save=not dry_run) if variants else None)
        if vplan is not None:
            recorded = known_sizes(current.doc.manifest if current.doc else None)
            if vplan.keys() <= recorded.keys():  # every variant was confirmed by that release
                manifest = with_variants(manifest, vplan, recorded)
        if not relist and _is_current(current, manifest):
            # Never after an early listing: a file read then had a path or size the release
            # lacks, so the manifest differs from the release's.
            same = _unchanged(current, manifest, sources, observer, cache, manifest_path,
                              key=store.manifest_key, target=store.description,
                              dry_run=dry_run, ignored=tuple(scan.ignored))
            return replace(same, hashes_from_git=from_git)
        if not dry_run:  # publishing relies on conditional writes: know before any work
            probe()  # (probed once per bucket; early uploads probed before their first)
        if listing is None:
            started = time.monotonic()
            hints = [e.key for e in manifest.files.values()] + sorted(vplan.keys() if vplan else ())
            listing = store.list(hints=hints)
        existing = listing
        plan = plan_deploy(manifest, sources, existing, known_etags=known)
        observer.planned(plan)
        ids = store.release_ids(existing)
        result = DeployResult(
            manifest, plan, manifest_path, store.manifest_key, store.description, dry_run,
            current_release=current.release_id, ignored=tuple(scan.ignored),
            current_is_rollback=bool(current.release_id and ids and ids[-1] > current.release_id),
            hashes_from_git=from_git,
        )
        variant_uploads: list[Upload] = []
        if vplan is not None:
            manifest, variant_uploads, encoded = _variants(
                vplan, built.manifest, existing, cache_dir, variants, observer, dry_run=dry_run)
            result = replace(result, manifest=manifest, encoded=encoded,
                             variant_uploads=len(variant_uploads),
                             variant_bytes=sum(u.size for u in variant_uploads))
        if dry_run:
            # What the real run would do: publish unless these files are the current release.
            return replace(result, new_release=not _is_current(current, manifest))

        by_key = {item.entry.key: _upload_for(item, built.bodies) for item in plan.files}
        uploads = [by_key[item.entry.key] for item in plan.uploads] + variant_uploads
        by_key.update((upload.key, upload) for upload in variant_uploads)
        try:
            if early is not None:
                stored = _finish(early, uploads, cache)
            else:
                stored = upload_all(storage, uploads, observer, cache)
        finally:
            cache.save()  # hashes are right even if uploads failed; the next run reuses them
    restored = _restored(current, stored, observer, target=store.description)
    confirmed = {**existing, **stored}
    missing = missing_keys(manifest, confirmed)
    if missing:
        raise DeployError(
            f"{len(missing)} object(s) could not be confirmed in {store.description}, "
            f"first: {missing[0]}; the manifest was not published"
        )
    blobs_kept = git_blobs_to_record(folders, files, blobs, built.bodies)
    doc, new = _release_for(store, manifest, current, existing, confirmed, blobs_kept)
    # A failure here leaves the release object stored but not current. It is not deleted:
    # a concurrent deploy of the same files may be publishing this very release.
    confirm_release(store, manifest, by_key, observer, release_id=doc.release_id,
                    started=started)
    conflicts = store.point_current(doc, expected=current, retry=True)
    write_published_manifest(manifest_path, doc, manifest_key=store.manifest_key,
                             redo="run the deploy again (it uploads nothing and writes "
                                  "the manifest)")
    previous = current.release_id if doc.release_id != current.release_id else None
    return replace(result, release_id=doc.release_id, new_release=new, conflicts=conflicts,
                   previous_release=previous, restored=restored)


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


def _likely_new(files: list[LocalFile], cache: HashCache, current: Current) -> bool:
    """Whether a file to be read (its hash not cached) has a path or size the current release
    lacks: then something will be uploaded, and listing first lets it start while hashing.
    A fresh checkout of the released files (all to be read, all alike) is hashed first
    instead, and needs no listing when nothing changed. The release is asked first: on a
    warm re-run no file is new to it, so the cache is not consulted twice."""
    released = current.doc.manifest.files if current.doc is not None else {}
    for item in files:
        entry = released.get(item.logical_path)
        if (entry is None or entry.size != item.size) and needs_hashing(item, cache):
            return True
    return False


def _early_uploads(
    store: ReleaseStore, listing: dict[str, RemoteObject] | None, known: dict[str, str],
    observer: DeployObserver, *, before_first: Callable[[], None],
) -> AbstractContextManager[EarlyUploads | None]:
    """Uploads that start while hashing when the bucket was listed first, else nothing."""
    if listing is None:
        return nullcontext(None)
    return EarlyUploads(store.storage, store.prefix, listing, known_etags=known,
                        on_stored=observer.stored, before_first=before_first)


def _release_keys(current: Current) -> list[str]:
    """The current release's object keys: where a listing may split (they likely exist)."""
    if current.doc is None:
        return []
    return [entry.key for entry in current.doc.manifest.files.values()]


def _variants(
    vplan: VariantPlan, manifest: Manifest, existing: dict[str, RemoteObject], cache_dir: Path,
    settings: VariantSettings | None, observer: DeployObserver, *, dry_run: bool,
) -> tuple[Manifest, list[Upload], int]:
    """Find the variants the listing lacks, encode those not cached (not on a dry run), and
    return the manifest with every source's variants, their uploads and the encode count."""
    assert settings is not None
    missing = find_missing(vplan, existing, cache_dir)
    observer.encoding(len(missing.encode), missing.encode_count, dry_run=dry_run)
    if dry_run:
        return manifest, [], missing.encode_count
    encoded = encode_missing(missing, settings, cache_dir, on_encoded=observer.encoded)
    uploads = uploads_for(vplan, missing, cache_dir)
    observer.variants_ready(len(uploads), sum(upload.size for upload in uploads))
    sizes = {key: remote.size for key, remote in existing.items()}
    sizes.update((upload.key, upload.size) for upload in uploads)
    return with_variants(manifest, vplan, sizes), uploads, encoded


def _upload_for(item: PlannedFile, bodies: Mapping[str, bytes]) -> Upload:
    return entry_upload(item.entry, item.source, bodies.get(item.logical_path))


def _finish(early: EarlyUploads, uploads: Sequence[Upload],
            cache: HashCache) -> dict[str, RemoteObject]:
    """Queue the rest of the uploads after those begun while hashing; wait for them all."""
    return checked(early.finish(uploads), early.queued, cache)


def _is_current(current: Current, manifest: Manifest) -> bool:
    doc = current.doc
    return doc is not None and doc.release_id is not None and doc.manifest == manifest


def _unchanged(
    current: Current, manifest: Manifest, sources: dict[str, LocalFile], observer: DeployObserver,
    cache: HashCache, manifest_path: Path, *, key: str, target: str, dry_run: bool,
    ignored: tuple[Ignored, ...],
) -> DeployResult:
    """Nothing changed since the current release: plan it all unchanged, write locally only."""
    assert current.doc is not None
    # What plan_deploy answers against a listing of exactly these objects, without making
    # that listing (100,000 RemoteObjects): every file unchanged.
    plan = Plan(tuple(PlannedFile(path, entry, sources[path], Reason.UNCHANGED)
                      for path, entry in sorted(manifest.files.items())))
    observer.planned(plan)
    result = DeployResult(manifest, plan, manifest_path, key, target, dry_run,
                          current_release=current.release_id, ignored=ignored)
    if dry_run:
        return result
    cache.save()
    write_local_manifest(manifest_path, current.doc, published=current.data)
    return replace(result, release_id=current.release_id, new_release=False)


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


def git_blobs_to_record(folders: Mounts, files: list[LocalFile], blobs: dict[str, str],
                        bodies: Mapping[str, bytes]) -> dict[str, str]:
    """Blob ids to record beside the hashes: files uploaded as they are, unchanged throughout.

    Git vouched for ``blobs`` before the files were read; asking again afterwards and
    finding the same size and mtime as the walk saw means the bytes hashed are the
    blob's, even if someone edited a file while the deploy ran.
    """
    candidates = {path: blob for path, blob in blobs.items()
                  if path not in bodies and not is_css(path)}
    if not candidates:
        return {}
    after = git_blob_ids(folders)
    recorded: dict[str, str] = {}
    for item in files:
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


def reuse_git_hashes(files: list[LocalFile], blobs: dict[str, str], doc: ReleaseDoc | None,
                     cache: HashCache) -> int:
    """Seed ``cache`` with the current release's SHA-256 of files git vouches are unchanged.

    ``blobs`` come from :func:`pipeline.build.gitindex.clean_blob_ids` (tracked, clean,
    unconverted files only); a file qualifies when its blob id and size equal what the
    release recorded for the same path. The release records blob ids only for files
    uploaded as they are (not rewritten CSS or JS), whose entry hash is the file's own
    SHA-256. Returns how many files will not be read.
    """
    if doc is None or not doc.git_blobs or not blobs:
        return 0
    reused = 0
    for item in files:
        path = item.logical_path
        blob = blobs.get(path)
        entry = doc.manifest.files.get(path)
        if (blob is None or entry is None or doc.git_blobs.get(path) != blob
                or entry.size != item.size):
            continue
        cache.seed(item.fspath, file_stamp(item), entry.hash)
        reused += 1
    return reused


