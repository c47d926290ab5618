"""Recognising the current release without decoding it: a no-change deploy of 100,000 files.

Deciding "nothing changed" means comparing the manifest just built with the current
release's; decoding a 31 MiB current manifest for that took 0.7 s and ~100 MiB. So a
deploy that has decoded (or published) a current manifest records, in a small file beside
the hash cache, a fact about those bytes: their SHA-256, their release id, and
:func:`manifest_digest` of the manifest they decode to. The next deploy that reads the
same bytes compares digests instead (:meth:`pipeline.release.store.ReleaseStore.read_current`
and :class:`~pipeline.release.documents.Current`). Bytes anyone else published since do not
match the SHA-256 and are decoded as before; a missing, corrupt or foreign record file
costs only the decode (a corrupt one is reported once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import operator
from pathlib import Path

from ..localfs import write_atomic
from ..manifest import Entry, Manifest
from .documents import Current, KnownCurrent

_VERSION = 3  # 3: the digest also says which entries have sibling decisions
#: Entries encoded per piece of the digest: the whole encoding at once (20 MB for 100,000
#: entries, plus its bytes) set the first deploy's peak memory.
_CHUNK = 2048
#: Every field of an entry, so two manifests with equal digests have equal entries.
#: Precompressed siblings count by whether they were decided (``encodings`` not ``None``),
#: not by their keys and sizes: a deploy recognises its release before it knows them (the
#: decisions are that release's, :func:`pipeline.release.sibling_decisions.assume_decided`).
_FIELDS = operator.attrgetter(*(field.name for field in dataclasses.fields(Entry)
                                if field.name != "encodings"))


def manifest_digest(manifest: Manifest) -> str:
    """SHA-256 of every entry's every field in path order: equal digests, equal manifests.

    ``repr`` of tuples of strings, numbers and ``None`` is exact and done in C (100,000
    entries: ~0.25 s; the canonical JSON of :func:`pipeline.releasedoc.files_digest` ~1 s);
    each piece is a complete tuple literal, so the pieces cannot run into each other.
    """
    files = manifest.files
    names = sorted(files)
    digest = hashlib.sha256()
    for start in range(0, len(names), _CHUNK):
        entries = list(map(files.__getitem__, names[start:start + _CHUNK]))
        decided = [entry.encodings is not None for entry in entries]
        digest.update(repr((names[start:start + _CHUNK], list(map(_FIELDS, entries)),
                            decided)).encode())
    return digest.hexdigest()


def is_known_current(current: Current, manifest: Manifest) -> bool | None:
    """Whether recognised, not yet decoded ``current`` bytes hold ``manifest``; ``None`` when
    the answer needs the decoded document."""
    if current.decoded or current.known is None:
        return None
    return current.known.files == manifest_digest(manifest)


def read_known(path: Path | None) -> tuple[KnownCurrent | None, str | None]:
    """The record at ``path`` and, if it exists but cannot be used, why (a warning)."""
    if path is None:
        return None, None
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"ignored {str(path)!r} ({exc}): the current manifest is read in full"
    if isinstance(document, dict) and document.get("version") != _VERSION:
        return None, None  # another version's: its digest may be computed differently
    if not (isinstance(document, dict)
            and all(isinstance(document.get(name), str)
                    for name in ("sha256", "release", "files"))):
        return None, f"ignored {str(path)!r} (not a record)"
    return KnownCurrent(document["sha256"], document["release"], document["files"]), None


def remember(path: Path | None, data: bytes, release_id: str | None, manifest: Manifest,
             *, known: KnownCurrent | None) -> None:
    """Record what ``data`` (a current manifest's bytes) decode to, unless ``known`` says it
    already; failing to write it is not worth failing a deploy.

    ``known`` is :attr:`Current.known <pipeline.release.documents.Current.known>`: set only
    when these very bytes matched the record's SHA-256 on reading, so they are not hashed
    again (620 KB at 2,000 files, 31 MB at 100,000)."""
    if path is None or release_id is None or known is not None:
        return
    document = {"version": _VERSION, "sha256": hashlib.sha256(data).hexdigest(),
                "release": release_id,
                "files": manifest_digest(manifest)}
    with contextlib.suppress(OSError):
        write_atomic(path, json.dumps(document, indent=1).encode() + b"\n")
