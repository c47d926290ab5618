"""Atomic writes: a file is replaced whole or not at all.

Readers (the Flask app, a web server in front of a folder target, the next deploy) see
the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import ConfigError


def check_writable(path: Path, what: str) -> None:
    """Fail early (:class:`ConfigError`) if ``path`` could not be written atomically.

    Atomic writes create a temporary file next to ``path``: what matters is that the
    nearest existing folder above it is writable (missing folders get created).
    """
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder, not a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {str(path)!r}: folder {str(folder)!r} is not "
                          "writable; fix its permissions or choose another path (--manifest)")


@contextmanager
def replacing(path: Path, *, unique: bool = False) -> Iterator[IO[bytes]]:
    """A temporary file next to ``path``, renamed over it if the block succeeds.

    Readers see the old file or the new one, never a torn one, and a failed write
    leaves no temporary file behind. The temporary name is per process, or with
    ``unique`` per call (``mkstemp``), so threads writing one path never share it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if unique:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp makes 0600 files; published files must be readable by the web server
        # (nginx runs as another user), like those open() creates under the usual umask.
        os.fchmod(fd, 0o644)
        tmp = Path(name)
    else:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(fd, "wb") if unique else open(tmp, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, *, unique: bool = False) -> None:
    """Write ``data`` durably (fsync) through :func:`replacing`."""
    with replacing(path, unique=unique) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
