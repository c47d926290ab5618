"""A no-change re-run answered from the walk alone (issue 25: 100,000 files in <= 3 s).

Even with every hash cached and the current release recognised by digest
(:mod:`pipeline.release.recognise`), a re-run of an unchanged tree still looks up
100,000 cache entries, names and types every file, digests the manifest and plans it:
~2.5 s of CPU to learn what the previous run already knew. So a deploy that published
(or found current) a release without a warning writes, beside the hash cache, a record
(``<hash cache>.tree``) of everything its outcome depended on:

* a digest of the walk: each file's logical and real path, device, inode, size, mtime
  and ctime (the hash cache's own notion of "unchanged", plus what the walk left out);
* every setting that changes the output (folders, prefix, target, manifest path, the
  :class:`~pipeline.release.result.DeployOptions`), the working folder, the interpreter
  and a stamp of the tool's own code (its version and the stamp of each module file: an
  upgraded or edited tool never trusts an old record);
* the release made current, the ETag of the current manifest object as the deploy left
  it, the SHA-256 of the local manifest written, and the hash cache's stamp.

The next run walks (it must: that is how it knows nothing changed) and, when the digest,
the hash cache and the local manifest's bytes all match and one HEAD of the current
manifest shows the same ETag (another deploy or a rollback replaces that object, and the
deploys' conditional writes already rely on ETags naming one version), it reports the
release unchanged without hashing, building or reading the current release. Anything
else, and every run it cannot vouch for (dry runs, ``--relist``, variants, no hash cache,
a Vite build, a run that warned), takes the full path; a full run that is not a dry run
removes the record first, so a failed or interrupted deploy never leaves one behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from ..atomic import write_atomic
from ..errors import ConfigError, DeployError
from ..extras import DISTRIBUTION
from ..localfs import Scan
from .result import DeployOptions, LocalPaths
from .store import ReleaseStore

_VERSION = 1
#: Files whose stamps are encoded per piece of the digest (memory stays flat).
_CHUNK = 4096
_STAMP = operator.attrgetter("logical_path", "fspath", "dev", "ino", "size", "mtime_ns",
                             "ctime_ns")


def may_answer(options: DeployOptions) -> bool:
    """Whether a run with ``options`` may be answered from (and leave) a record."""
    return (not options.dry_run and not options.relist and options.variants is None
            and options.hash_cache_path is not None)


@cache
def tool_stamp() -> str:
    """The stamps of the tool's module files and of its installed metadata (its version):
    a new, reinstalled or edited tool differs. The metadata is looked for beside the
    package, where a wheel installs it (an editable checkout's code is its module files);
    importlib.metadata took 20 ms to import and ask, 2% of an answered re-run."""
    package = Path(__file__).resolve().parent.parent
    dist_info = DISTRIBUTION.replace("-", "_") + "-"
    stamps: list[tuple[str, list[int] | None]] = []
    with contextlib.suppress(OSError):
        stamps += [(name, file_stamp(package.parent / name / "METADATA"))
                   for name in os.listdir(package.parent)
                   if name.startswith(dist_info) and name.endswith(".dist-info")]
    _module_stamps(str(package), stamps)
    return repr((str(package), sorted(stamps)))


def _module_stamps(folder: str, into: list[tuple[str, list[int] | None]]) -> None:
    """Each ``.py`` file's stamp below ``folder`` (``os.scandir``: no Path per file)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".py"):
                info = entry.stat()
                into.append((entry.path, [info.st_dev, info.st_ino, info.st_size,
                                          info.st_mtime_ns, info.st_ctime_ns]))
            elif entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                _module_stamps(entry.path, into)


def tree_digest(scan: Scan, *, store: ReleaseStore, settings: object) -> str:
    """SHA-256 of the walk's stamps, what it left out, and ``settings`` (the folders, the
    manifest path and the options), with the target, the tool and the interpreter."""
    digest = hashlib.sha256(repr((
        _VERSION, tool_stamp(), sys.version, os.getcwd(), store.description, store.prefix,
        store.manifest_key, settings, [(i.logical_path, i.reason) for i in scan.ignored],
    )).encode())
    files = scan.files
    for start in range(0, len(files), _CHUNK):
        # repr of tuples of strings and integers is exact and done in C; each piece is a
        # complete list literal, so the pieces cannot run into each other.
        digest.update(repr(list(map(_STAMP, files[start:start + _CHUNK]))).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class TreeRecord:
    """What a deploy of a tree (``tree``: :func:`tree_digest`) left behind."""

    tree: str
    release: str
    #: The current manifest object's ETag as the deploy left it.
    etag: str
    #: SHA-256 of the local manifest's bytes, and :func:`cache_stamps`.
    manifest_sha256: str
    cache: list[list[int] | None]
    #: The manifest's file count, total bytes and first path and key (the summary,
    #: without decoding it; ``[]`` for no file).
    files: int
    bytes: int
    first: list[str]


def read_record(path: Path) -> TreeRecord | None:
    """The record at ``path``; ``None`` if missing or not a record of this version (no
    warning: the full path costs only time, and writes a good record)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.pop("version", None) != _VERSION:
        return None
    try:
        record = TreeRecord(**document)
    except TypeError:
        return None
    kinds = [str, str, str, str, list, int, int, list]
    if not all(isinstance(value, kind) for value, kind in zip(asdict(record).values(), kinds,
                                                               strict=True)):
        return None
    return record if all(isinstance(part, str) for part in record.first) else None


def write_record(path: Path, record: TreeRecord) -> None:
    """Write ``record`` atomically; failing to is not worth failing a deploy."""
    with contextlib.suppress(OSError):
        write_atomic(path, json.dumps({"version": _VERSION, **asdict(record)}).encode())


def forget(path: Path | None) -> None:
    """Remove the record before a full run: only a run that succeeds writes a new one."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def cache_stamps(paths: LocalPaths) -> list[list[int] | None] | None:
    """The stamps of the hash cache and of the current release's record beside it
    (:mod:`pipeline.release.recognise`; a full run would warn about a bad one, and repair
    it); ``None`` without a hash cache file (nothing vouches for the hashes)."""
    stamp = None if paths.hash_cache is None else file_stamp(paths.hash_cache)
    if stamp is None:
        return None
    return [stamp, None if paths.record is None else file_stamp(paths.record)]


def file_stamp(path: Path) -> list[int] | None:
    """Device, inode, size, mtime and ctime of ``path``; ``None`` if it is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def file_sha256(path: Path) -> str | None:
    """SHA-256 of the file's bytes, read a MiB at a time; ``None`` if unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def still_holds(record: TreeRecord, *, store: ReleaseStore, paths: LocalPaths) -> bool:
    """Whether the hash cache, the local manifest and the current manifest object are
    exactly as the deploy that wrote ``record`` left them (local checks first: the
    remote one is a request)."""
    if cache_stamps(paths) != record.cache:
        return False
    if file_sha256(paths.manifest) != record.manifest_sha256:
        return False
    key = store.manifest_key
    try:
        found = store.storage.inspect([key]).get(key)
    except (ConfigError, DeployError):
        return False  # the full path meets the same problem and says what to do
    return found is not None and found.etag == record.etag
