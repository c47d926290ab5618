"""Building a manifest: hash the static folder, rewrite references, name every object.

The format itself lives in :mod:`pipeline.manifest` (an app that reads a manifest
loads nothing of this); where objects go in the bucket is :mod:`pipeline.keys`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..keyrule import key_problem
from ..keys import object_key
from ..localfs import LocalFile, display_name
from ..manifest import Entry, Manifest
from ..media_types import content_type_for
from ..nofollow import FolderCache
from ..validate import DEFAULT_STATIC_URL_PATH
from ..walked import open_walked, read_walked
from .css import is_css, sri_hash
from .fingerprint import FileStamp, HashCache, hashed_name
from .linking import rewrite_all
from .mounts import UrlRoots
from .sourcemaps import is_js, is_map, link_maps
from .textlinks import TextLinks, parse_texts
from .vite import ViteOutput

#: Files that get a Subresource Integrity value (``<script>``/``<link>`` targets).
SRI_SUFFIXES = (".css", ".js", ".mjs")

#: hashlib releases the GIL on large buffers, so a few threads hash a cold tree faster.
_HASH_WORKERS = 4


@dataclass(frozen=True)
class Build:
    """A manifest plus the bytes to upload for files that were rewritten (CSS, maps, JS)."""

    manifest: Manifest
    bodies: Mapping[str, bytes]
    warnings: tuple[str, ...] = ()


def build_manifest(files: Iterable[LocalFile], *, prefix: str, cache: HashCache) -> Manifest:
    """The manifest of ``files`` (see :func:`build`)."""
    return build(files, prefix=prefix, cache=cache).manifest


#: Told each file's SHA-256 as soon as it is known (from worker threads, in no order).
HashedCallback = Callable[[LocalFile, str], None]


def build(
    files: Iterable[LocalFile],
    *,
    prefix: str,
    cache: HashCache,
    strict: bool = True,
    static_url_path: str | UrlRoots | None = DEFAULT_STATIC_URL_PATH,
    on_hashed: HashedCallback | None = None,
    texts: TextLinks | None = None,
    vite: ViteOutput | None = None,
) -> Build:
    """Hash every file, rewrite CSS references and JS module specifiers to fingerprinted
    names, name every object.

    CSS and JS that name other files are hashed after rewriting, dependencies first
    (:mod:`pipeline.build.linking`), so a changed image renames the CSS that uses it and
    a changed module every module importing it; source maps are linked first
    (:mod:`pipeline.build.sourcemaps`), so a changed map renames the CSS or JS file whose
    ``sourceMappingURL`` names it. ``on_hashed`` lets
    a deploy start uploading the files stored as they are (:func:`is_verbatim`) while
    the others are still being hashed. ``texts``: what :func:`check_before_hashing`
    returned for these files, so their CSS/JS is not parsed twice. ``vite``: the files
    Vite named keep their names and bytes (:mod:`pipeline.build.vite`).
    """
    files = list(files)
    by_path = {item.logical_path: item for item in files}
    read = _reader(by_path)
    keep = vite.keep if vite is not None else frozenset()
    if texts is None:
        texts = parse_texts(_ours(by_path, keep), read=read, static_url_path=static_url_path,
                            known_plain=known_plain(files, cache))
    if strict:
        texts.refuse_if_broken()
    hashes = _hash_all(files, cache, on_hashed)
    # Maps first: a CSS/JS name must cover the fingerprinted name of its map, and a map's
    # sources may name only files whose names depend on nothing (see sourcemaps).
    unstable = {p for p in by_path if is_css(p)} | texts.parsed.keys()
    linked = link_maps(_ours(by_path, keep), read=read, hashes=hashes, unstable=unstable)
    rewritten = rewrite_all(texts.parsed, linked.hashes)
    bodies = {**linked.bodies, **{path: done.content for path, done in rewritten.items()}}
    entries: dict[str, Entry] = {}
    for item in files:
        path = item.logical_path
        content_type = content_type_for(path)
        if path in rewritten:
            done = rewritten[path]
            entries[path] = Entry(
                key=object_key(prefix, hashed_name(path, done.name_hash)),
                hash=done.sha256,
                size=len(done.content), content_type=content_type,
                integrity=sri_hash(done.content),
            )
            continue
        body = bodies.get(path)
        digest = linked.hashes[path]
        if body is None and not _wants_integrity(path):
            entries[path] = verbatim_entry(prefix, item, digest, named=path in keep,
                                           content_type=content_type)
            continue
        entries[path] = Entry(  # positional: twice as fast as keywords, once per file
            object_key(prefix, _object_name(path, digest, named=path in keep)), digest,
            item.size if body is None else len(body), content_type,
            (_integrity(item, body, read, cache, plain=path in texts.plain)
             if _wants_integrity(path) else None),
        )
    # Strict mode refused the problems above; the removed map comments are only warnings.
    warnings = texts.warnings if strict else texts.all_warnings()
    return Build(Manifest(entries, vite.manifest if vite is not None else None), bodies,
                 warnings)


def check_before_hashing(files: Iterable[LocalFile], *, prefix: str, strict: bool,
                         static_url_path: str | UrlRoots | None = DEFAULT_STATIC_URL_PATH,
                         cache: HashCache | None = None, keep: Collection[str] = frozenset()
                         ) -> TextLinks | None:
    """Refuse what :func:`build` would refuse that needs no hash: an object key S3 would
    reject and, when ``strict``, a CSS/JS file that is not UTF-8 or whose reference or
    module specifier names a missing file. A deploy runs this
    before it uploads anything, even files it uploads while still hashing others. Returns
    the parsed CSS/JS (strict mode), for :func:`build` to reuse; scripts ``cache`` knows
    as plain are not read (:func:`known_plain`). ``keep``: files Vite named, never parsed
    (:mod:`pipeline.build.vite`)."""
    files = list(files)
    for item in files:
        check_key(prefix, item.logical_path)
    if not strict:
        return None
    by_path = {item.logical_path: item for item in files}
    texts = parse_texts(_ours(by_path, keep), read=_reader(by_path),
                        static_url_path=static_url_path,
                        known_plain=known_plain(files, cache) if cache is not None else ())
    texts.refuse_if_broken()
    return texts


def known_plain(files: Iterable[LocalFile], cache: HashCache) -> list[str]:
    """Scripts whose cached stamp says they are still the plain bytes they were (UTF-8,
    naming nothing): they need not be read to be parsed, nor for their integrity value."""
    return [item.logical_path for item in files if is_js(item.logical_path)
            and cache.plain_integrity(item.fspath, file_stamp(item)) is not None]


def _integrity(item: LocalFile, body: bytes | None, read: Callable[[str], bytes],
               cache: HashCache, *, plain: bool) -> str:
    """The SRI value of what is stored for ``item``: ``body`` if rewritten, else its bytes;
    a plain script's comes from (or goes into) the hash cache beside its hash."""
    if body is not None:
        return sri_hash(body)
    stamp = file_stamp(item)
    known = cache.plain_integrity(item.fspath, stamp) if plain else None
    if known is not None:
        return known
    integrity = sri_hash(read(item.logical_path))
    if plain:
        cache.remember_plain(item.fspath, stamp, integrity)
    return integrity


#: S3's limit on the UTF-8 length of an object key.
MAX_KEY_BYTES = 1024


def check_key(prefix: str, logical_path: str) -> None:
    """Refuse a file whose object key S3 would reject or an app would refuse to load (the
    manifest reader's rule, :func:`pipeline.keyrule.key_problem`). Neither depends on the hash:
    every fingerprint has the same length and characters."""
    key = object_key(prefix, hashed_name(logical_path, "0" * 64))
    if (problem := key_problem(key)) is not None:
        raise ConfigError(f"the object key of {display_name(logical_path)} {problem}: rename "
                          "the file or --exclude it")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise ConfigError(
            f"the object key of {display_name(logical_path)} would be {size} bytes; S3 "
            f"allows {MAX_KEY_BYTES}: shorten its name or folders (or the prefix), or "
            "--exclude it"
        )


def is_verbatim(logical_path: str) -> bool:
    """Whether a file is always stored as it is, named by its own hash: neither CSS, JS
    nor a source map, whose bytes or names may depend on other files."""
    return not (is_css(logical_path) or is_js(logical_path) or is_map(logical_path))


def verbatim_entry(prefix: str, item: LocalFile, sha256_hex: str, *, named: bool = False,
                   content_type: str | None = None) -> Entry:
    """The manifest entry of a file stored as it is (see :func:`is_verbatim`); ``named``:
    its name carries a hash already (Vite's), so it is its key as it is. ``content_type``:
    :func:`content_type_for` its path, when the caller has it already."""
    path = item.logical_path
    return Entry(object_key(prefix, _object_name(path, sha256_hex, named=named)), sha256_hex,
                 item.size, content_type or content_type_for(path))  # positional: 2x as fast


def _object_name(logical_path: str, sha256_hex: str, *, named: bool) -> str:
    """The one rule: fingerprinted, unless the file was named by content already."""
    return logical_path if named else hashed_name(logical_path, sha256_hex)


def _ours(by_path: Mapping[str, LocalFile], keep: Collection[str]) -> Collection[str]:
    """The files whose references the deploy links: all but Vite's (stored as written)."""
    return [path for path in by_path if path not in keep] if keep else by_path.keys()


def _reader(by_path: Mapping[str, LocalFile]) -> Callable[[str], bytes]:
    """Read a file at most once per build (CSS and JS are read for comments and SRI)."""
    cache: dict[str, bytes] = {}

    def read(path: str) -> bytes:
        if path not in cache:
            cache[path] = _read(by_path[path])
        return cache[path]

    return read


def _wants_integrity(logical_path: str) -> bool:
    return logical_path.lower().endswith(SRI_SUFFIXES)


def needs_hashing(item: LocalFile, cache: HashCache) -> bool:
    """Whether the cache lacks the file's hash for its current size and mtime."""
    return not cache.has(item.fspath, file_stamp(item))


def file_stamp(item: LocalFile) -> FileStamp:
    """What the walk saw of ``item`` that its cached hash is keyed on."""
    return FileStamp(item.size, item.mtime_ns, item.ctime_ns, item.ino)


def _hash_all(files: list[LocalFile], cache: HashCache,
              on_hashed: HashedCallback | None = None) -> dict[str, str]:
    """Hashes from the cache where size and mtime match, the rest hashed in parallel."""
    hashes: dict[str, str] = {}
    stale: list[LocalFile] = []
    for item in files:
        cached = cache.get(item.fspath, file_stamp(item))
        if cached is None:
            stale.append(item)
            continue
        hashes[item.logical_path] = cached
        if on_hashed is not None:
            on_hashed(item, cached)
    if not stale:  # a warm re-run: no pool (nor the import of concurrent.futures) at all
        return hashes
    from concurrent.futures import ThreadPoolExecutor

    # One strided slice per worker, not one task per file: most static files are small,
    # and per-task overhead would eat the gain of hashing on several cores.
    workers = max(1, min(_HASH_WORKERS, os.cpu_count() or 1, len(stale)))
    slices = [stale[i::workers] for i in range(workers)]
    cancelled = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            hashed = pool.map(lambda part: _hash_slice(part, on_hashed, cancelled), slices)
            for part, digests in zip(slices, hashed, strict=True):
                for item, digest in zip(part, digests, strict=True):
                    hashes[item.logical_path] = digest
                    cache.put(item.fspath, file_stamp(item), digest)
        except BaseException:
            # A Ctrl-C or a failed read: the other workers stop after their current file
            # instead of hashing (and, through on_hashed, uploading) the rest.
            cancelled.set()
            raise
    return hashes


def _hash_slice(items: list[LocalFile], on_hashed: HashedCallback | None,
                cancelled: threading.Event) -> list[str]:
    digests = []
    with FolderCache() as folders:  # files come in path order: most share a folder
        for item in items:
            if cancelled.is_set():
                break
            digest = _hash_local(item, folders)
            if on_hashed is not None:
                on_hashed(item, digest)
            digests.append(digest)
    return digests


def _read(item: LocalFile) -> bytes:
    try:
        return read_walked(item)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {item.logical_path!r} in the static folder: {exc.strerror}"
        ) from exc


def _hash_local(item: LocalFile, folders: FolderCache | None = None) -> str:
    """The file's SHA-256, read through :func:`~pipeline.walked.open_walked`: only the file
    the walk saw, with the size and times the hash will be cached under."""
    try:
        with open_walked(item, folders=folders) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {item.logical_path!r} in the static folder: {exc.strerror}"
        ) from exc
