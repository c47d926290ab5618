"""Content hashes and the fingerprinted names derived from them.

The name depends on the bytes only (never on the path, mtime or machine), so the
same file always maps to the same object key and an unchanged file is never
uploaded twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import NamedTuple, TypeGuard

from ..localfs import StrPath, write_atomic

#: Hex characters of the SHA-256 that go into a file name (48 bits: collisions
#: between two versions of one logical file are practically impossible).
NAME_HASH_LENGTH = 12

_CHUNK_SIZE = 1024 * 1024


def hash_file(path: StrPath) -> str:
    """Return the hex SHA-256 of a file, streamed so memory stays flat for any size."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hashed_name(logical_path: str, sha256_hex: str) -> str:
    """Insert the short hash before the last extension: ``d/app.min.js`` -> ``d/app.min.<h>.js``.

    A name without an extension gets the hash appended (``LICENSE`` -> ``LICENSE.<h>``).
    """
    short = sha256_hex[:NAME_HASH_LENGTH]
    # Plain string work (same rule as PurePosixPath.suffix): this runs once per file.
    folder, slash, name = logical_path.rpartition("/")
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1:  # ".hidden" and "name." have no suffix
        return f"{folder}{slash}{name}.{short}"
    return f"{folder}{slash}{name[:dot]}.{short}{name[dot:]}"


#: A name :func:`hashed_name` produced: ``<stem>.<12 hex>`` plus an optional extension.
_HASHED_NAME_RE = re.compile(rf"^.+\.[0-9a-f]{{{NAME_HASH_LENGTH}}}(\.[^./]+)?$")


def is_hashed_name(name: str) -> bool:
    """Whether a file name (no folder) has the shape :func:`hashed_name` gives."""
    return bool(_HASHED_NAME_RE.match(name))


class FileStamp(NamedTuple):
    """What must be unchanged for a cached hash to still be trusted.

    Size and mtime alone are not enough: ``cp -p``, ``rsync -t``, ``tar -x`` and
    ``os.utime`` put an old mtime back on new bytes. The ctime cannot be set by a user
    (any write, rename or ``utime`` moves it to now), and the inode changes when a tool
    writes a new file and renames it over the old one, so both go into the stamp, as in
    git's index (which also keys on ctime and inode).
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    # A named tuple, not a frozen dataclass: one is made per file and lookup, and the
    # dataclass's __init__ cost ~0.1 s per pass over 100,000 files.


class HashCache:
    """Hashes of files keyed by path and :class:`FileStamp`, persisted as JSON.

    A re-run over unchanged files then only needs ``stat`` calls. A corrupt or
    foreign cache file is ignored (the cache is an optimisation, never a source of
    truth), and entries not looked up in a run are dropped when it is saved.

    Git's racy rule: a file changed within the timestamp tick in which it was hashed
    keeps its stamp, so an entry whose mtime or ctime is not strictly older than the
    cache file's own mtime (when it was written, in the file system's clock) is not
    trusted when the cache is read: that file is hashed again.

    A script that names nothing (:meth:`plain_integrity`) also keeps its Subresource
    Integrity value under the same stamp, so an unchanged one is not read at all.
    """

    _VERSION = 2

    def __init__(self, path: Path | None) -> None:
        self.path = path
        #: Why the cache file was ignored, when it exists but is corrupt (a warning).
        self.problem: str | None = None
        self._old: dict[str, list[object]] = self._read(path) if path else {}
        self._new: dict[str, list[object]] = {}
        self.hits = 0
        self.misses = 0
        self._forgotten = False
        self._learned = False

    def _read(self, path: Path) -> dict[str, list[object]]:
        """The entries to trust: well-formed, and not racy (see the class docstring)."""
        try:
            with open(path, "rb") as handle:
                written_ns = os.fstat(handle.fileno()).st_mtime_ns
                data = json.loads(handle.read())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.problem = f"ignored the hash cache {str(path)!r} ({exc}): every file is hashed"
            return {}
        if isinstance(data, dict) and data.get("version") != HashCache._VERSION:
            return {}  # another version's: not corrupt, just not ours
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            self.problem = (f"ignored the hash cache {str(path)!r} (not a hash cache): every "
                            "file is hashed")
            return {}
        # Only what the racy rule needs is checked here, inline (100,000 entries: a function
        # call each cost ~0.1 s); the rest when an entry is looked up (:func:`_answers`).
        return {name: entry for name, entry in entries.items()
                if type(entry) is list and 5 <= len(entry) <= 6 and type(entry[1]) is int
                and type(entry[2]) is int and entry[1] < written_ns and entry[2] < written_ns}

    def plain_integrity(self, path: StrPath, stamp: FileStamp) -> str | None:
        """The integrity value recorded with the hash for this stamp by
        :meth:`remember_plain`, if any: the file is UTF-8 and names no other file."""
        entry = self._old.get(os.fspath(path))
        if _answers(entry, stamp) and len(entry) == 6 and isinstance(entry[5], str):
            return entry[5]
        return None

    def remember_plain(self, path: StrPath, stamp: FileStamp, integrity: str) -> None:
        """Record that the file hashed under ``stamp`` in this run is UTF-8 and names no
        other file, with its integrity value; nothing if its hash was not kept this run."""
        name = os.fspath(path)
        entry = self._new.get(name)
        if _answers(entry, stamp) and entry[5:] != [integrity]:
            self._new[name] = [*entry[:5], integrity]
            self._learned = True

    def get(self, path: StrPath, stamp: FileStamp) -> str | None:
        """Return the cached hash if the file still has this size and mtime."""
        name = os.fspath(path)
        entry = self._old.get(name)
        if _answers(entry, stamp):
            self._new[name] = entry
            self.hits += 1
            return str(entry[4])
        self.misses += 1
        return None

    def has(self, path: StrPath, stamp: FileStamp) -> bool:
        """Whether :meth:`get` would answer, without counting or keeping the entry."""
        return _answers(self._old.get(os.fspath(path)), stamp)

    def seed(self, path: StrPath, stamp: FileStamp, sha256_hex: str) -> None:
        """Make ``get`` answer ``sha256_hex`` for this stamp (a hash known from elsewhere)."""
        self._old[os.fspath(path)] = _entry(stamp, sha256_hex)

    def put(self, path: StrPath, stamp: FileStamp, sha256_hex: str) -> None:
        self._new[os.fspath(path)] = _entry(stamp, sha256_hex)

    def forget(self, path: StrPath) -> None:
        """Drop ``path``'s hash: its bytes changed without a new size or mtime showing it."""
        self._new.pop(os.fspath(path), None)
        self._old.pop(os.fspath(path), None)
        self._forgotten = True

    def save(self) -> None:
        """Write the cache atomically; failure to write it is not worth failing a deploy."""
        if self.path is None or (self.misses == 0 and self._new.keys() == self._old.keys()
                                 and not self._forgotten and not self._learned):
            return  # nothing new to remember
        payload = {"version": self._VERSION, "entries": dict(sorted(self._new.items()))}
        with contextlib.suppress(OSError):
            write_atomic(self.path, json.dumps(payload, separators=(",", ":")).encode())


def _entry(stamp: FileStamp, sha256_hex: str) -> list[object]:
    """A cache entry: ``[size, mtime_ns, ctime_ns, inode, sha256]``."""
    return [stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.ino, sha256_hex]


def _answers(entry: object, stamp: FileStamp) -> TypeGuard[list[object]]:
    """Whether a cache entry (see :func:`_entry`; a plain script's integrity value may
    follow the hash) answers for a file with this stamp."""
    return (isinstance(entry, list) and len(entry) in (5, 6) and entry[:4] == list(stamp)
            and isinstance(entry[4], str))
