"""Opening files and folders below a folder without following any symlink.

A path is looked up again every time it is opened, so a file the walk checked can be
swapped for a symlink (or a folder on its way for a link elsewhere) before it is read:
``open("static/img/a.png")`` would then read ``/etc/hostname`` or the process's
environment. Here each component is opened relative to the folder above it
(``openat``) with ``O_NOFOLLOW``: a component that is a symlink fails the open
(``ELOOP``) instead of being followed, so what is opened is always inside the folder
the walk started from. (Linux's ``openat2(RESOLVE_NO_SYMLINKS)`` does this in one call,
but Python does not expose it.)

Leaf module: plain descriptors and ``OSError``; callers turn those into messages.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

#: The static folder itself: the operator named it, so a link there is theirs to follow.
ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: A folder below it: never through a symlink.
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: A file below it: never through a symlink, and never blocking on a FIFO put in its place
#: (an open for reading waits for a writer); the caller checks it is a regular file.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

#: What an open with ``O_NOFOLLOW`` says when a component is a symlink (``ELOOP``) or a
#: folder on the way is no longer a folder (``ENOTDIR``): the tree changed under us.
SWAPPED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR})


def open_folder_below(dir_fd: int, parts: Sequence[str]) -> int:
    """A new descriptor of the folder ``parts`` below ``dir_fd``, no symlink followed.

    With no parts it is a duplicate of ``dir_fd``. The caller closes the result.
    """
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            child = os.open(part, FOLDER_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_below(root: str, parts: Sequence[str]) -> int:
    """A descriptor of the file ``parts`` below the folder ``root``, no symlink followed
    below ``root``. Raises ``OSError`` (``ELOOP``/``ENOTDIR`` when a component was a link
    or not a folder). The caller checks what it opened (``fstat``) and closes it.
    """
    root_fd = os.open(root or ".", ROOT_FLAGS)
    try:
        parent = open_folder_below(root_fd, parts[:-1])
    finally:
        os.close(root_fd)
    try:
        return os.open(parts[-1], FILE_FLAGS, dir_fd=parent)
    finally:
        os.close(parent)


class FolderCache:
    """The folder of the last file opened below a root, kept open for the next file.

    Opening a file component by component costs one ``openat`` per folder; a hashing
    worker reads files in path order, so most files share the previous one's folder, and
    reusing its descriptor makes a cold hash of 10,000 files in 3 levels of folders as
    fast as plain ``open`` again. The descriptor is of the folder as it was when opened
    (no link followed); callers check the identity of each file opened through it.
    Holds at most one descriptor; close it (or use ``with``) when done.
    """

    def __init__(self) -> None:
        self._key: tuple[str, tuple[str, ...]] | None = None
        self._fd = -1

    def folder(self, root: str, parts: Sequence[str]) -> int:
        """A descriptor of folder ``parts`` below ``root``, owned by the cache."""
        key = (root, tuple(parts))
        if key != self._key:
            self.close()
            root_fd = os.open(root or ".", ROOT_FLAGS)
            try:
                self._fd = open_folder_below(root_fd, parts)
            finally:
                os.close(root_fd)
            self._key = key
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._key = -1, None

    def __enter__(self) -> FolderCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_file_in(folders: FolderCache, root: str, parts: Sequence[str]) -> int:
    """:func:`open_file_below` through ``folders``: the file's folder is opened at most once
    while consecutive files share it."""
    return os.open(parts[-1], FILE_FLAGS, dir_fd=folders.folder(root, parts[:-1]))


def is_swapped(exc: OSError) -> bool:
    """Whether an open below a folder failed because a component is now a symlink (or no
    longer a folder): someone changed the tree after it was walked."""
    return exc.errno in SWAPPED_ERRNOS
