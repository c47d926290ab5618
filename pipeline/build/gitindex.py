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
- it has no ``assume-unchanged`` or ``skip-worktree`` flag (git would not look at
  it) and ``git ls-files -m`` does not list it (git compares stat data and, where
  that changed or is racy, the content itself; the fsmonitor is switched off so
  git looks at the disk);
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
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Attributes under which the working tree bytes may differ from the blob's.
_CONVERTING = ("text", "eol", "filter", "ident", "working-tree-encoding")
_REGULAR_MODES = ("100644", "100755")
#: Generous for 100,000 files on a loaded machine; past it the files are just hashed.
_TIMEOUT_S = 60.0


def clean_blob_ids(folder: Path) -> dict[str, str]:
    """``{path relative to folder: blob id}`` of the files git vouches for (see module doc)."""
    try:
        return _clean_blob_ids(folder)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError, ValueError):
        return {}


def _clean_blob_ids(folder: Path) -> dict[str, str]:
    # Three independent questions at once (each is a process start on a busy CI box);
    # outside a work tree ``ls-files`` fails and nothing is vouched for.
    listing, modified, autocrlf = _git_all(folder, [
        ["ls-files", "-s", "-v", "-z", "--", "."],
        ["ls-files", "-m", "-z", "--", "."],
        ["config", "--get", "core.autocrlf"],  # exit 1 when unset
    ], allowed=[{0}, {0}, {0, 1}])
    if autocrlf.strip().lower() not in (b"", b"false"):
        return {}  # CRLF conversion on checkout or commit: blob bytes != disk bytes
    blobs = _index_blobs(listing)
    for path in _split(modified):
        blobs.pop(path, None)
    for path in _converted(folder, sorted(blobs)):
        blobs.pop(path, None)
    return blobs


def _index_blobs(listing: bytes) -> dict[str, str]:
    """Regular, unflagged, stage-0 entries of ``ls-files -s -v -z`` output."""
    blobs: dict[str, str] = {}
    for record in _split(listing):
        meta, _, path = record.partition("\t")
        fields = meta.split(" ")
        if len(fields) != 4:
            continue
        tag, mode, blob, stage = fields
        # "H" = cached and unflagged; lower case = assume-unchanged, "S" = skip-worktree.
        if tag == "H" and mode in _REGULAR_MODES and stage == "0":
            blobs[path] = blob
    return blobs


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
    for proc, args, codes in zip(procs, commands, allowed):
        if proc.returncode not in codes:
            raise subprocess.SubprocessError(f"git {args[0]} exited {proc.returncode}")
    return outputs


def _command(args: Sequence[str]) -> list[str]:
    return ["git", "-c", "core.fsmonitor=false", "-c", "core.quotepath=false", *args]


def _environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without ``GIT_*`` (a GIT_DIR/GIT_INDEX_FILE set for another repo)."""
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if not k.startswith("GIT_")} | {"LC_ALL": "C"}
