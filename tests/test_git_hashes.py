"""Hashes vouched for by git: a fresh checkout re-deploys without reading unchanged files.

What must never happen is a stale hash: a file whose bytes differ from what the
release recorded (modified, untracked, converted by git, flagged so git does not
look) is always read and hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.build.gitindex import clean_blob_ids
from tests.helpers import S3Env, write_tree
from tests.test_foreign_project import deploy_py

FILES = {
    "static/img/a.png": b"\x89PNG a-bytes",
    "static/img/b.png": b"\x89PNG b-bytes",
    "static/js/app.js": b"console.log(1);\n",
    "static/css/site.css": b"body { background: url(../img/a.png); }\n",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True, timeout=60).stdout


def make_repo(root: Path, files: dict[str, bytes] = FILES) -> Path:
    write_tree(root, files)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "site")
    return root


def settle(repo: Path) -> None:
    """Like a checkout some time ago: files older than the index, which knows their stat.

    Right after a small checkout, the files and the index share a timestamp tick: git
    calls such entries racy and they are hashed, which is correct but not what most
    files of a real checkout are.
    """
    past = time.time() - 60
    for path in (repo / "static").rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (past, past))
    git(repo, "update-index", "-q", "--refresh")


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_clean_tracked_files_have_their_blob_ids(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    settle(repo)
    blobs = clean_blob_ids(repo / "static")
    assert blobs == {path.removeprefix("static/"): blob_id(data) for path, data in FILES.items()}


def test_modified_untracked_flagged_converted_and_linked_files_are_not_vouched_for(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {**FILES, "static/img/c.png": b"c", "static/t.txt": b"t\n",
                                         "static/img/d.png": b"d"})
    static = repo / "static"
    settle(repo)
    (static / "img/a.png").write_bytes(b"\x89PNG A-BYTES")  # same size, new bytes
    (static / "new.png").write_bytes(b"untracked")
    git(repo, "update-index", "--assume-unchanged", "static/img/b.png")
    git(repo, "update-index", "--skip-worktree", "static/img/c.png")
    (repo / ".gitattributes").write_text("*.txt text\n")
    (static / "link.png").symlink_to("img/d.png")
    git(repo, "add", "static/link.png")
    blobs = clean_blob_ids(static)
    assert set(blobs) == {"img/d.png", "js/app.js", "css/site.css"}


def test_a_racy_entry_is_not_vouched_for(tmp_path: Path) -> None:
    """A file not older than the index may have changed within the tick git looked at it."""
    repo = make_repo(tmp_path / "repo")
    settle(repo)
    future = time.time() + 60
    os.utime(repo / "static/img/a.png", (future, future))
    git(repo, "update-index", "-q", "--refresh")  # the index now records that stat
    assert "img/a.png" not in clean_blob_ids(repo / "static")
    assert "img/b.png" in clean_blob_ids(repo / "static")


def test_autocrlf_or_no_work_tree_vouches_for_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "config", "core.autocrlf", "input")
    assert clean_blob_ids(repo / "static") == {}
    plain = write_tree(tmp_path / "plain", {"a.png": b"a"})
    assert clean_blob_ids(plain) == {}


def test_a_git_dir_meant_for_another_repository_is_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_repo(tmp_path / "other")
    plain = write_tree(tmp_path / "plain", {"img/a.png": FILES["static/img/a.png"]})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert clean_blob_ids(plain) == {}


def _deploy(s3: S3Env, project: Path, *flags: str) -> dict[str, object]:
    result = deploy_py("--static-dir", "static", "--bucket", s3.bucket, "--endpoint-url",
                       s3.endpoint, "--json", *flags, cwd=project,
                       **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def _current(s3: S3Env) -> dict[str, object]:
    document: dict[str, object] = json.loads(s3.get("static/manifest.json")["Body"].read())
    return document


def test_a_fresh_checkout_reuses_hashes_and_rehashes_what_changed(
    s3: S3Env, tmp_path: Path
) -> None:
    origin = make_repo(tmp_path / "origin")
    first = _deploy(s3, origin)
    assert first["uploaded"] == 4 and first["hashes_from_git"] == 0
    recorded = _current(s3)["git_blobs"]
    # Rewritten CSS is hashed after rewriting: no blob id stands for its bytes.
    assert recorded == {p.removeprefix("static/"): blob_id(d) for p, d in FILES.items()
                        if not p.endswith(".css")}

    checkout = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(origin), str(checkout))  # new mtimes, no hash cache
    settle(checkout)
    again = _deploy(s3, checkout)
    assert again["hashes_from_git"] == 3
    assert again["uploaded"] == 0 and again["new_release"] is False

    new_a = b"\x89PNG A-BYTES"  # same size as the committed bytes
    (checkout / "static/img/a.png").write_bytes(new_a)
    (checkout / "static/img/new.png").write_bytes(b"untracked")
    # A fresh CI checkout with changes has no hash cache (the previous run's cache would
    # answer for the two unchanged files itself, before git is asked).
    changed = _deploy(s3, checkout, "--no-hash-cache")
    assert changed["hashes_from_git"] == 2 and changed["new_release"] is True
    files = _current(s3)["files"]
    assert isinstance(files, dict)
    for logical, data in (("img/a.png", new_a), ("img/new.png", b"untracked")):
        assert files[logical]["hash"] == hashlib.sha256(data).hexdigest()
        assert s3.get(files[logical]["key"])["Body"].read() == data
    # The modified and the untracked file are not recorded: git does not vouch for them.
    assert set(_current(s3)["git_blobs"]) == {"img/b.png", "js/app.js"}  # type: ignore[arg-type]


def test_outside_a_git_work_tree_every_file_is_hashed(s3: S3Env, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_tree(project, FILES)
    assert _deploy(s3, project)["hashes_from_git"] == 0
    assert "git_blobs" not in _current(s3)
    (project / "static/img/a.png").write_bytes(b"\x89PNG A-BYTES")
    _deploy(s3, project)
    entry = _current(s3)["files"]["img/a.png"]  # type: ignore[index]
    assert entry["hash"] == hashlib.sha256(b"\x89PNG A-BYTES").hexdigest()
