"""The deploy itself: collect, fingerprint, plan, upload, confirm, record, publish.

The manifest is published last and only when every object it names is confirmed
in storage (already listed with the right size, or stored by this run), so a
failed or interrupted deploy leaves the previous manifest, local and remote, in
place. Objects are never deleted here: old releases keep working (rollback).

Order of writes, each safe to be killed after: objects, then the immutable release
object (:mod:`pipeline.release.store`), then the current manifest (conditional on the
ETag read at the start; a lost race retries, last writer wins), then the local
manifest. A kill between the release and the manifest leaves a complete release
that is simply not current; the re-run publishes its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ..build.fingerprint import HashCache
from ..errors import ConfigError, DeployError, ManifestError
from ..localfs import Ignored, check_writable, display_name, scan_files, write_atomic
from ..manifest import Manifest, build, manifest_key
from ..media_types import IMMUTABLE_CACHE_CONTROL
from ..pathfilter import PathFilter
from ..storage.base import Storage, Upload
from .documents import (
    Current,
    ReleaseDoc,
    make_release,
    read_current,
    release_ids,
    release_key,
)
from .plan import Plan, RemoteObject, missing_keys, plan_deploy
from .store import point_current, store_release


class DeployObserver(Protocol):
    """Receives progress; the CLI renders it, tests may record it."""

    def planned(self, plan: Plan) -> None: ...

    def stored(self, upload: Upload) -> None: ...

    def warned(self, message: str) -> None: ...


class _Silent:
    def planned(self, plan: Plan) -> None:
        pass

    def stored(self, upload: Upload) -> None:
        pass

    def warned(self, message: str) -> None:
        pass


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

    @property
    def uploaded(self) -> int:
        return 0 if self.dry_run else len(self.plan.uploads)

    @property
    def bytes_uploaded(self) -> int:
        return 0 if self.dry_run else self.plan.bytes_to_upload


def deploy(
    *,
    static_dir: Path,
    prefix: str,
    storage: Storage,
    manifest_path: Path,
    hash_cache_path: Path | None,
    dry_run: bool = False,
    strict: bool = True,
    relist: bool = False,
    observer: DeployObserver | None = None,
    filters: PathFilter | None = None,
) -> DeployResult:
    """Publish ``static_dir`` to ``storage`` under ``prefix``; see the module docstring.

    When the files equal the current release, nothing is listed or written remotely:
    a release is only published once all its objects were confirmed, so there is
    nothing to upload. Objects deleted behind the deploy's back are what ``verify``
    (or ``relist=True``) finds.
    """
    observer = observer or _Silent()
    scan = scan_files(static_dir, filters)
    files = scan.files
    if not dry_run:
        check_writable(manifest_path, "the local manifest")
    storage.check()
    cache = HashCache(hash_cache_path)
    built = build(files, prefix=prefix, cache=cache, strict=strict)
    for warning in built.warnings:
        observer.warned(warning)
    manifest = built.manifest
    check_key_lengths(manifest)
    sources = {f.logical_path: f.path for f in files}
    current = read_current(storage, prefix)
    if not relist and _is_current(current, manifest):
        return _unchanged(current, manifest, sources, observer, cache, manifest_path,
                          key=manifest_key(prefix), target=storage.description, dry_run=dry_run,
                          ignored=tuple(scan.ignored))
    existing = storage.list_keys(prefix, hints=[e.key for e in manifest.files.values()])
    known = dict(current.doc.etags) if current.doc else {}
    plan = plan_deploy(manifest, sources, existing, known_etags=known)
    observer.planned(plan)
    ids = release_ids(existing, prefix)
    result = DeployResult(
        manifest, plan, manifest_path, manifest_key(prefix), storage.description, dry_run,
        current_release=current.release_id, ignored=tuple(scan.ignored),
        current_is_rollback=bool(current.release_id and ids and ids[-1] > current.release_id),
    )
    if dry_run:
        # What the real run would do: publish unless these files are the current release.
        return replace(result, new_release=not _is_current(current, manifest))

    uploads = [
        Upload(
            key=item.entry.key,
            source=item.source,
            size=item.entry.size,
            content_type=item.entry.content_type,
            cache_control=IMMUTABLE_CACHE_CONTROL,
            body=built.bodies.get(item.logical_path),
        )
        for item in plan.uploads
    ]
    outcome = storage.upload_files(uploads, on_stored=observer.stored)
    cache.save()  # hashes are right even if uploads failed; the next run reuses them
    if outcome.failures:
        first = outcome.failures[0]
        raise DeployError(
            f"{len(outcome.failures)} upload(s) failed after retries "
            f"({outcome.not_attempted} not attempted), first: {first.key}: {first.message}; "
            "nothing was published, the previous manifest is still current"
        )
    confirmed = {**existing, **outcome.stored}
    missing = missing_keys(manifest, confirmed)
    if missing:
        raise DeployError(
            f"{len(missing)} object(s) could not be confirmed in {storage.description}, "
            f"first: {missing[0]}; the manifest was not published"
        )
    doc, new = _release_for(storage, prefix, manifest, current, existing, confirmed)
    conflicts = point_current(storage, prefix, doc, expected=current, retry=True)
    try:
        write_local_manifest(manifest_path, doc)
    except ManifestError as exc:
        raise DeployError(
            f"release {doc.release_id} is live, but {exc}; fix that and run the deploy again "
            f"(it uploads nothing and writes the manifest), or download {manifest_key(prefix)!r} "
            "from the target"
        ) from exc
    previous = current.release_id if doc.release_id != current.release_id else None
    return replace(result, release_id=doc.release_id, new_release=new, conflicts=conflicts,
                   previous_release=previous)


#: S3's limit on the UTF-8 length of an object key.
MAX_KEY_BYTES = 1024


def check_key_lengths(manifest: Manifest) -> None:
    """Refuse, before any upload, a file whose object key S3 would reject."""
    for logical_path, entry in manifest.files.items():
        if len(entry.key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ConfigError(
                f"the object key of {display_name(logical_path)} would be "
                f"{len(entry.key.encode('utf-8'))} bytes; S3 allows {MAX_KEY_BYTES}: shorten "
                "its name or folders (or the prefix), or --exclude it"
            )


def _is_current(current: Current, manifest: Manifest) -> bool:
    doc = current.doc
    return doc is not None and doc.release_id is not None and doc.manifest == manifest


def _unchanged(
    current: Current, manifest: Manifest, sources: dict[str, Path], observer: DeployObserver,
    cache: HashCache, manifest_path: Path, *, key: str, target: str, dry_run: bool,
    ignored: tuple[Ignored, ...],
) -> DeployResult:
    """Nothing changed since the current release: plan it all unchanged, write locally only."""
    assert current.doc is not None
    listed = {entry.key: RemoteObject(size=entry.size) for entry in manifest.files.values()}
    plan = plan_deploy(manifest, sources, listed)
    observer.planned(plan)
    result = DeployResult(manifest, plan, manifest_path, key, target, dry_run,
                          current_release=current.release_id, ignored=ignored)
    if dry_run:
        return result
    cache.save()
    write_local_manifest(manifest_path, current.doc)
    return replace(result, release_id=current.release_id, new_release=False)


def _release_for(
    storage: Storage, prefix: str, manifest: Manifest, current: Current,
    existing: dict[str, RemoteObject], confirmed: dict[str, RemoteObject],
) -> tuple[ReleaseDoc, bool]:
    """The current release again if nothing changed, else a newly stored one."""
    doc = current.doc
    if (doc is not None and doc.release_id is not None and doc.manifest == manifest
            and release_key(prefix, doc.release_id) in existing):
        return doc, False
    etags = {key: remote.etag for key, remote in confirmed.items()}
    return store_release(storage, prefix, make_release(manifest, etags)), True


def write_local_manifest(path: Path, doc: ReleaseDoc) -> None:
    """The same bytes as the published manifest, written atomically for the Flask app.

    An identical file is left alone: rewriting it would bump its mtime, and apps that
    reload on change would reload for nothing.
    """
    data = doc.to_json()
    try:
        if path.is_file() and path.read_bytes() == data:
            return
        write_atomic(path, data, unique=True)  # concurrent deploys in one process
    except OSError as exc:
        raise ManifestError(f"cannot write manifest {str(path)!r}: {exc.strerror}") from exc
