"""``verify --repair``: re-upload what verify found missing or wrong, from the local files.

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
from ..build.vite import find_vite
from ..errors import DeployError
from ..keys import identity_key
from ..localfs import LocalFile, check_readable, collect_files
from ..storage.base import Storage, Upload
from ..validate import DEFAULT_STATIC_URL_PATH
from .plan import entry_upload
from .sibling_step import compressed, sibling_upload
from .store import ReleaseStore
from .variant_step import cached_variant
from .verify import Problem, VerifyReport


@dataclass(frozen=True)
class RepairResult:
    uploaded: tuple[str, ...]
    unrepairable: tuple[Problem, ...]


def repair(
    store: ReleaseStore, report: VerifyReport, *, static_dir: Path,
    hash_cache_path: Path | None, strict: bool = True,
    static_url_path: str = DEFAULT_STATIC_URL_PATH, allow_hard_links: bool = False,
    variant_cache: Path | None = None, vite_manifest: Path | None = None,
) -> RepairResult:
    """Upload a correct copy of every object with a problem that a local file (or, for an
    image variant, the local variant cache ``variant_cache``) can supply."""
    broken = {p.key: p for p in report.problems if p.path}
    if not broken:
        return RepairResult((), tuple(p for p in report.problems if not p.path))
    uploads = _variant_uploads(store, report, broken, variant_cache)
    broken = {key: p for key, p in broken.items() if key not in {u.key for u in uploads}}
    cache = HashCache(hash_cache_path)
    files = collect_files(static_dir, allow_hard_links=allow_hard_links)
    check_readable(item for item in files if needs_hashing(item, cache))
    vite = find_vite(Mounts.single(static_dir, static_url_path),  # Vite's names, as deployed
                     present={f.logical_path for f in files}, manifest_path=vite_manifest)
    built = build(files, prefix=store.prefix, cache=cache, strict=strict,
                  static_url_path=static_url_path, vite=vite)
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
