"""The local side: which files of a folder get deployed, and atomic writes.

Walking is where path safety is decided: a file is deployed only if its real
location is inside the folder, so a symlink can never smuggle ``/etc/passwd``
or ``~/.aws/credentials`` into a public bucket.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import ConfigError, UnsafePathError

#: Exact names that operating systems and editors leave behind.
JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "ehthumbs.db", "__pycache__"})


@dataclass(frozen=True)
class LocalFile:
    """A file to deploy: its logical path (POSIX, relative to the folder) and where it is."""

    logical_path: str
    path: Path
    size: int
    mtime_ns: int


def is_junk(name: str) -> bool:
    """Dotfiles, OS metadata and editor backups are never deployed."""
    return name.startswith(".") or name.endswith("~") or name in JUNK_NAMES


def collect_files(root: Path) -> list[LocalFile]:
    """Return every deployable file below ``root``, sorted by logical path.

    Symlinks are followed only while they resolve inside ``root``; one that
    points outside raises :class:`UnsafePathError` naming it, as does anything that is
    not a regular file (a dangling link, a FIFO).
    """
    if not root.is_dir():
        raise ConfigError(f"static folder {str(root)!r} does not exist or is not a folder")
    real_root = root.resolve()
    found: list[LocalFile] = []
    _walk(root, "", real_root, found, visited={real_root})
    found.sort(key=lambda item: item.logical_path)
    return found


def _walk(
    folder: Path, prefix: str, real_root: Path, found: list[LocalFile], visited: set[Path]
) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ConfigError(f"cannot read folder {str(folder)!r}: {exc.strerror}") from exc
    for entry in entries:
        if is_junk(entry.name):
            continue
        logical = prefix + entry.name
        if entry.is_symlink():
            _check_link_target(Path(entry.path), logical, real_root)
        try:
            info = entry.stat()  # follows links, which are now known to stay inside
        except OSError as exc:
            raise ConfigError(f"cannot read {logical!r} in the static folder: {exc.strerror}") from exc
        if stat.S_ISDIR(info.st_mode):
            real = Path(entry.path).resolve()
            if real not in visited:  # a link back up the tree must not loop forever
                _walk(Path(entry.path), logical + "/", real_root, found, visited | {real})
        elif stat.S_ISREG(info.st_mode):
            if not os.access(entry.path, os.R_OK):
                raise ConfigError(f"cannot read {logical!r} in the static folder: permission denied")
            found.append(LocalFile(logical, Path(entry.path), info.st_size, info.st_mtime_ns))
        else:
            raise ConfigError(f"{logical!r} in the static folder is not a regular file")


def _check_link_target(path: Path, logical: str, real_root: Path) -> None:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{logical!r} in the static folder is a broken symlink") from exc
    if not target.is_relative_to(real_root):
        raise UnsafePathError(
            f"refusing {logical!r}: it is a symlink to {str(target)!r}, outside the static "
            "folder; copy the file in or remove the link"
        )


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
