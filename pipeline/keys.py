"""Where things live in the bucket: the one owner of the object-key layout.

Under a deploy prefix ``p`` (``static`` by default)::

    p/<dir>/<stem>.<12 hex>.<ext>     fingerprinted objects (immutable)
    p/<dir>/<stem>.<12 hex>.<ext>.br  its brotli sibling (precompressed; same Content-Type,
    p/<dir>/<stem>.<12 hex>.<ext>.gz  its gzip sibling     Content-Encoding br / gzip)
    p/manifest.json                   the current manifest (a copy of the current release)
    p/releases/<id>.json              release documents (written once)
    p/releases/pruning-<stamp>.json   a prune under way (its marker)
    p/releases/pruned-<stamp>.json    a prune that finished (its done record)
    p/releases/rollback-<id>.<n>.json a rollback to <id> under way (its intent)

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
PRUNE_MARKER_HEAD = "pruning-"
PRUNE_DONE_HEAD = "pruned-"
ROLLBACK_INTENT_HEAD = "rollback-"


def under(prefix: str, name: str) -> str:
    """``name`` inside ``prefix`` (the bucket root when ``prefix`` is empty)."""
    return f"{prefix}/{name}" if prefix else name


def object_key(prefix: str, fingerprinted_name: str) -> str:
    """The key of a fingerprinted object (``img/cat.<h>.jpg``, see ``hashed_name``)."""
    return under(prefix, fingerprinted_name)


#: Content-Encoding token -> the suffix its sibling's key adds to the identity object's key.
#: The file-beside-file convention of nginx ``gzip_static``/``brotli_static`` and Caddy's
#: ``precompressed``, so a web server in front of a folder target finds them by itself.
ENCODING_SUFFIXES = {"br": ".br", "gzip": ".gz"}


def encoded_key(identity_key: str, encoding: str) -> str:
    """The key of the ``encoding`` sibling of the object at ``identity_key``."""
    return identity_key + ENCODING_SUFFIXES[encoding]


def identity_key(key: str) -> str:
    """``key`` without a sibling's suffix (the object a ``.br``/``.gz`` sibling belongs to);
    any other key unchanged."""
    for suffix in ENCODING_SUFFIXES.values():
        if key.endswith(suffix):
            return key[:-len(suffix)]
    return key


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


def prune_marker_key(prefix: str, name: str) -> str:
    """The marker a prune stores while it may delete (``name``: a stamp, ending ``.json``)."""
    return f"{releases_prefix(prefix)}/{PRUNE_MARKER_HEAD}{name}"


def prune_done_key(prefix: str, name: str) -> str:
    """The record a prune stores once it has deleted, named like its marker."""
    return f"{releases_prefix(prefix)}/{PRUNE_DONE_HEAD}{name}"


def rollback_intent_key(prefix: str, release_id: str, nonce: str) -> str:
    """The intent a rollback to ``release_id`` stores while it runs (``nonce``: unique)."""
    return f"{releases_prefix(prefix)}/{ROLLBACK_INTENT_HEAD}{release_id}.{nonce}.json"


def rollback_intent_release(key: str, prefix: str) -> str | None:
    """The release id if ``key`` is a rollback intent under ``prefix``, else ``None``."""
    head = f"{releases_prefix(prefix)}/{ROLLBACK_INTENT_HEAD}"
    if not key.startswith(head):
        return None
    release_id = key[len(head):].split(".json")[0].rpartition(".")[0]
    return release_id if RELEASE_ID_RE.match(release_id) else None
