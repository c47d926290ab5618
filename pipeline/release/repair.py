"""``verify --repair``: re-upload what verify found missing or wrong, from the deployed folders.

Objects are named by their content, so the local file whose current content hashes
to the broken object's key is exactly the bytes that belong there; a key no local
file produces any more (the release is older than the working tree) cannot be
repaired from here, and is reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..build.assemble import Build, build, needs_hashing
from ..build.compress import available_encodings
from ..build.fingerprint import HashCache
from ..build.mounts import Mounts
from ..errors import DeployError
from ..keys import identity_key
from ..localfs import LocalFile, check_readable
from ..storage.base import Storage, Upload
from .plan import entry_upload
from .prepare import read_folders
from .result import DeployOptions
from .sibling_step import compressed, sibling_upload
from .store import ReleaseStore
from .variant_step import cached_variant
from .verify import Problem, VerifyReport


@dataclass(frozen=True)
class RepairResult:
    uploaded: tuple[str, ...]
    unrepairable: tuple[Problem, ...]


def repair(store: ReleaseStore, report: VerifyReport, *, folders: Mounts, options: DeployOptions,
           variant_cache: Path | None = None) -> RepairResult:
    """Upload a correct copy of every object with a problem that a local file (or, for an
    image variant, the local variant cache ``variant_cache``) can supply.

    ``folders`` and ``options`` are the deploy's (every blueprint's folder, its filters):
    the files are read exactly as the deploy read them (:func:`.prepare.read_folders`), so
    a blueprint's file is found and an excluded one is never read nor uploaded."""
    broken = {p.key: p for p in report.problems if p.path}
    if not broken:
        return RepairResult((), tuple(p for p in report.problems if not p.path))
    uploads = _variant_uploads(store, report, broken, variant_cache)
    broken = {key: p for key, p in broken.items() if key not in {u.key for u in uploads}}
    cache = HashCache(options.hash_cache_path)
    scan, vite = read_folders(folders, options)
    files = scan.files
    check_readable(item for item in files if needs_hashing(item, cache))
    built = build(files, prefix=store.prefix, cache=cache, strict=options.strict,
                  static_url_path=folders.url_roots, vite=vite)
    sources = {f.logical_path: f for f in files}
    local = {entry.key: path for path, entry in built.manifest.files.items()}
    for key in sorted(broken):
        path = local.get(key)
        if path is None:
            continue
        entry = built.manifest.files[path]
        uploads.append(entry_upload(entry, sources[path], built.bodies.get(path)))
    uploads += _sibling_uploads(report, broken, built, sources, local)
    cache.save()
    _upload(store.storage, uploads)
    done = {u.key for u in uploads}
    left = [p for p in report.problems if p.key not in done]
    return RepairResult(tuple(sorted(done)), tuple(left))


def _sibling_uploads(report: VerifyReport, broken: Mapping[str, Problem], built: Build,
                     sources: Mapping[str, LocalFile], local: Mapping[str, str]) -> list[Upload]:
    """Broken precompressed siblings made again from the local file whose object they belong
    to, when the bytes come out at the recorded size (compression is deterministic for one
    encoder version; another size needs a new release: ``deploy --relist``)."""
    recorded = {s.key: s for entry in report.doc.manifest.files.values()
                for s in entry.encodings or ()}
    uploads = []
    for key in sorted(k for k in broken if k in recorded):
        path = local.get(identity_key(key))
        if path is None:
            continue
        entry, sibling = built.manifest.files[path], recorded[key]
        if sibling.encoding not in available_encodings():
            continue
        for encoded in compressed(entry, sources[path], built.bodies.get(path),
                                  (sibling.encoding,)):
            if len(encoded.data) == sibling.size:
                uploads.append(sibling_upload(entry, sources[path], encoded))
    return uploads


def _variant_uploads(store: ReleaseStore, report: VerifyReport, broken: Mapping[str, Problem],
                     cache_dir: Path | None) -> list[Upload]:
    """Uploads of the broken variants found in the local cache with their recorded size
    (one encoded by an earlier deploy on this machine); the others stay broken."""
    if cache_dir is None:
        return []
    variants = {v.key: v for entry in report.doc.manifest.files.values() for v in entry.variants}
    found = (cached_variant(cache_dir, store.prefix, variants[key])
             for key in sorted(broken) if key in variants)
    return [upload for upload in found if upload is not None]


def _upload(storage: Storage, uploads: Sequence[Upload]) -> None:
    outcome = storage.upload_files(uploads)
    if outcome.failures:
        first = outcome.failures[0]
        raise DeployError(
            f"{len(outcome.failures)} repair upload(s) failed, first: {first.key}: "
            f"{first.message}; run verify again to see what is still wrong"
        )
