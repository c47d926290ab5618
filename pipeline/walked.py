"""Reading the files a walk found: only those files, and never through a symlink.

:func:`open_walked` opens a :class:`~pipeline.localfs.LocalFile` below its static folder
without following any link (:mod:`pipeline.nofollow`) and checks, on the descriptor, that
it is the file the walk recorded. Hashing, the CSS/JS reads, variant encoding and every
upload read through here, so a file swapped after the walk is refused, not read.
"""

from __future__ import annotations

import errno
import io
import os
import stat

from .errors import FileChangedError
from .localfs import LocalFile, display_name, swapped_error
from .nofollow import FolderCache, is_swapped, open_file_below, open_file_in


def open_walked(item: LocalFile, *, same_stamp: bool = True,
                folders: FolderCache | None = None) -> io.BufferedReader:
    """Open a file the walk found, for reading, only if it is still that file.

    No symlink below the static folder is followed (:mod:`pipeline.nofollow`), so a file
    or folder swapped for a link since the walk raises :class:`UnsafePathError`; a file
    with another identity (device and inode: replaced by a rename, or a different file)
    raises :class:`FileChangedError`, as does, with ``same_stamp`` (hashing: the hash must
    belong to the size and times recorded), a changed size, mtime or ctime. Uploads pass
    ``same_stamp=False``: they check the bytes against the content hash instead.
    ``folders`` keeps the last file's folder open for the next one (hashing many files).
    """
    root, parts = item.fspath[:item.base_len], item.fspath[item.base_len:].split("/")
    try:
        fd = (open_file_below(root, parts) if folders is None
              else open_file_in(folders, root, parts))
    except OSError as exc:
        if is_swapped(exc):
            raise swapped_error(item.logical_path) from exc
        if exc.errno == errno.ENOENT:  # it, or a folder on its way, was removed or renamed
            raise _changed(item, "was removed") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise swapped_error(item.logical_path)
        if (info.st_dev, info.st_ino) != (item.dev, item.ino):
            raise _changed(item, "was replaced by another file")
        if same_stamp and (info.st_size, info.st_mtime_ns, info.st_ctime_ns) != (
                item.size, item.mtime_ns, item.ctime_ns):
            raise _changed(item, "was modified")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_walked(item: LocalFile) -> bytes:
    """All of a walked file's bytes, through :func:`open_walked`."""
    with open_walked(item) as handle:
        return handle.read()


def _changed(item: LocalFile, how: str) -> FileChangedError:
    return FileChangedError(
        f"{display_name(item.logical_path)} {how} while the deploy read the static folder; "
        "nothing was published: run the deploy again"
    )
