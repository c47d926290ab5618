"""The local side: which files of a folder get deployed, and atomic writes.

Walking is where path safety is decided: a file is deployed only if its real
location is inside the folder, so a symlink can never smuggle ``/etc/passwd``
or ``~/.aws/credentials`` into a public bucket.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import ConfigError, UnsafePathError
from .keys import key_problem
from .pathfilter import PathFilter

#: A file's location as ``open`` takes it (the walk keeps plain strings, see LocalFile).
StrPath = str | os.PathLike[str]

#: Exact names that operating systems and editors leave behind.
JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "ehthumbs.db", "__pycache__"})


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to deploy: its logical path (POSIX, relative to the folder) and where it is.

    ``fspath`` is a plain string: a walk of 100,000 files made as many ``Path`` objects
    (5 us and ~500 bytes each), which the hash cache and ``open`` never needed.
    """

    logical_path: str
    fspath: str
    size: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        return Path(self.fspath)


def is_junk(name: str) -> bool:
    """Dotfiles, OS metadata and editor backups are never deployed."""
    return name.startswith(".") or name.endswith("~") or name in JUNK_NAMES


@dataclass(frozen=True)
class Ignored:
    """A file or folder left out of the deploy, and why (for ``--dry-run``)."""

    logical_path: str
    reason: str


@dataclass
class Scan:
    """What a walk of the static folder found: files to deploy and what it left out."""

    files: list[LocalFile] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    #: Names no storage can take (not UTF-8, control characters), already escaped.
    bad_names: list[str] = field(default_factory=list)


def display_name(name: str) -> str:
    """A file name safe to print: quoted and escaped like ``repr``, never raw control bytes.

    Bytes that are not UTF-8 arrive as lone surrogates (``surrogateescape``) and are
    shown as the ``\\xNN`` they were on disk.
    """
    return re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", repr(name))


def printable_name(name: str) -> str:
    """The name as is when it prints cleanly, else :func:`display_name` (for listings)."""
    return name if name.isprintable() else display_name(name)


def name_problem(name: str) -> str | None:
    """Why a file or folder name cannot go into an object key, or ``None`` when it can.

    The one rule the manifest reader applies to keys (:func:`pipeline.keys.key_problem`):
    what an app would refuse to load is refused here, before anything is uploaded.
    """
    return key_problem(name)


def collect_files(root: Path) -> list[LocalFile]:
    """Every deployable file below ``root``, sorted; see :func:`scan_files`."""
    return scan_files(root).files


def scan_files(root: Path, filters: PathFilter | None = None, *, prefix: str = "") -> Scan:
    """Walk ``root``: the deployable files sorted by logical path, and what was left out.

    ``prefix`` starts every logical path (a blueprint's folder deployed beside the
    app's, :mod:`pipeline.build.mounts`); filters see the whole logical path.

    Symlinks are followed only while they resolve inside ``root``; one that
    points outside raises :class:`UnsafePathError` naming it, as does anything that is
    not a regular file (a dangling link, a FIFO). A name that cannot be a key
    (:func:`name_problem`) stops the deploy with :class:`ConfigError` listing them,
    before anything is hashed or uploaded.
    """
    if not root.is_dir():
        raise ConfigError(f"static folder {str(root)!r} does not exist or is not a folder")
    real_root = root.resolve()
    scan = Scan()
    _walk(root, prefix, real_root, scan, filters or PathFilter(), visited={real_root})
    if scan.bad_names:
        shown = ", ".join(scan.bad_names[:5]) + (" ..." if len(scan.bad_names) > 5 else "")
        raise ConfigError(
            f"{len(scan.bad_names)} file name(s) in {str(root)!r} cannot be object keys: "
            f"{shown}; rename them or --exclude them"
        )
    scan.files.sort(key=lambda item: item.logical_path)
    return scan


def _walk(
    folder: Path, prefix: str, real_root: Path, scan: Scan, filters: PathFilter,
    visited: set[Path],
) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ConfigError(f"cannot read folder {str(folder)!r}: {exc.strerror}") from exc
    filtering = bool(filters)  # asked once per folder, not once per file
    for entry in entries:
        name = entry.name
        logical = prefix + name
        if is_junk(name):
            kind = "dotfile" if name.startswith(".") else "OS or editor junk"
            scan.ignored.append(Ignored(logical, kind))
            continue
        if entry.is_symlink():
            _check_link_target(Path(entry.path), logical, real_root)
        try:
            info = entry.stat()  # follows links, which are now known to stay inside
        except OSError as exc:
            raise ConfigError(f"cannot read {display_name(logical)} in the static folder: "
                              f"{exc.strerror}") from exc
        is_dir = stat.S_ISDIR(info.st_mode)
        reason = filters.excluded_by(logical, is_dir=is_dir) if filtering else None
        if reason:
            scan.ignored.append(Ignored(logical + ("/" if is_dir else ""), reason))
            continue
        if (problem := name_problem(name)) is not None:
            scan.bad_names.append(f"{display_name(logical)} ({problem})")
            continue
        if is_dir:
            real = Path(entry.path).resolve()
            if real not in visited:  # a link back up the tree must not loop forever
                _walk(Path(entry.path), logical + "/", real_root, scan, filters, visited | {real})
        elif stat.S_ISREG(info.st_mode):
            if not os.access(entry.path, os.R_OK):
                raise ConfigError(f"cannot read {display_name(logical)} in the static folder: "
                                  "permission denied")
            scan.files.append(LocalFile(logical, entry.path, info.st_size, info.st_mtime_ns))
        else:
            raise ConfigError(f"{display_name(logical)} in the static folder is not a regular file")


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
