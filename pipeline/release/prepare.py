"""The deploy's first two phases: prepare (scan, current release, hash cache, git, and the
one choice of path) and hash (uploads may start meanwhile: :mod:`pipeline.release.early`).

Prepare returns two frozen values, so each later phase takes only the half it needs:
:class:`OnDisk`, what the folders hold (the folders themselves are read here and not again,
but for git's second word before publishing), and :class:`InBucket`, what the bucket holds.

The path is chosen once, in :func:`prepare`, as s3transfer's ``UploadSubmissionTask``
chooses between a plain and a multipart upload: when files must be read and some are new
to the current release, the bucket is listed first and uploads start while hashing;
otherwise everything is hashed first and the listing (if any) waits for the plan.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..build.assemble import Build, build, check_before_hashing, file_stamp, needs_hashing
from ..build.fingerprint import HashCache
from ..build.mounts import Mounts, UrlRoots, git_blob_ids
from ..build.textlinks import TextLinks
from ..build.vite import ViteOutput, find_vite
from ..localfs import Ignored, LocalFile, Scan, check_readable, check_writable
from ..manifest import Manifest
from ..media_types import is_compressible
from ..storage.base import RemoteObject
from .documents import Current
from .recognise import is_known_current, read_known
from .result import DeployOptions, LocalPaths
from .store import ReleaseStore

if TYPE_CHECKING:
    from .confirm import DeployObserver
    from .early import EarlyUploads
    from .variant_step import VariantPlan


@dataclass(frozen=True)
class OnDisk:
    """What the folders hold, read once before any file is: the walk, the hash cache (seeded
    with the hashes git vouches for), where each folder is served, what the checks before
    hashing parsed, Vite's build. Later phases take it instead of reading the folders again."""

    files: list[LocalFile]
    ignored: tuple[Ignored, ...]
    cache: HashCache
    #: Git blob ids of clean tracked files, and how many hashes they let the deploy reuse.
    blobs: dict[str, str]
    hashes_from_git: int
    #: Where each folder is served (resolves the references of CSS and JS).
    url_roots: UrlRoots
    texts: TextLinks | None
    #: A Vite build among the files (its files keep Vite's names), or ``None``.
    vite: ViteOutput | None
    #: Warnings found on the way (an unusable hash cache or record file).
    warnings: tuple[str, ...]

    @property
    def keep(self) -> frozenset[str]:
        """Logical paths of files named by content already (Vite's): their key is their name."""
        return self.vite.keep if self.vite is not None else frozenset()


@dataclass(frozen=True)
class InBucket:
    """What the bucket holds, as far as the deploy knows before hashing: the current release,
    and the listing when the path is "list first, upload while hashing"."""

    current: Current
    #: ``time.monotonic()`` before the listing: deletions after it are what confirmation
    #: looks for (:func:`pipeline.release.confirm.confirm_release`).
    started: float
    listing: dict[str, RemoteObject] | None

    @property
    def known(self) -> dict[str, str]:
        """The current release's ETags by key (uploads of the same bytes are skipped)."""
        return dict(self.current.doc.etags) if self.current.doc else {}


@dataclass(frozen=True)
class Hashed:
    """Every file hashed: the build, its manifest (with the variants the current release
    confirmed, when none is missing) and the variant plan."""

    built: Build
    manifest: Manifest
    sources: dict[str, LocalFile]
    vplan: VariantPlan | None
    #: Whether these files are the current release's, when hashing found out already:
    #: ``False`` when a compressible file has no sibling decision yet (publish anew),
    #: ``True`` when the sibling step recognised the release by digest; ``None``: compare.
    known_release: bool | None = None

    def is_release(self, current: Current) -> bool:
        """Whether these files are the current release's (then nothing needs uploading)."""
        if self.known_release is not None:
            return self.known_release
        return is_current(current, self.manifest)


def read_folders(folders: Mounts, options: DeployOptions, *,
                 scan: Scan | None = None) -> tuple[Scan, ViteOutput | None]:
    """The files of ``folders`` as the deploy takes them (its filters, its hard-link rule;
    ``scan`` when that walk was already made) and the Vite build among them.
    ``verify --repair`` calls this too: rebuilding the same files from the same folders is
    what makes its objects' names match the release's."""
    if scan is None:
        scan = folders.scan(options.filters, allow_hard_links=options.allow_hard_links)
    vite = find_vite(folders, present={f.logical_path for f in scan.files},
                     manifest_path=options.vite_manifest)
    return scan, vite


def prepare(folders: Mounts, store: ReleaseStore, paths: LocalPaths, options: DeployOptions,
            *, scan: Scan | None = None) -> tuple[OnDisk, InBucket]:
    """Scan the folders (unless ``scan`` is that walk, already made), read the current
    release, seed hashes git vouches for, refuse what needs no hash, and choose the path
    (list first or hash first)."""
    store.require_prefix()
    scan, vite = read_folders(folders, options, scan=scan)
    if not options.dry_run:
        check_writable(paths.manifest, "the local manifest")
    store.storage.check()
    known, problem = read_known(paths.record)
    current = store.read_current(known=known)
    disk, to_read = _on_disk(folders, scan, vite, current, store.prefix, paths, options,
                             problem)
    started = time.monotonic()
    listing = None
    if not options.dry_run and options.variants is None and _likely_new(to_read, current):
        # Files must be read and some are new: list first, so each can be uploaded as soon as
        # it is hashed. Variants are planned from every hash before any upload, so a bad
        # source image still stops the deploy before anything is stored.
        listing = store.list(hints=_release_keys(current))
    return disk, InBucket(current, started, listing)


def _on_disk(folders: Mounts, scan: Scan, vite: ViteOutput | None, current: Current,
             prefix: str, paths: LocalPaths, options: DeployOptions,
             problem: str | None) -> tuple[OnDisk, list[LocalFile]]:
    """The walk with the hash cache, git's blob ids (seeding the cache from ``current``)
    and the checks that need no hash; and the files whose bytes must be read."""
    files = scan.files
    cache = HashCache(paths.hash_cache)
    blobs = git_blob_ids(folders)
    from_git = reuse_git_hashes(files, blobs, current, cache)
    # The walk does not ask access() of every file (100,000 calls on a re-run that reads
    # none): only the files to be read are asked, before anything is read or uploaded.
    to_read = [item for item in files if needs_hashing(item, cache)]
    check_readable(to_read)
    url_roots = folders.url_roots
    texts = check_before_hashing(files, prefix=prefix, strict=options.strict,
                                 static_url_path=url_roots, cache=cache,
                                 keep=vite.keep if vite is not None else frozenset())
    disk = OnDisk(files, tuple(scan.ignored), cache, blobs, from_git, url_roots, texts, vite,
                  tuple(note for note in (cache.problem, problem) if note))
    return disk, to_read


def uploads_while_hashing(bucket: InBucket, store: ReleaseStore, options: DeployOptions,
                          observer: DeployObserver, *, keep: frozenset[str],
                          ) -> AbstractContextManager[EarlyUploads | None]:
    """Uploads that start while hashing when the bucket was listed first, else nothing."""
    if bucket.listing is None:
        return nullcontext(None)
    from .early import EarlyUploads  # only on this path: a warm re-run never imports it

    # The conditional-write probe refuses a server before the first early upload.
    probe = partial(store.require_conditional_writes, unsafe=options.unsafe_no_conditional_writes)
    return EarlyUploads(store.storage, store.prefix, bucket.listing, known_etags=bucket.known,
                        on_stored=observer.stored, before_first=probe, keep=keep)


def hash_files(disk: OnDisk, current: Current, store: ReleaseStore, options: DeployOptions,
               observer: DeployObserver, early: EarlyUploads | None,
               variant_cache: Path) -> Hashed:
    """Hash and name every file (offering each to ``early`` as its hash is known), then plan
    the variants from the hashes (encodes and probes are kept in ``variant_cache``)."""
    built = build(disk.files, prefix=store.prefix, cache=disk.cache, strict=options.strict,
                  static_url_path=disk.url_roots, texts=disk.texts,
                  on_hashed=early.offer if early is not None else None, vite=disk.vite)
    for warning in (*disk.warnings, *built.warnings):
        observer.warned(warning)
    manifest = built.manifest
    sources = {f.logical_path: f for f in disk.files}
    vplan = None
    if options.variants:
        manifest, vplan = _variant_plan(current, store, options, manifest, sources, variant_cache)
    known_release = None
    if options.precompress:
        manifest, known_release = _sibling_decisions(manifest, current)
    return Hashed(built, manifest, sources, vplan, known_release)


def _variant_plan(current: Current, store: ReleaseStore, options: DeployOptions,
                  manifest: Manifest, sources: dict[str, LocalFile], cache_dir: Path,
                  ) -> tuple[Manifest, VariantPlan]:
    """The variant plan from the hashes, and the manifest with the variants the current
    release confirmed when none is missing."""
    assert options.variants is not None
    # Imported only with variants on: a deploy without them never runs the variant step.
    from .placeholder_step import known_placeholders
    from .variant_step import known_sizes, plan_sources, with_variants

    # Only variants need the current release here: a recognised one is not decoded otherwise.
    released = current.doc.manifest if current.doc else None
    vplan = plan_sources(manifest, sources, options.variants, store.prefix, cache_dir,
                         save=not options.dry_run,
                         placeholders=known_placeholders(released, cache_dir))
    recorded = known_sizes(released)
    if vplan.keys() <= recorded.keys():  # every variant was confirmed by that release
        manifest = with_variants(manifest, vplan, recorded)
    return manifest, vplan


def _sibling_decisions(manifest: Manifest, current: Current) -> tuple[Manifest, bool | None]:
    """``manifest`` with the current release's sibling decisions for the same keys, and
    :attr:`Hashed.known_release`. A recognised release (by digest, not decoded) that decided
    every compressible entry equals it with all of them decided: it is that release (the
    digest is not computed again to say so)."""
    # Imported here: a deploy without precompression never loads the sibling decisions.
    from .sibling_decisions import assume_decided, with_recorded

    decided = assume_decided(manifest)
    if is_known_current(current, decided):
        return decided, True
    manifest = with_recorded(manifest, current.doc.manifest if current.doc else None)
    undecided = any(e.encodings is None and is_compressible(e.content_type)
                    for e in manifest.files.values())
    return manifest, False if undecided else None


def is_current(current: Current, manifest: Manifest) -> bool:
    """Whether ``manifest`` is the current release's (recognised bytes: by digest)."""
    recognised = is_known_current(current, manifest)
    if recognised is not None:
        return recognised
    doc = current.doc
    return doc is not None and doc.release_id is not None and doc.manifest == manifest


def _likely_new(to_read: list[LocalFile], current: Current) -> bool:
    """Whether a file to be read (its hash not cached) has a path or size the current release
    lacks: then something will be uploaded, and listing first lets it start while hashing.
    A fresh checkout of the released files (all to be read, all alike) is hashed first
    instead, and needs no listing when nothing changed. The cache answers first: on a
    warm re-run it answers for every file, and the release need not be decoded."""
    if not to_read:
        return False
    released = current.doc.manifest.files if current.doc is not None else {}
    for item in to_read:
        entry = released.get(item.logical_path)
        if entry is None or entry.size != item.size:
            return True
    return False


def _release_keys(current: Current) -> list[str]:
    """The current release's object keys: where a listing may split (they likely exist)."""
    if current.doc is None:
        return []
    return [entry.key for entry in current.doc.manifest.files.values()]


def reuse_git_hashes(files: list[LocalFile], blobs: dict[str, str], current: Current,
                     cache: HashCache) -> int:
    """Seed ``cache`` with the current release's SHA-256 of files git vouches are unchanged.

    ``blobs`` come from :func:`pipeline.build.gitindex.clean_blob_ids` (tracked, clean,
    unconverted files only); a file qualifies when its blob id and size equal what the
    release recorded for the same path. The release records blob ids only for files
    uploaded as they are (not rewritten CSS or JS), whose entry hash is the file's own
    SHA-256. Returns how many files will not be read: none when the hash cache already
    answers for every file git vouches for (the release is then not decoded for this).
    """
    if not blobs or not any(item.logical_path in blobs and needs_hashing(item, cache)
                            for item in files):
        return 0
    doc = current.doc
    if doc is None or not doc.git_blobs:
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
