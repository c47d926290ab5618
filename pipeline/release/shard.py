"""``cdn-deploy variants --shard i/N``: the deploy's phases up to the variants, for one shard.

The same prepare and hash phases as a deploy (:mod:`pipeline.release.prepare`), one listing of
the prefix, then the variant phase for this shard's part of the sources
(:func:`pipeline.release.variant_phase.variant_phase`), its uploads, and nothing else: no
file uploads, no release, no current pointer, no local manifest. The deploy that runs after
every shard finds their variants in its listing and encodes none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..build.mounts import Mounts
from ..build.shards import Shard
from ..errors import ConfigError
from .confirm import DeployObserver, Silent, upload_all
from .prepare import hash_files, prepare
from .result import DeployOptions, LocalPaths
from .store import ReleaseStore
from .variant_phase import shard_plan, variant_phase


@dataclass(frozen=True)
class ShardResult:
    shard: Shard
    target: str
    #: Logical paths of the images this shard owns (whether or not they lacked variants).
    assigned: tuple[str, ...]
    #: Variants encoded here, and the keys uploaded (encoded here or from the local cache).
    encoded: int
    uploaded: tuple[str, ...]
    bytes_uploaded: int
    images_left: tuple[str, ...] = ()
    variants_left: int = 0
    encode_seconds: float = 0.0


def encode_shard(*, folders: Mounts, store: ReleaseStore, manifest_path: Path,
                 options: DeployOptions, shard: Shard,
                 observer: DeployObserver | None = None) -> ShardResult:
    """Encode and upload the missing variants of ``shard``'s images; publish nothing."""
    if options.variants is None:
        raise ConfigError("the variants command needs variant settings")
    observer = observer or Silent()
    paths = LocalPaths.of(manifest_path, options)
    disk, bucket = prepare(folders, store, paths, options)
    hashed = hash_files(disk, bucket.current, store, options, observer, None,
                        paths.variant_cache)
    disk.cache.save()
    assert hashed.vplan is not None
    existing = store.list(hints=sorted(hashed.vplan.keys()))
    made = variant_phase(hashed.vplan, hashed.built.manifest, existing,
                         cache_dir=paths.variant_cache, settings=options.variants,
                         observer=observer, dry_run=options.dry_run,
                         budget=options.variant_budget, shard=shard)
    stored = {} if options.dry_run else upload_all(store.storage, made.uploads, observer)
    return ShardResult(
        shard, store.description,
        tuple(source.logical_path for source in shard_plan(hashed.vplan, shard).sources),
        made.encoded, tuple(sorted(stored)), sum(upload.size for upload in made.uploads
                                                 if upload.key in stored),
        made.images_left, made.variants_left, made.encode_seconds)
