"""The interface every storage backend offers, and the values it exchanges."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

from ..errors import ConfigError, FileChangedError
from ..localfs import LocalFile, StrPath
from ..walked import open_walked


def check_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    """``value`` if it is an int within ``bounds`` (inclusive), else :class:`ConfigError`."""
    low, high = bounds
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"storage setting {name}={value!r} is not an integer in {low}-{high}")
    return value


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """What a listing says about an object that exists."""

    size: int
    etag: str | None = None
    #: When the object was last written (the listing's ``LastModified``), for prune's grace
    #: period and for verify to spot objects rewritten after their release was recorded.
    last_modified: datetime | None = None


#: Tries to read a file whose bytes match its content hash before giving up on it: a
#: second read succeeds when a tool rewrote the file with the same bytes meanwhile.
READ_TRIES = 2


@dataclass(frozen=True, slots=True)
class Upload:
    """One local file to store under ``key`` with these headers."""

    key: str
    #: The local file (a plain string for deploys: a ``Path`` per file cost ~500 bytes, and a
    #: first deploy of 100,000 files holds every upload until its release is published).
    source: StrPath
    size: int
    content_type: str
    cache_control: str
    #: Bytes to store instead of the file's (a rewritten CSS file), or ``None``.
    body: bytes | None = None
    #: Hex SHA-256 the stored bytes must have (the content hash the key was named
    #: after); ``None`` for objects not named by content (private images).
    sha256: str | None = None
    #: ``Content-Encoding`` of a precompressed sibling (``br``, ``gzip``); ``None``: identity.
    content_encoding: str | None = None


class ContentChanged(FileChangedError):
    """A file's bytes no longer have the content hash its object key was named after."""


def open_source(path: StrPath) -> BinaryIO:
    """Open a file to upload: the one read path of uploads (tests hook it). A file of the
    static folder (a :class:`~pipeline.localfs.LocalFile`) is opened only if it is still
    the file the walk saw, through no symlink (:func:`~pipeline.walked.open_walked`);
    its bytes are then checked against the content hash (:func:`verified_bytes`)."""
    if isinstance(path, LocalFile):
        return open_walked(path, same_stamp=False)
    return open(path, "rb")


def read_source(path: StrPath) -> bytes:
    with open_source(path) as handle:
        return handle.read()


def source_chunks(path: StrPath, size: int) -> Iterator[bytes]:
    """A file to upload in chunks of ``size`` bytes, in order."""
    with open_source(path) as handle:
        while chunk := handle.read(size):
            yield chunk


def verified_bytes(upload: Upload) -> bytes:
    """The exact bytes to send for ``upload``, checked against ``upload.sha256``.

    The bytes are hashed after they were read and before they are sent, so what is
    stored is what was hashed; a file rewritten since it was fingerprinted is read
    again once, then fails naming the file.
    """
    for _ in range(READ_TRIES):
        data = upload.body if upload.body is not None else read_source(upload.source)
        if upload.sha256 is None or hashlib.sha256(data).hexdigest() == upload.sha256:
            return data
    raise content_changed(upload)


def content_changed(upload: Upload) -> ContentChanged:
    return ContentChanged(
        f"{os.fspath(upload.source)!r} changed while it was deployed: its bytes no longer have the "
        f"SHA-256 its key was named after ({str(upload.sha256)[:12]}...); nothing was "
        "stored under that key, run the deploy again"
    )


def sha256_base64(hex_digest: str) -> str:
    """The ``x-amz-checksum-sha256`` form of a hex SHA-256 (base64 of the raw digest)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@dataclass(frozen=True)
class UploadFailure:
    key: str
    message: str
    #: The local file no longer has the content hash it was named after.
    content_changed: bool = False


@dataclass
class UploadOutcome:
    """What a batch of uploads achieved; stored objects are confirmed by the backend."""

    stored: dict[str, RemoteObject] = field(default_factory=dict)
    failures: list[UploadFailure] = field(default_factory=list)
    #: Uploads not attempted because the batch stopped after a failure.
    not_attempted: int = 0


@dataclass(frozen=True)
class StoredBytes:
    """A small object read whole, with the ETag a conditional write must match."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class NotModified:
    """A conditional read's answer when the object still has the ETag the caller holds."""

    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD (or a stat of a local file) tells beyond the listing.

    ``None`` means the backend has no such notion (a folder has no stored
    Content-Type: the web server in front of it derives one from the extension).
    """

    size: int
    etag: str | None
    content_type: str | None
    cache_control: str | None
    #: SHA-256 of the stored bytes where reading them is cheap (a folder), else ``None``.
    sha256: str | None = None
    #: The stored ``Content-Encoding`` (``""``: none; ``None``: a folder has no such notion).
    content_encoding: str | None = None


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    failures: list[UploadFailure] = field(default_factory=list)
    #: Delete requests sent (one per batch of up to 1,000 keys on S3).
    requests: int = 0


#: Called from worker threads after each upload that succeeded.
ProgressCallback = Callable[[Upload], None]


class Storage(Protocol):
    """An S3-like flat key space."""

    #: Where objects go, for humans: ``s3://bucket (endpoint)`` or a folder path.
    description: str

    def check(self) -> None:
        """Fail early with a :class:`ConfigError` if the target cannot be used."""

    def upload_files(
        self, uploads: Iterable[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        """Store the files concurrently; stop starting new ones after a failure.

        ``uploads`` is consumed lazily, a few per worker ahead of those in flight, so it
        may be a feed that is still being filled (a deploy queues files as it hashes them);
        it is always read to its end (after a failure the rest count as not attempted)."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        """Store a small object in one request (the manifest)."""

    # -- releases, verify, rollback, prune ---------------------------------------------------

    #: Whether ``list_keys`` reports an ETag per object (S3) or not (a folder).
    listing_has_etags: bool

    def list_keys(self, prefix: str, *, hints: Sequence[str] = ()) -> dict[str, RemoteObject]:
        """Every object whose key starts with ``prefix + '/'``; ``hints`` (expected keys) may
        split a big listing in parallel."""

    def read(self, key: str) -> StoredBytes | None:
        """An object's bytes and ETag, or ``None`` if it does not exist."""

    def put_if(
        self, key: str, data: bytes, *, content_type: str, cache_control: str,
        if_match: str | None = None, if_absent: bool = False,
    ) -> str:
        """Write only if the object still has ETag ``if_match`` (or, ``if_absent``, does not
        exist); raise :class:`~pipeline.errors.ConflictError` otherwise. Returns the new ETag."""

    def supports_conditional_writes(self, prefix: str) -> bool:
        """Whether :meth:`put_if` is really conditional on this backend (probed on S3)."""

    def inspect(self, keys: Iterable[str], *, content: bool = False
                ) -> dict[str, ObjectInfo | None]:
        """Details per key (HEAD on S3, stat and MD5 for a folder); ``None`` = missing.
        With ``content`` the bytes are read and hashed too (``ObjectInfo.sha256``)."""

    def delete_keys(self, keys: Sequence[str]) -> DeleteOutcome:
        """Delete the keys in as few requests as the backend allows."""
