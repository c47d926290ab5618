"""A local folder laid out like the bucket: ``<root>/<key>``.

Used by the embedded default (no cloud account needed) and as a real target for
a folder that nginx or any static server publishes. Files are written to a
temporary name and renamed, so a crash never leaves a torn object that a later
run would take for a complete one.

ETags are the hex MD5 of the bytes, as S3 gives for a single-part upload, so
releases record the same kind of checksum on both backends. Conditional writes
hold an ``flock`` on ``<root>/.cdn-lock`` while they compare and rename: that is
what S3's ``If-Match`` does server-side. A folder stores no headers (the web server
derives Content-Type from the extension), so :meth:`inspect` reports none.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError, ConflictError, DeployError, FileChangedError, UnsafePathError
from ..localfs import replacing, write_atomic
from .base import (
    DeleteOutcome,
    ObjectInfo,
    ProgressCallback,
    RemoteObject,
    StoredBytes,
    Upload,
    UploadFailure,
    UploadOutcome,
    content_changed,
    source_chunks,
    verified_bytes,
)

LOCK_NAME = ".cdn-lock"
_CHUNK = 1024 * 1024


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_digests(path: Path) -> tuple[str, str]:
    """MD5 (the ETag) and SHA-256 (the manifest's hash) in one read of the file."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


class FolderStorage:
    listing_has_etags = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local folder {str(root)!r}"

    def check(self) -> None:
        """Fail early if the folder could not be written to, without creating anything.

        A dry run checks the target too and must leave no trace, so a folder that does not
        exist yet is only checked to be creatable: the nearest existing folder above it must
        be a writable folder. The first write creates it (writes make missing parents).
        """
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"target folder {str(self.root)!r} is a file, not a folder")
        nearest = Path(os.path.abspath(self.root))
        while not nearest.exists() and nearest != nearest.parent:
            nearest = nearest.parent
        if not nearest.is_dir():
            raise ConfigError(f"cannot create target folder {str(self.root)!r}: "
                              f"{str(nearest)!r} is not a folder")
        if not os.access(nearest, os.W_OK | os.X_OK):
            what = ("target folder" if nearest == Path(os.path.abspath(self.root))
                    else "folder above the target")
            raise ConfigError(f"{what} {str(nearest)!r} is not writable; fix its permissions "
                              "or choose another --target-dir")

    def path_for(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise UnsafePathError(f"object key {key!r} is not a safe relative path")
        return self.root.joinpath(*parts)

    # -- reading -----------------------------------------------------------------------------

    def list_keys(self, prefix: str, *, hints: Sequence[str] = ()) -> dict[str, RemoteObject]:
        """Every file under ``prefix`` (``hints`` do not help a local walk)."""
        base = self.path_for(prefix) if prefix else self.root
        found: dict[str, RemoteObject] = {}
        if not base.is_dir():
            return found
        for folder, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith("."):  # our own in-flight temporary files and the lock
                    continue
                path = Path(folder, name)
                key = path.relative_to(self.root).as_posix()
                try:
                    info = path.stat()
                except FileNotFoundError:  # deleted by a concurrent prune
                    continue
                found[key] = RemoteObject(
                    size=info.st_size,
                    last_modified=datetime.fromtimestamp(info.st_mtime, UTC),
                )
        return found

    def read(self, key: str) -> StoredBytes | None:
        try:
            data = self.path_for(key).read_bytes()
        except FileNotFoundError:
            return None
        return StoredBytes(data, md5_hex(data))

    def inspect(self, keys: Iterable[str], *, content: bool = False
                ) -> dict[str, ObjectInfo | None]:
        """Stat and hash every file (reading a local file is cheap, so ``content`` is moot)."""
        found: dict[str, ObjectInfo | None] = {}
        for key in sorted(set(keys)):
            path = self.path_for(key)
            try:
                md5, sha256 = file_digests(path)
                found[key] = ObjectInfo(size=path.stat().st_size, etag=md5, content_type=None,
                                        cache_control=None, sha256=sha256)
            except FileNotFoundError:
                found[key] = None
            except OSError as exc:
                raise DeployError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
        return found

    # -- writing -----------------------------------------------------------------------------

    def upload_files(
        self, uploads: Iterable[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        """Copy one file at a time, in order; after a failure the rest are only counted."""
        outcome = UploadOutcome()
        for upload in uploads:
            if outcome.failures:
                outcome.not_attempted += 1
                continue
            try:
                etag = self._copy(upload)
            except (OSError, FileChangedError) as exc:
                message = str(exc) if isinstance(exc, FileChangedError) else exc.strerror
                outcome.failures.append(UploadFailure(
                    upload.key, message or str(exc),
                    content_changed=isinstance(exc, FileChangedError)))
                continue
            outcome.stored[upload.key] = RemoteObject(size=upload.size, etag=etag)
            if on_stored:
                on_stored(upload)
        return outcome

    def _copy(self, upload: Upload) -> str:
        """Stream to a unique temporary name, hashing what is written, then rename only if
        the bytes have ``upload.sha256``; return the MD5 of what was written."""
        target = self.path_for(upload.key)
        if upload.body is not None:
            data = verified_bytes(upload)
            write_atomic(target, data, unique=True)
            return md5_hex(data)
        md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        with replacing(target, unique=True) as out:
            for chunk in source_chunks(upload.source, _CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
                out.write(chunk)
            if upload.sha256 is not None and sha256.hexdigest() != upload.sha256:
                raise content_changed(upload)  # leaves the block: the temporary file goes
        return md5.hexdigest()

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        write_atomic(self.path_for(key), data, unique=True)

    def put_if(
        self, key: str, data: bytes, *, content_type: str, cache_control: str,
        if_match: str | None = None, if_absent: bool = False,
    ) -> str:
        path = self.path_for(key)
        with self._locked():
            current = self.read(key)
            if if_match is not None and (current is None or current.etag != if_match):
                raise ConflictError(f"{key!r} was changed by someone else")
            if if_match is None and if_absent and current is not None:
                raise ConflictError(f"{key!r} already exists")
            write_atomic(path, data, unique=True)
        return md5_hex(data)

    def supports_conditional_writes(self, prefix: str) -> bool:
        """Always: :meth:`put_if` compares and renames under an ``flock``."""
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive ``flock``: released by the kernel even if the process is killed."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def delete_keys(self, keys: Sequence[str]) -> DeleteOutcome:
        outcome = DeleteOutcome(requests=len(keys))
        for key in keys:
            try:
                self.path_for(key).unlink(missing_ok=True)
            except OSError as exc:
                outcome.failures.append(UploadFailure(key, exc.strerror or str(exc)))
                continue
            outcome.deleted.append(key)
        return outcome
