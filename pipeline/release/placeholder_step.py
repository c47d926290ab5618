"""Where the deploy finds each image's placeholder before making one: the current release and
a local cache, both by content hash, so an unchanged image is never decoded again for it.

The release is the source that survives a fresh checkout (CI has no ``build/`` folder): a
re-deploy of unchanged images takes their placeholders from the release it replaces, and then
is that release (nothing decoded, nothing published). The local cache
(``placeholders.json`` beside ``probes.json``) covers the rest: a first deploy that failed after
encoding, or a release published without placeholders by an older version. Placeholders are
made in the encode jobs (:func:`pipeline.build.variant_codec.encode_source`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

from ..localfs import write_atomic
from ..manifest import Manifest, Placeholder

#: Placeholders by content hash; delete it (or the cache folder) to make them again.
PLACEHOLDER_CACHE_NAME = "placeholders.json"


def known_placeholders(release: Manifest | None, cache_dir: Path) -> dict[str, Placeholder]:
    """Content hash -> placeholder: the local cache's, then the release's (validated when the
    release was read, so they win over a cache someone edited)."""
    known = _load(cache_dir / PLACEHOLDER_CACHE_NAME)
    if release is not None:
        known.update((entry.hash, entry.placeholder) for entry in release.files.values()
                     if entry.placeholder is not None)
    return known


def remember_placeholders(cache_dir: Path, made: Mapping[str, Placeholder]) -> None:
    """Add ``made`` to the local cache (a cache: a failure to write it is ignored)."""
    if not made:
        return
    path = cache_dir / PLACEHOLDER_CACHE_NAME
    cached = {**_load(path), **made}
    data = {digest: cached[digest].to_json() for digest in sorted(cached)}
    with contextlib.suppress(OSError):
        write_atomic(path, json.dumps(data, sort_keys=True).encode(), unique=True)


def _load(path: Path) -> dict[str, Placeholder]:
    """The cache's valid entries (a damaged file or entry is made again, never trusted)."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    found: dict[str, Placeholder] = {}
    for digest, fields in raw.items() if isinstance(raw, dict) else ():
        with contextlib.suppress(TypeError, ValueError):
            found[str(digest)] = Placeholder.from_json(fields)
    return found
