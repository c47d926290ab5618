"""The local side: which files of a folder get deployed, and reading them safely.

Walking is where path safety is decided: a file is deployed only if its real
location is inside the folder, so a symlink can never smuggle ``/etc/passwd``
or ``~/.aws/credentials`` into a public bucket. The walk opens every folder through
descriptors without following links (:mod:`pipeline.nofollow`) and records each file's
identity (device, inode, size, times); every later read goes through
:func:`pipeline.walked.open_walked`, which opens the same way and refuses a file that is
not the one the walk saw. So a file swapped for a symlink once the deploy started is never
read through the link.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import check_writable, replacing, write_atomic
from .errors import ConfigError, UnsafePathError
from .keyrule import key_problem
from .nofollow import FOLDER_FLAGS, ROOT_FLAGS, is_swapped, open_folder_below
from .pathfilter import PathFilter

__all__ = ["check_writable", "replacing", "write_atomic"]  # their old home: re-exported

#: A file's location as ``open`` takes it (the walk keeps plain strings, see LocalFile).
StrPath = str | os.PathLike[str]

#: Exact names that operating systems and editors leave behind.
JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "ehthumbs.db", "__pycache__"})


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to deploy: its logical path (POSIX, relative to the folder), where it is, and
    what the walk saw of it. Read it only through :func:`pipeline.walked.open_walked`.

    ``fspath`` is a plain string: a walk of 100,000 files made as many ``Path`` objects
    (5 us and ~500 bytes each), which the hash cache and ``open`` never needed. It is the
    folder as given, then the file's path below it with no symlink in it (a link inside the
    folder is resolved by the walk), starting at ``fspath[base_len:]``.
    """

    logical_path: str
    fspath: str
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    base_len: int

    @property
    def path(self) -> Path:
        return Path(self.fspath)

    def __fspath__(self) -> str:
        """A plain path, for messages and the hash cache; reading goes through open_walked."""
        return self.fspath

    def __str__(self) -> str:
        return self.fspath


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
    #: Files with more than one hard link, by (device, inode): the link count and the files
    #: found with that identity (see :func:`check_hard_links`).
    linked: dict[tuple[int, int], tuple[int, list[LocalFile]]] = field(default_factory=dict)


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

    The one rule the manifest reader applies to keys (:func:`pipeline.keyrule.key_problem`):
    what an app would refuse to load is refused here, before anything is uploaded.
    """
    return key_problem(name)


def collect_files(root: Path, *, allow_hard_links: bool = False) -> list[LocalFile]:
    """Every deployable file below ``root``, sorted; see :func:`scan_files`."""
    return scan_files(root, allow_hard_links=allow_hard_links).files


def scan_files(root: Path, filters: PathFilter | None = None, *, prefix: str = "",
               allow_hard_links: bool = False) -> Scan:
    """Walk ``root``: the deployable files sorted by logical path, and what was left out.

    ``prefix`` starts every logical path (a blueprint's folder deployed beside the
    app's, :mod:`pipeline.build.mounts`); filters see the whole logical path.

    Symlinks are followed only while they resolve inside ``root``; one that
    points outside raises :class:`UnsafePathError` naming it, as does anything that is
    not a regular file (a dangling link, a FIFO). A name that cannot be a key
    (:func:`name_problem`) stops the deploy with :class:`ConfigError` listing them,
    before anything is hashed or uploaded, as does (unless ``allow_hard_links``) a file
    with a hard link this walk did not meet (:func:`check_hard_links`).
    """
    if not root.is_dir():
        raise ConfigError(f"static folder {str(root)!r} does not exist or is not a folder")
    try:
        root_fd = os.open(root, ROOT_FLAGS)
    except OSError as exc:
        raise ConfigError(f"cannot read folder {str(root)!r}: {exc.strerror}") from exc
    walker = _Walker(root, root_fd, filters or PathFilter())
    try:
        top = os.fstat(root_fd)
        walker.folder(root_fd, "", prefix, frozenset({(top.st_dev, top.st_ino)}))
    finally:
        os.close(root_fd)
    scan = walker.scan
    if scan.bad_names:
        shown = ", ".join(scan.bad_names[:5]) + (" ..." if len(scan.bad_names) > 5 else "")
        raise ConfigError(
            f"{len(scan.bad_names)} file name(s) in {str(root)!r} cannot be object keys: "
            f"{shown}; rename them or --exclude them"
        )
    if not allow_hard_links:
        check_hard_links(scan)
    scan.files.sort(key=lambda item: item.logical_path)
    return scan


class _Walker:
    """One walk: folders opened by descriptor, below the root, never through a link."""

    def __init__(self, root: Path, root_fd: int, filters: PathFilter) -> None:
        self.base = os.path.join(str(root), "")
        self.real_root = root.resolve()
        self.root_fd = root_fd
        self.filters = filters
        self.scan = Scan()

    def folder(self, fd: int, where: str, prefix: str, visited: frozenset[tuple[int, int]]
               ) -> None:
        """Walk the folder open as ``fd``, at ``where`` below the root (real path, ``/``
        at the end unless empty), whose logical path is ``prefix``."""
        try:
            entries = sorted(os.scandir(fd), key=lambda e: e.name)
        except OSError as exc:
            raise ConfigError(f"cannot read folder {display_name(prefix or '.')} in the static "
                              f"folder: {exc.strerror}") from exc
        filtering = bool(self.filters)  # asked once per folder, not once per file
        for entry in entries:
            name = entry.name
            logical = prefix + name
            if is_junk(name):
                kind = "dotfile" if name.startswith(".") else "OS or editor junk"
                self.scan.ignored.append(Ignored(logical, kind))
                continue
            real, info = self._locate(fd, where, name, logical)
            is_dir = stat.S_ISDIR(info.st_mode)
            reason = self.filters.excluded_by(logical, is_dir=is_dir) if filtering else None
            if reason:
                self.scan.ignored.append(Ignored(logical + ("/" if is_dir else ""), reason))
                continue
            if (problem := name_problem(name)) is not None:
                self.scan.bad_names.append(f"{display_name(logical)} ({problem})")
                continue
            if is_dir:
                if (info.st_dev, info.st_ino) not in visited:  # a link back up must not loop
                    self._descend(fd, where, name, real, logical, visited)
            elif stat.S_ISREG(info.st_mode):
                self._add(logical, real, info)
            else:
                raise ConfigError(f"{display_name(logical)} in the static folder is not a "
                                  "regular file")

    def _locate(self, fd: int, where: str, name: str, logical: str
                ) -> tuple[str, os.stat_result]:
        """The entry's real path below the root and its ``lstat`` there (a link resolved,
        checked to stay inside, and stat'ed by opening its target's folder below the root)."""
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                return where + name, info
            real = _link_target(self.real_root, where + name, logical)
            if not real:  # a link to the static folder itself: a loop, skipped as visited
                return real, os.fstat(self.root_fd)
            parts = real.split("/")
            parent = open_folder_below(self.root_fd, parts[:-1])
            try:
                info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)
        except OSError as exc:
            if is_swapped(exc):
                raise swapped_error(logical) from exc
            raise ConfigError(f"cannot read {display_name(logical)} in the static folder: "
                              f"{exc.strerror}") from exc
        if stat.S_ISLNK(info.st_mode):  # resolved a moment ago: the tree is changing under us
            raise swapped_error(logical)
        return real, info

    def _descend(self, fd: int, where: str, name: str, real: str, logical: str,
                 visited: frozenset[tuple[int, int]]) -> None:
        """Walk a subfolder, opened by name below ``fd`` or, for a link, by its real path
        below the root: never through a link either way."""
        try:
            sub = (os.open(name, FOLDER_FLAGS, dir_fd=fd) if real == where + name
                   else open_folder_below(self.root_fd, real.split("/") if real else []))
        except OSError as exc:
            if is_swapped(exc):
                raise swapped_error(logical) from exc
            raise ConfigError(f"cannot read folder {display_name(logical)} in the static "
                              f"folder: {exc.strerror}") from exc
        try:
            opened = os.fstat(sub)
            if (opened.st_dev, opened.st_ino) not in visited:
                self.folder(sub, real + "/" if real else "", logical + "/",
                            visited | {(opened.st_dev, opened.st_ino)})
        finally:
            os.close(sub)

    def _add(self, logical: str, real: str, info: os.stat_result) -> None:
        # Readability is checked for the files that must be read (check_readable), not here:
        # an access() per file was a fifth of a 100,000-file walk that usually reads none.
        fspath = self.base + real
        self.scan.files.append(LocalFile(
            logical, fspath, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
            info.st_dev, info.st_ino, len(self.base)))
        if info.st_nlink > 1:
            names = self.scan.linked.setdefault((info.st_dev, info.st_ino), (info.st_nlink, []))
            names[1].append(self.scan.files[-1])


def check_readable(files: Iterable[LocalFile]) -> None:
    """Refuse (:class:`ConfigError`) the first of ``files`` this process may not read, with
    a clear message before anything is read or uploaded; :func:`pipeline.walked.open_walked`
    is the real check. Only files that must be read are asked about: a chmod moves the
    ctime, so a file whose hash is cached under its stamp was readable when it was hashed."""
    for item in files:
        if not os.access(item.fspath, os.R_OK):
            raise ConfigError(f"cannot read {display_name(item.logical_path)} in the static "
                              "folder: permission denied")


def _link_target(real_root: Path, where: str, logical: str) -> str:
    """The real path below ``real_root`` that the link at ``where`` resolves to."""
    try:
        target = Path(os.path.realpath(real_root / where, strict=True))
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{display_name(logical)} in the static folder is a broken "
                          "symlink") from exc
    if not target.is_relative_to(real_root):
        raise UnsafePathError(
            f"refusing {display_name(logical)}: it is a symlink to {str(target)!r}, outside "
            "the static folder; copy the file in or remove the link"
        )
    relative = target.relative_to(real_root).as_posix()
    return "" if relative == "." else relative


def swapped_error(logical: str) -> UnsafePathError:
    """The refusal of a file (or a folder on its way) that became a symlink mid-deploy."""
    return UnsafePathError(
        f"refusing {display_name(logical)}: it, or a folder on its way, was replaced by a "
        "symlink (or another kind of file) while the deploy read the static folder; nothing "
        "was published: find out what writes to the static folder during deploys"
    )


def check_hard_links(scan: Scan) -> None:
    """Refuse a file with a hard link the walk did not meet as a deployed file.

    A hard link is the file itself under another name: from inside the folder nothing
    tells a link to ``/etc/passwd`` or to a secret from a file put there on purpose, and
    finding a link's other names means searching the whole file system. So a file with
    more links than the walk found names for (distinct real paths) is refused; one whose
    every name is a deployed file here is fine. Raises :class:`UnsafePathError`.
    """
    odd = []
    for count, files in scan.linked.values():
        names = {item.fspath for item in files}
        if len(names) < count:
            odd.append(f"{display_name(files[0].logical_path)} ({count} links, "
                       f"{len(names)} here)")
    if odd:
        shown = ", ".join(sorted(odd)[:5]) + (" ..." if len(odd) > 5 else "")
        raise UnsafePathError(
            f"refusing {len(odd)} hard-linked file(s) whose other names are not deployed "
            f"files of the static folder: {shown}; a hard link can make any file the deploy "
            "can read look like a static file: copy them instead, or --allow-hard-links if "
            "you know every name"
        )
