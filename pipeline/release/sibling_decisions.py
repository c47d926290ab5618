"""The current release's sibling decisions, carried onto a new manifest without compressing.

Kept apart from :mod:`pipeline.release.sibling_step` (which compresses and plans uploads) so
a no-change re-deploy, which only copies decisions, loads neither the encoders nor the
upload planning: on Python 3.11 every frozen dataclass compiles its methods at import, and
those imports were most of what precompression added to a warm re-deploy.
"""

from __future__ import annotations

from dataclasses import replace

from ..manifest import Entry, Manifest, Sibling
from ..media_types import is_compressible


def with_recorded(manifest: Manifest, recorded: Manifest | None) -> Manifest:
    """``manifest`` with the decisions ``recorded`` (the current release) made for the same
    keys: that release confirmed those siblings stored, as it confirmed its files."""
    if recorded is None:
        return manifest
    by_key = {e.key: e.encodings for e in recorded.files.values() if e.encodings is not None}
    files = {path: with_encodings(entry, by_key.get(entry.key))
             for path, entry in manifest.files.items()}
    return replace(manifest, files=files)


def assume_decided(manifest: Manifest) -> Manifest:
    """``manifest`` with every compressible entry marked decided (``encodings=()``): what a
    recognised current release, published with precompression on, has decided, for
    :func:`pipeline.release.recognise.manifest_digest`, without decoding that release."""
    files = {path: with_encodings(entry, ()) if entry.encodings is None
             and is_compressible(entry.content_type) else entry
             for path, entry in manifest.files.items()}
    return replace(manifest, files=files)


def with_encodings(entry: Entry, encodings: tuple[Sibling, ...] | None) -> Entry:
    """``entry`` with ``encodings`` (itself when they are already its own)."""
    return entry if entry.encodings == encodings else replace(entry, encodings=encodings)
