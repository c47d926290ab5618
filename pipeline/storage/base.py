"""The interface every storage backend offers, and the values it exchanges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..plan import RemoteObject


@dataclass(frozen=True)
class Upload:
    """One local file to store under ``key`` with these headers."""

    key: str
    source: Path
    size: int
    content_type: str
    cache_control: str
    #: Bytes to store instead of the file's (a rewritten CSS file), or ``None``.
    body: bytes | None = None


@dataclass(frozen=True)
class UploadFailure:
    key: str
    message: str


@dataclass
class UploadOutcome:
    """What a batch of uploads achieved; stored objects are confirmed by the backend."""

    stored: dict[str, RemoteObject] = field(default_factory=dict)
    failures: list[UploadFailure] = field(default_factory=list)
    #: Uploads not attempted because the batch stopped after a failure.
    not_attempted: int = 0


#: Called from worker threads after each upload that succeeded.
ProgressCallback = Callable[[Upload], None]


class Storage(Protocol):
    """An S3-like flat key space."""

    #: Where objects go, for humans: ``s3://bucket (endpoint)`` or a folder path.
    description: str

    def check(self) -> None:
        """Fail early with a :class:`ConfigError` if the target cannot be used."""

    def list_objects(self, prefix: str) -> dict[str, RemoteObject]:
        """Every object whose key starts with ``prefix + '/'``."""

    def upload_files(
        self, uploads: Sequence[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        """Store the files concurrently; stop starting new ones after a failure."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        """Store a small object in one request (the manifest)."""

    def get_bytes(self, key: str) -> bytes | None:
        """Return an object's bytes, or ``None`` if it does not exist."""
