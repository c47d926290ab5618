"""Git blob ids of the static files that git vouches for, without reading the files.

A fresh CI checkout has new mtimes and no hash cache, so every file would be read
and hashed again. Git already knows each tracked file's content id (its blob id,
in the index: ``git ls-files -s`` reads no file). A release records, beside each
plain file's SHA-256, the blob id it had; a later deploy whose file has the same
path, size and blob id reuses that SHA-256 instead of reading the file.

That is only safe when the blob id describes the bytes on disk, so a file is
vouched for only when all of these hold (anything else is hashed as usual):

- it is tracked, at stage 0 (no merge conflict), as a regular file (mode 100644 or
  100755: a symlink's blob is its target's name, not the bytes we upload);
- it has no ``assume-unchanged`` or ``skip-worktree`` flag, and it is clean by
  git's own rule: the file's ``lstat`` now (size, mtime and ctime to the
  nanosecond, inode, owner) equals what the index recorded when git wrote or
  checked it (``git ls-files --debug``), and the entry is not *racy*: the file's
  mtime is older than the index file's, so it cannot have been rewritten within the
  same timestamp tick after git looked. Git itself would read a stat-changed or
  racy file to compare it; we hash it instead (SHA-256 is cheaper than git's
  collision-detecting SHA-1, and right after a checkout many entries are racy);
- git converts nothing between the blob and the working tree: no ``text``,
  ``eol``, ``filter`` (LFS), ``ident`` or ``working-tree-encoding`` attribute and
  ``core.autocrlf`` off, so the working tree bytes are the blob's bytes.

Untracked and generated files are not in the index, so they are always hashed.
Any git failure (no git, not a work tree, an unsafe repository) means no file is
vouched for. ``GIT_*`` variables are dropped, so a ``GIT_DIR`` meant for another
repository cannot answer for this folder.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Attributes under which the working tree bytes may differ from the blob's.
_CONVERTING = ("text", "eol", "filter", "ident", "working-tree-encoding")
_REGULAR_MODES = ("100644", "100755")
_U32 = 0xFFFFFFFF
#: ``ctime: 1795955775:283809586``, ``ino: 2179987``, ``size: 2`` in ``ls-files --debug``.
_DEBUG_FIELD = re.compile(r"\b(ctime|mtime|ino|uid|gid|size): ([0-9:]+)")
#: Generous for 100,000 files on a loaded machine; past it the files are just hashed.
_TIMEOUT_S = 60.0


def clean_blob_ids(folder: Path) -> dict[str, str]:
    """``{path relative to folder: blob id}`` of the files git vouches for (see module doc)."""
    try:
        return _clean_blob_ids(folder)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError, ValueError):
        return {}


def _clean_blob_ids(folder: Path) -> dict[str, str]:
    index_file = _git(folder, ["rev-parse", "--git-path", "index"]).rstrip(b"\n").decode()
    # Stat the index before listing it: a concurrent rewrite can only make the racy
    # threshold older than the listing, which vouches for fewer files, never more.
    index_mtime_ns = os.stat(folder / index_file).st_mtime_ns
    listing, config = _git_all(folder, [
        ["ls-files", "-s", "-v", "--debug", "-z", "--", "."],
        ["config", "-z", "--get-regexp", r"^core\.(autocrlf|splitindex)$"],  # exit 1: none set
    ], allowed=[{0}, {0, 1}])
    if _unsafe_config(config):
        return {}
    blobs = {path: entry.blob for path, entry in _index_entries(listing).items()
             if entry.matches(folder / path, index_mtime_ns)}
    for path in _converted(folder, sorted(blobs)):
        blobs.pop(path, None)
    return blobs


def _unsafe_config(config: bytes) -> bool:
    """CRLF conversion (blob bytes != disk bytes) or a split index (its own timestamps)."""
    for record in _split(config):
        name, _, value = record.partition("\n")
        value = value.strip().lower()
        if name.lower() == "core.autocrlf" and value not in ("", "false"):
            return True
        if name.lower() == "core.splitindex" and value not in ("false", "no", "off", "0"):
            return True
    return False


@dataclass(frozen=True)
class _IndexEntry:
    """What the index recorded for a regular, unflagged, stage-0 file."""

    blob: str
    stat: tuple[int, ...]  # ctime s, ctime ns, mtime s, mtime ns, inode, uid, gid, size

    def matches(self, path: Path, index_mtime_ns: int) -> bool:
        """The file is as git last saw it, and not racily so (see the module doc)."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns >= index_mtime_ns:
            return False
        now = (*_split_ns(st.st_ctime_ns), *_split_ns(st.st_mtime_ns),
               st.st_ino & _U32, st.st_uid & _U32, st.st_gid & _U32, st.st_size & _U32)
        return now == self.stat


def _split_ns(ns: int) -> tuple[int, int]:
    """The index keeps 32-bit seconds and the nanoseconds apart."""
    return (ns // 1_000_000_000) & _U32, ns % 1_000_000_000


def _index_entries(listing: bytes) -> dict[str, _IndexEntry]:
    """Parse ``ls-files -s -v --debug -z``: ``<header>\0`` then 5 debug lines per entry."""
    text = listing.decode("utf-8")
    parts = text.split("\0")
    entries: dict[str, _IndexEntry] = {}
    header = parts[0]
    for part in parts[1:]:
        lines = part.split("\n", 5)
        if len(lines) < 6:
            break  # the end (or output we do not understand: vouch for nothing more)
        entry = _entry(header, lines[:5])
        if entry is not None:
            entries[entry[0]] = entry[1]
        header = lines[5]
    return entries


def _entry(header: str, debug: list[str]) -> tuple[str, _IndexEntry] | None:
    meta, _, path = header.partition("\t")
    fields = meta.split(" ")
    if len(fields) != 4:
        return None
    tag, mode, blob, stage = fields
    # "H" = cached and unflagged; lower case = assume-unchanged, "S" = skip-worktree.
    if tag != "H" or mode not in _REGULAR_MODES or stage != "0":
        return None
    values = dict(_DEBUG_FIELD.findall("\n".join(debug)))
    try:
        ctime_s, ctime_ns = values["ctime"].split(":")
        mtime_s, mtime_ns = values["mtime"].split(":")
        recorded = (int(ctime_s), int(ctime_ns), int(mtime_s), int(mtime_ns), int(values["ino"]),
                    int(values["uid"]), int(values["gid"]), int(values["size"]))
    except (KeyError, ValueError):
        return None
    return path, _IndexEntry(blob, recorded)


def _converted(folder: Path, paths: Sequence[str]) -> set[str]:
    """Paths with any converting attribute set (``unspecified``/``unset`` convert nothing)."""
    if not paths:
        return set()
    out = _git(folder, ["check-attr", "-z", "--stdin", *_CONVERTING],
               stdin=b"".join(p.encode("utf-8") + b"\0" for p in paths))
    fields = _split(out)
    converted: set[str] = set()
    for i in range(0, len(fields) - 2, 3):
        path, _attr, value = fields[i:i + 3]
        if value not in ("unspecified", "unset"):
            converted.add(path)
    return converted


def _split(data: bytes) -> list[str]:
    # Names that are not UTF-8 are refused by the walk anyway; strict decoding keeps
    # a git path from ever matching a different logical path.
    return [part.decode("utf-8") for part in data.split(b"\0") if part]


def _git(folder: Path, args: Sequence[str], *, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(_command(args), cwd=folder, input=stdin, capture_output=True,
                          timeout=_TIMEOUT_S, env=_environment(), check=False)
    if done.returncode != 0:
        raise subprocess.SubprocessError(f"git {args[0]} exited {done.returncode}")
    return done.stdout


def _git_all(folder: Path, commands: Sequence[Sequence[str]],
             allowed: Sequence[set[int]]) -> list[bytes]:
    """Run several git commands concurrently; their outputs, or an error if one failed."""
    env = _environment()
    procs = [subprocess.Popen(_command(args), cwd=folder, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
             for args in commands]
    outputs: list[bytes] = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=_TIMEOUT_S)
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, args, codes in zip(procs, commands, allowed, strict=True):
        if proc.returncode not in codes:
            raise subprocess.SubprocessError(f"git {args[0]} exited {proc.returncode}")
    return outputs


def _command(args: Sequence[str]) -> list[str]:
    return ["git", "-c", "core.fsmonitor=false", "-c", "core.quotepath=false", *args]


def _environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without ``GIT_*`` (a GIT_DIR/GIT_INDEX_FILE set for another repo)."""
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if not k.startswith("GIT_")} | {"LC_ALL": "C"}
