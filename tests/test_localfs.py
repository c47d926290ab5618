from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, UnsafePathError
from pipeline.localfs import check_readable, collect_files, write_atomic
from tests.helpers import write_tree


def logical(root: Path) -> list[str]:
    return [f.logical_path for f in collect_files(root)]


def test_collects_nested_files_sorted_and_skips_junk(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {
        "b.png": b"b", "a/c.gif": b"c", ".DS_Store": b"x", "a/Thumbs.db": b"x",
        "a/notes.txt~": b"x", ".git/config": b"x", "a/.hidden.png": b"x", "desktop.ini": b"x",
    })
    assert logical(root) == ["a/c.gif", "b.png"]


def test_sizes_and_paths_are_recorded(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {"x/y.png": b"12345"})
    [item] = collect_files(root)
    assert item.size == 5 and item.path == root / "x" / "y.png"


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        collect_files(tmp_path / "nope")


def test_symlink_to_a_file_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("aws_secret_access_key = hunter2")
    root = write_tree(tmp_path / "s", {"ok.png": b"ok"})
    (root / "leak.png").symlink_to(secret)
    with pytest.raises(UnsafePathError, match=r"leak.png"):
        collect_files(root)


def test_symlinked_folder_outside_is_refused(tmp_path: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"k.png": b"k"})
    root = write_tree(tmp_path / "s", {"ok.png": b"ok"})
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="linked"):
        collect_files(root)


def test_relative_dotdot_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0")
    root = write_tree(tmp_path / "s", {"img/ok.png": b"ok"})
    (root / "img" / "p.png").symlink_to(Path("..") / ".." / "passwd")
    with pytest.raises(UnsafePathError):
        collect_files(root)


def test_symlinks_inside_are_followed_and_loops_end(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {"img/a.png": b"a"})
    (root / "alias.png").symlink_to(root / "img" / "a.png")
    (root / "img" / "loop").symlink_to(root, target_is_directory=True)
    assert logical(root) == ["alias.png", "img/a.png"]


def test_broken_symlink_and_fifo_are_clear_errors(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {"a.png": b"a"})
    (root / "dangling.png").symlink_to(root / "missing.png")
    with pytest.raises(ConfigError, match=r"dangling.png.*broken symlink"):
        collect_files(root)
    (root / "dangling.png").unlink()
    os.mkfifo(root / "pipe.png")
    with pytest.raises(ConfigError, match=r"pipe.png.*not a regular file"):
        collect_files(root)


def test_unreadable_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "s", {"a.png": b"a"})
    # Tests may run as root, where chmod 000 does not stop reads: simulate the denial.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    files = collect_files(root)  # the walk asks nothing: the files to be read are asked
    with pytest.raises(ConfigError, match=r"a.png.*permission denied"):
        check_readable(files)


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "m.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.json"]


def test_published_files_are_readable_by_a_web_server_user(tmp_path: Path) -> None:
    for unique in (False, True):
        target = tmp_path / f"u{unique}" / "obj.png"
        write_atomic(target, b"x", unique=unique)
        assert target.stat().st_mode & 0o044 == 0o044  # group and others may read
