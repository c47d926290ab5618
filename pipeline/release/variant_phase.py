"""The deploy's variant phase: from the plan and the one listing to the uploads and the manifest
with variants, within an optional time budget, for all sources or one shard's.

A budget (``--variant-budget``) bounds the encoding: no encode starts after it, and those
running when it ends are stopped (:func:`pipeline.build.variant_pool.encode_within`), so a deploy
never runs longer than budget + uploads because of images, however large one is. The variants
finished by then are uploaded (those of an image stopped half-way too: the next run finds them in
the listing and encodes only the rest); the manifest names variants only for images whose every
variant is stored, and the others keep their original until a later run completes them.

A shard (``cdn-deploy variants --shard i/N``) encodes and uploads the missing variants of its own
part of the sources (:mod:`pipeline.build.shards`) and publishes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..build.shards import Shard, assign, part
from ..build.variants import VariantSettings
from ..errors import DeployError
from ..manifest import Manifest
from ..storage.base import RemoteObject, Upload
from .confirm import DeployObserver
from .placeholder_step import remember_placeholders
from .variant_step import (
    SourcePlan,
    VariantPlan,
    encode_missing,
    find_missing,
    is_complete,
    lacking,
    uploads_for,
    with_variants,
)


@dataclass(frozen=True)
class VariantOutcome:
    """What the phase did: the manifest with the variants stored, their uploads, the count
    encoded, and the images (of those this run was responsible for) still lacking some."""

    manifest: Manifest
    uploads: tuple[Upload, ...]
    encoded: int
    #: Logical paths of images with variants planned but not all stored (budget ran out).
    images_left: tuple[str, ...] = ()
    #: Their variants not stored yet.
    variants_left: int = 0
    #: Wall time spent encoding (0 when nothing was encoded).
    encode_seconds: float = 0.0


def variant_phase(vplan: VariantPlan, manifest: Manifest, existing: Mapping[str, RemoteObject],
                  *, cache_dir: Path, settings: VariantSettings, observer: DeployObserver,
                  dry_run: bool, budget: float | None = None,
                  shard: Shard | None = None) -> VariantOutcome:
    """Find the variants the listing lacks (of ``shard``'s sources only, if given), encode
    those not cached within ``budget`` seconds (none on a dry run), and return the outcome."""
    owned = vplan if shard is None else shard_plan(vplan, shard)
    missing = find_missing(owned, existing, cache_dir)
    if budget == 0 and not dry_run:  # a zero budget encodes nothing: not even a pool starts
        missing = replace(missing, encode=())
    sources = sum(1 for _, specs in missing.encode if specs)  # not placeholder-only jobs
    observer.encoding(sources, missing.encode_count, dry_run=dry_run)
    if dry_run:
        return VariantOutcome(manifest, (), missing.encode_count)
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    encoded, made = encode_missing(missing, settings, cache_dir, deadline=deadline,
                                   on_encoded=observer.encoded)
    remember_placeholders(cache_dir, made)
    seconds = time.monotonic() - started if missing.encode else 0.0
    uploads = uploads_for(owned, missing, cache_dir)
    observer.variants_ready(len(uploads), sum(upload.size for upload in uploads))
    sizes = {key: remote.size for key, remote in existing.items()}
    sizes.update((upload.key, upload.size) for upload in uploads)
    left = [source for source in owned.sources if not is_complete(owned, source, sizes)]
    if left and budget is None:  # every encode ran to the end: each variant must be there
        raise DeployError(f"the variants of {left[0].logical_path} were not all written to "
                          f"{cache_dir}; nothing was published")
    return VariantOutcome(
        with_variants(manifest, vplan, sizes, made), tuple(uploads), encoded,
        images_left=tuple(source.logical_path for source in left),
        variants_left=sum(lacking(owned, source, sizes) for source in left),
        encode_seconds=seconds)


def unit_name(source: SourcePlan) -> str:
    """What a shard owns: the source's first variant key, the same for two files with the same
    bytes (their variants are one set of objects, encoded by one shard)."""
    return min(spec.key for spec in source.specs)


def shard_weights(vplan: VariantPlan) -> dict[str, int]:
    """Unit name -> output pixels of its planned variants (what encoding time follows)."""
    return {unit_name(source): sum(spec.width * spec.height for spec in source.specs)
            for source in vplan.sources if source.specs}


def shard_plan(vplan: VariantPlan, shard: Shard) -> VariantPlan:
    """The plan of ``shard``'s sources only (see :mod:`pipeline.build.shards` for why the
    split is made over every planned source, not over what the listing lacks)."""
    weights = shard_weights(vplan)
    mine = part(weights, assign(weights, shard.count), shard)
    return replace(vplan, sources=tuple(source for source in vplan.sources
                                        if source.specs and unit_name(source) in mine))
