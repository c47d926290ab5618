"""Precompressed siblings at deploy: which each compressible entry has, and what to upload.

Every entry whose type is compressible (:func:`pipeline.build.compress.compressible`) gets
the representations worth keeping, stored beside its object (``<key>.br``, ``<key>.gz``:
:func:`pipeline.keys.encoded_key`) and recorded in its manifest entry (``encodings``). A
file is compressed only when the bucket lacks one of its siblings and no earlier release
decided it was not worth keeping, so:

- a re-deploy of unchanged files compresses nothing (the decisions of the current release
  are copied by :func:`pipeline.release.sibling_decisions.with_recorded`, so the manifest
  equals the release's and nothing is even listed);
- a fresh checkout against a bucket that has the siblings compresses nothing (the listing
  the deploy already makes shows them; their sizes come from it);
- ``--relist`` re-decides what a release recorded as not kept (a deploy made without
  brotli recorded gzip only; installed later, ``--relist`` adds the brotli siblings).

The siblings are planned against the same listing as the files, uploaded with them and
confirmed before the release is published (:func:`pipeline.release.plan.missing_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..build import compress
from ..extras import install_hint
from ..keys import ENCODING_SUFFIXES, encoded_key
from ..localfs import StrPath
from ..manifest import Entry, Manifest, Sibling
from ..media_types import IMMUTABLE_CACHE_CONTROL, is_compressible
from ..storage.base import RemoteObject, Upload, verified_bytes
from .plan import entry_upload
from .sibling_decisions import with_encodings

#: Threads compressing at once: brotli and zlib release the GIL while they work.
COMPRESS_WORKERS = 4
#: Said once per deploy (not per file) when brotli siblings cannot be made.
NO_BROTLI = (f"brotli is not installed: precompressed siblings are gzip only "
             f"({install_hint('compress')} adds them)")


@dataclass(frozen=True)
class SiblingPlan:
    """The manifest with every compressible entry's siblings, and the ones to upload."""

    manifest: Manifest
    uploads: list[Upload]
    #: Files compressed by this run.
    compressed: int


def plan_siblings(manifest: Manifest, sources: Mapping[str, StrPath],
                  bodies: Mapping[str, bytes], existing: Mapping[str, RemoteObject],
                  *, relist: bool) -> SiblingPlan:
    """Decide each compressible entry's siblings against the listing ``existing``,
    compressing (in a few threads) only what neither the listing nor a decision covers."""
    compressible = {path: entry for path, entry in manifest.files.items()
                    if is_compressible(entry.content_type)}
    wanted = {path: todo for path, entry in compressible.items()
              if (todo := _to_compress(entry, existing, relist=relist))}
    from concurrent.futures import ThreadPoolExecutor  # only when something is compressed

    with ThreadPoolExecutor(max_workers=COMPRESS_WORKERS) as pool:
        made = dict(zip(wanted, pool.map(
            lambda path: compressed(manifest.files[path], sources[path], bodies.get(path),
                                     wanted[path]), wanted), strict=True))
    files: dict[str, Entry] = {}
    uploads: list[Upload] = []
    for path, entry in manifest.files.items():
        if path not in compressible:
            files[path] = with_encodings(entry, None)
            continue
        new = [sibling_upload(entry, sources[path], encoded) for encoded in made.get(path, ())]
        uploads += new
        files[path] = with_encodings(entry, _siblings(entry, existing, new))
    return SiblingPlan(replace(manifest, files=files), uploads, len(wanted))


def _to_compress(entry: Entry, existing: Mapping[str, RemoteObject], *,
                 relist: bool) -> tuple[str, ...]:
    """The encodings this install can make that the bucket lacks and no decision excludes."""
    todo = []
    for encoding in compress.available_encodings():
        recorded = entry.sibling(encoding)
        listed = existing.get(encoded_key(entry.key, encoding))
        if listed is not None and (recorded is None or recorded.size == listed.size):
            continue  # stored (a size unlike the recorded one: damaged, made again)
        if entry.encodings is not None and recorded is None and not relist:
            continue  # compressed before and not worth keeping
        todo.append(encoding)
    return tuple(todo)


def compressed(entry: Entry, source: StrPath, body: bytes | None,
               encodings: tuple[str, ...]) -> tuple[compress.Encoded, ...]:
    """The kept representations of the entry's bytes (read and checked against its hash)."""
    return compress.encode(verified_bytes(entry_upload(entry, source, body)), encodings=encodings)


def sibling_upload(entry: Entry, source: StrPath, encoded: compress.Encoded) -> Upload:
    """The upload of one sibling (its bytes in memory; ``source`` names the file in messages):
    the original's type and cache policy, its own encoding."""
    return Upload(key=encoded_key(entry.key, encoded.encoding), source=source,
                  size=len(encoded.data), content_type=entry.content_type,
                  cache_control=IMMUTABLE_CACHE_CONTROL, body=encoded.data,
                  sha256=hashlib.sha256(encoded.data).hexdigest(),
                  content_encoding=encoded.encoding)


def _siblings(entry: Entry, existing: Mapping[str, RemoteObject],
              new: list[Upload]) -> tuple[Sibling, ...]:
    """The entry's siblings in preference order: made now, else listed in the bucket."""
    made = {upload.key: upload.size for upload in new}
    found = []
    for encoding in ENCODING_SUFFIXES:
        key = encoded_key(entry.key, encoding)
        listed = existing.get(key)
        size = made.get(key) or (listed.size if listed is not None else 0)
        if size > 0:
            found.append(Sibling(encoding, key, size))
    return tuple(found)

