"""The deploy's variant step: plan keys from hashes and headers, find the missing ones in the one
listing, take them from the local cache or encode them, and complete the manifest.

Planning needs no pixels (:func:`pipeline.build.variants.plan_variants` on the content hash and
the header), so an unchanged image costs one header read per deploy; a re-deploy, or a fresh
checkout whose bucket already has the variants, encodes nothing. Every planned variant is stored
(see :func:`pipeline.build.variants.missing_specs`), so "in the listing" decides per key.
Encoded files are kept under the local cache folder (``build/variants`` by default, the folder
the development route uses too), named by key, so a re-run does not encode them again either.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..build.variants import (
    SourceInfo,
    VariantSettings,
    VariantSpec,
    has_dimensions,
    is_candidate,
    plan_variants,
)
from ..errors import ImageSourceError, UnreadableImageError
from ..keys import object_key
from ..localfs import StrPath, write_atomic
from ..manifest import Entry, Manifest, Placeholder, Variant
from ..media_types import IMMUTABLE_CACHE_CONTROL
from ..storage.base import RemoteObject, Upload


@dataclass(frozen=True)
class SourcePlan:
    """One source image: its intrinsic size and planned variants (keys relative to the prefix)."""

    logical_path: str
    #: The walked file (read through pipeline.walked.open_walked), or a plain path.
    path: StrPath
    width: int
    height: int
    specs: tuple[VariantSpec, ...]
    #: Content hash; whether the image gets a placeholder (opaque, with variants), and the
    #: one already known for it (:mod:`pipeline.release.placeholder_step`).
    digest: str = ""
    wants_placeholder: bool = False
    placeholder: Placeholder | None = None

    @property
    def needs_placeholder(self) -> bool:
        return self.wants_placeholder and self.placeholder is None


@dataclass(frozen=True)
class VariantPlan:
    prefix: str
    sources: tuple[SourcePlan, ...]

    def key(self, spec: VariantSpec) -> str:
        return object_key(self.prefix, spec.key)

    def keys(self) -> set[str]:
        return {self.key(spec) for source in self.sources for spec in source.specs}


@dataclass(frozen=True)
class Missing:
    """What the listing lacks: per source, the specs to encode; and those found in the cache."""

    encode: tuple[tuple[SourcePlan, tuple[VariantSpec, ...]], ...]
    cached: tuple[VariantSpec, ...]

    @property
    def encode_count(self) -> int:
        return sum(len(specs) for _, specs in self.encode)


#: Header facts by content hash, so an unchanged image is not even opened again.
PROBE_CACHE_NAME = "probes.json"
#: Content hashes of ``.png``/``.jpg``/... files no loader could read (a sorted JSON list): a
#: non-candidate among them is not probed again on every deploy (it only wanted its
#: dimensions). A file of its own, so readers of ``probes.json`` keep reading it; delete the
#: cache folder to probe them again (after a libvips that reads more formats, say).
UNREADABLE_CACHE_NAME = "probes-unreadable.json"


def cached_variant(cache_dir: Path, prefix: str, variant: Variant) -> Upload | None:
    """The upload of ``variant`` (a manifest record, full key) from the local cache, if the
    file there has the recorded size: the key names the source's hash and the encoding
    parameters, so the file named by it holds those bytes."""
    path = cache_dir / variant.key.removeprefix(prefix + "/")
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size != variant.size or not path.is_file():
        return None
    return Upload(key=variant.key, source=path, size=size, content_type=variant.content_type,
                  cache_control=IMMUTABLE_CACHE_CONTROL)


def plan_sources(manifest: Manifest, sources: Mapping[str, StrPath], settings: VariantSettings,
                 prefix: str, cache_dir: Path, *, save: bool = True,
                 placeholders: Mapping[str, Placeholder] | None = None) -> VariantPlan:
    """Probe (header only; remembered by content hash under ``cache_dir`` unless ``save`` is
    false, as on a dry run, which writes nothing) every raster image for its dimensions, and
    plan the variants of those the globs select. A bomb or an unreadable image raises
    :class:`~pipeline.errors.ImageSourceError` (exit 2) before anything is uploaded.

    An image with variants and no alpha channel wants a placeholder, taken from
    ``placeholders`` (by content hash) when known. One with an alpha channel gets none: a
    colour behind it would show through its transparent pixels."""
    probes = _load_probes(cache_dir / PROBE_CACHE_NAME)
    unreadable = _load_unreadable(cache_dir / UNREADABLE_CACHE_NAME)
    probed, unreadable_before = len(probes), len(unreadable)
    planned = list[SourcePlan]()
    for logical in sorted(manifest.files):
        if not has_dimensions(logical):
            continue
        candidate = is_candidate(logical, settings)
        path, entry = sources[logical], manifest.files[logical]
        info = _source_info(entry.hash, path, settings, candidate=candidate, probes=probes,
                            unreadable=unreadable)
        if info is None:
            continue  # only its dimensions were wanted, and no loader reads it: left out
        specs = tuple(plan_variants(entry.hash, info, settings)) if candidate else ()
        wants = bool(specs) and not info.has_alpha
        known = (placeholders or {}).get(entry.hash) if wants else None
        planned.append(SourcePlan(logical, path, info.width, info.height, specs, entry.hash,
                                  wants, known))
    if len(probes) != probed and save:
        _save_probes(cache_dir / PROBE_CACHE_NAME, probes)
    if len(unreadable) != unreadable_before and save:
        _save_unreadable(cache_dir / UNREADABLE_CACHE_NAME, unreadable)
    return VariantPlan(prefix, tuple(planned))


def _source_info(content_hash: str, path: StrPath, settings: VariantSettings, *,
                 candidate: bool, probes: dict[str, SourceInfo],
                 unreadable: set[str]) -> SourceInfo | None:
    """The image's dimensions and alpha: remembered in ``probes``, else probed now and added
    there. ``None`` for an image only wanted for its dimensions that no loader reads (added
    to ``unreadable``, so it is not probed again); a variant candidate raises instead."""
    info = probes.get(content_hash)
    if info is not None:
        if info.width * info.height > settings.max_source_pixels:
            raise ImageSourceError(f"{path}: {info.width}x{info.height} is over the limit of "
                                   f"{settings.max_source_pixels:,} pixels")
        return info
    if not candidate and content_hash in unreadable:
        return None  # no loader read these bytes last time; a candidate probes again to fail
    from ..build.variant_codec import probe  # pyvips only when an image is new

    try:
        info = probes[content_hash] = probe(path, settings)
    except ImageSourceError as exc:
        if candidate:
            raise
        if isinstance(exc, UnreadableImageError):
            unreadable.add(content_hash)
        return None
    return info


def _load_probes(path: Path) -> dict[str, SourceInfo]:
    try:
        raw = json.loads(path.read_bytes())
        return {digest: SourceInfo(**fields) for digest, fields in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # no cache or a damaged one: probe again


def _load_unreadable(path: Path) -> set[str]:
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return set()
    return {digest for digest in raw if isinstance(digest, str)} if isinstance(raw, list) else set()


def _save_unreadable(path: Path, digests: set[str]) -> None:
    with contextlib.suppress(OSError):  # only a cache: the next deploy probes again
        write_atomic(path, json.dumps(sorted(digests)).encode(), unique=True)


def _save_probes(path: Path, probes: Mapping[str, SourceInfo]) -> None:
    data = {digest: asdict(info) for digest, info in sorted(probes.items())}
    with contextlib.suppress(OSError):  # only a cache: the next deploy probes again
        write_atomic(path, json.dumps(data, sort_keys=True).encode(), unique=True)


def known_sizes(manifest: Manifest | None) -> dict[str, int]:
    """Variant key -> size recorded by a release (confirmed when it was published)."""
    if manifest is None:
        return {}
    return {v.key: v.size for entry in manifest.files.values() for v in entry.variants}


def find_missing(plan: VariantPlan, existing: Mapping[str, RemoteObject],
                 cache_dir: Path) -> Missing:
    """The planned keys not in the listing, split into cached locally and to be encoded; a key
    two sources share (the same bytes under two names) is taken once."""
    encode: list[tuple[SourcePlan, tuple[VariantSpec, ...]]] = []
    cached: list[VariantSpec] = []
    claimed: set[str] = set()
    for source in plan.sources:
        todo = []
        for spec in source.specs:
            if plan.key(spec) in existing or spec.key in claimed:
                continue
            claimed.add(spec.key)
            if (cache_dir / spec.key).is_file():
                cached.append(spec)
            else:
                todo.append(spec)
        if todo or source.needs_placeholder:  # a placeholder alone is a job too
            encode.append((source, tuple(todo)))
    return Missing(tuple(encode), tuple(cached))


def encode_missing(missing: Missing, settings: VariantSettings, cache_dir: Path, *,
                   deadline: float | None = None,
                   on_encoded: Callable[[str, int, int], None] | None = None,
                   ) -> tuple[int, dict[str, Placeholder]]:
    """Encode what is missing into ``cache_dir`` on every core, stopping at ``deadline`` (see
    :func:`pipeline.build.variant_pool.encode_within`), and make the placeholders not known
    yet; returns the variants now in the cache (those of jobs stopped half-way too: each file
    is complete once it has its name) and the placeholders made, by content hash."""
    if not missing.encode:
        return 0, {}
    from ..build.variant_pool import EncodeJob, encode_within

    names = {str(source.path): source.logical_path for source, _ in missing.encode}
    total, done = len(missing.encode), 0

    def progress(result: object) -> None:
        nonlocal done
        done += 1
        if on_encoded is not None:
            on_encoded(names.get(getattr(result, "source", ""), "?"), done, total)

    jobs = [EncodeJob(source.path, specs, source.needs_placeholder)
            for source, specs in missing.encode]
    results = encode_within(jobs, settings=settings, out_dir=cache_dir, deadline=deadline,
                            progress=progress).results
    digests = {str(source.path): source.digest for source, _ in missing.encode}
    made = {digests[result.source]: result.placeholder for result in results
            if result.placeholder is not None}
    written = sum((cache_dir / spec.key).is_file()
                  for _, specs in missing.encode for spec in specs)
    return written, made


def uploads_for(plan: VariantPlan, missing: Missing, cache_dir: Path) -> list[Upload]:
    """One immutable upload per missing variant now in the local cache (after a budget ran
    out, some are not)."""
    specs = [*missing.cached, *(spec for _, specs in missing.encode for spec in specs)]
    uploads = []
    for spec in specs:
        try:
            size = (cache_dir / spec.key).stat().st_size
        except FileNotFoundError:
            continue
        uploads.append(Upload(key=plan.key(spec), source=cache_dir / spec.key, size=size,
                              content_type=spec.content_type,
                              cache_control=IMMUTABLE_CACHE_CONTROL))
    return uploads


def with_variants(manifest: Manifest, plan: VariantPlan, sizes: Mapping[str, int],
                  made: Mapping[str, Placeholder] | None = None) -> Manifest:
    """``manifest`` with each planned source's width and height, and its variants (sizes by
    full key) and placeholder (known, or in ``made`` by hash) when every variant has a size; a
    source still lacking some gets neither yet, so pages show its original
    (:func:`pipeline.flaskext.pictures.picture` gives it a plain ``<img>``)."""
    files: dict[str, Entry] = dict(manifest.files)
    for source in plan.sources:
        complete = is_complete(plan, source, sizes)
        variants = tuple(Variant(plan.key(s), s.width, s.height, s.content_type,
                                 sizes[plan.key(s)]) for s in source.specs) if complete else ()
        placeholder = source.placeholder or (made or {}).get(source.digest)
        files[source.logical_path] = replace(files[source.logical_path], width=source.width,
                                             height=source.height, variants=variants,
                                             placeholder=placeholder
                                             if source.wants_placeholder and complete else None)
    return Manifest(files)


def is_complete(plan: VariantPlan, source: SourcePlan, sizes: Mapping[str, int]) -> bool:
    """Whether every planned variant of ``source`` is stored (has a size)."""
    return all(plan.key(spec) in sizes for spec in source.specs)


def lacking(plan: VariantPlan, source: SourcePlan, sizes: Mapping[str, int]) -> int:
    """How many planned variants of ``source`` are not stored (have no size)."""
    return sum(plan.key(spec) not in sizes for spec in source.specs)
