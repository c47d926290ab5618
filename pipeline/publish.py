"""The deploy itself: collect, fingerprint, plan, upload, confirm, publish.

The manifest is published last and only when every object it names is confirmed
in storage (already listed with the right size, or stored by this run), so a
failed or interrupted deploy leaves the previous manifest, local and remote, in
place. Objects are never deleted here: old releases keep working (rollback).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import DeployError
from .fingerprint import HashCache
from .localfs import collect_files
from .manifest import Manifest, build, manifest_key
from .media_types import IMMUTABLE_CACHE_CONTROL, MANIFEST_CACHE_CONTROL, content_type_for
from .plan import Plan, missing_keys, plan_deploy
from .storage.base import Storage, Upload


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
    observer: DeployObserver | None = None,
) -> DeployResult:
    """Publish ``static_dir`` to ``storage`` under ``prefix``; see the module docstring."""
    observer = observer or _Silent()
    files = collect_files(static_dir)
    storage.check()
    cache = HashCache(hash_cache_path)
    built = build(files, prefix=prefix, cache=cache, strict=strict)
    for warning in built.warnings:
        observer.warned(warning)
    manifest = built.manifest
    existing = storage.list_objects(prefix)
    plan = plan_deploy(manifest, {f.logical_path: f.path for f in files}, existing)
    observer.planned(plan)
    result = DeployResult(manifest, plan, manifest_path, manifest_key(prefix),
                          storage.description, dry_run)
    if dry_run:
        return result

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
    missing = missing_keys(manifest, {**existing, **outcome.stored})
    if missing:
        raise DeployError(
            f"{len(missing)} object(s) could not be confirmed in {storage.description}, "
            f"first: {missing[0]}; the manifest was not published"
        )
    storage.put_bytes(
        result.manifest_key,
        manifest.to_json(),
        content_type=content_type_for(result.manifest_key),
        cache_control=MANIFEST_CACHE_CONTROL,
    )
    manifest.save(manifest_path)
    return result
