"""The local copies of the manifest the Flask app reads: written last, atomically, and
only rewritten when their bytes change."""

from __future__ import annotations

from pathlib import Path

from ..errors import DeployError, ManifestError
from ..localfs import write_atomic
from ..releasedoc import ReleaseDoc


def write_local_manifest(path: Path, doc: ReleaseDoc, *, published: bytes | None = None) -> None:
    """The same bytes as the published manifest, written atomically for the Flask app.

    ``published`` is the current manifest as read from the target, when ``doc`` was parsed
    from it: those bytes are written as they are (encoding a 100,000-file document again
    took a second and 100 MiB). An identical file is left alone: rewriting it would bump
    its mtime, and apps that reload on change would reload for nothing.
    """
    write_local_bytes(path, doc.to_json() if published is None else published)


def write_local_bytes(path: Path, data: bytes) -> None:
    """:func:`write_local_manifest` of a current manifest's bytes as read (a recognised one
    is never decoded: :class:`pipeline.release.documents.Current`)."""
    try:
        if path.is_file() and _file_holds(path, data):
            return
        write_atomic(path, data, unique=True)  # concurrent deploys in one process
    except OSError as exc:
        raise ManifestError(f"cannot write manifest {str(path)!r}: {exc.strerror}") from exc


def _file_holds(path: Path, data: bytes, chunk_size: int = 1 << 20) -> bool:
    """Whether the file's bytes are ``data``, compared a chunk at a time: a 100,000-file
    manifest is 31 MiB, and reading it whole beside ``data`` set a re-run's peak memory."""
    if path.stat().st_size != len(data):
        return False
    view, offset = memoryview(data), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            if view[offset:offset + len(chunk)] != chunk:
                return False
            offset += len(chunk)
    return offset == len(data)


def write_published_manifest(path: Path, doc: ReleaseDoc, *, manifest_key: str, redo: str) -> None:
    """:func:`write_local_manifest` after ``doc`` was made current: a failure is exit 1
    (:class:`DeployError`, not the usage error it is before publishing) and says that the
    release *is* live, then how to get the manifest: ``redo`` (a command that changes
    nothing remotely) or a download of ``manifest_key``.
    """
    try:
        write_local_manifest(path, doc)
    except ManifestError as exc:
        raise DeployError(
            f"release {doc.release_id} is live, but {exc}; fix that and {redo}, or download "
            f"{manifest_key!r} from the target"
        ) from exc
