"""Where things live in the bucket: the one owner of the object-key layout.

Under a deploy prefix ``p`` (``static`` by default)::

    p/<dir>/<stem>.<12 hex>.<ext>     fingerprinted objects (immutable)
    p/manifest.json                   the current manifest (a copy of the current release)
    p/releases/<id>.json              release documents (written once)

Pure functions of strings, so the build (object keys), the release store (manifest
and release keys) and the readers (the Flask app, fleet servers, ``deploy.py serve``)
derive the same keys without importing each other. An empty prefix means the bucket
root; refusing it for commands that delete is the caller's business.
"""

from __future__ import annotations

import re

MANIFEST_NAME = "manifest.json"
RELEASES_DIR = "releases"
#: ``<UTC time to the millisecond>Z-<6 hex of the files' hash>``: sorts by time as a string.
RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")
_RELEASE_SUFFIX = ".json"


def under(prefix: str, name: str) -> str:
    """``name`` inside ``prefix`` (the bucket root when ``prefix`` is empty)."""
    return f"{prefix}/{name}" if prefix else name


def object_key(prefix: str, fingerprinted_name: str) -> str:
    """The key of a fingerprinted object (``img/cat.<h>.jpg``, see ``hashed_name``)."""
    return under(prefix, fingerprinted_name)


def manifest_key(prefix: str) -> str:
    return under(prefix, MANIFEST_NAME)


def releases_prefix(prefix: str) -> str:
    return under(prefix, RELEASES_DIR)


def release_key(prefix: str, release_id: str) -> str:
    return f"{releases_prefix(prefix)}/{release_id}{_RELEASE_SUFFIX}"


def release_id_of(key: str, prefix: str) -> str | None:
    """The id if ``key`` is a release object under ``prefix``, else ``None``."""
    head = releases_prefix(prefix) + "/"
    if not key.startswith(head) or not key.endswith(_RELEASE_SUFFIX):
        return None
    candidate = key[len(head):-len(_RELEASE_SUFFIX)]
    return candidate if RELEASE_ID_RE.match(candidate) else None
