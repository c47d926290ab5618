"""The hash cache is not fooled by an mtime put back (issue 19, low item).

``cp -p``, ``rsync -t``, ``tar -x`` and ``os.utime`` give new bytes an old mtime; a cache
keyed on path, size and mtime deployed such a file as unchanged, and verify stayed clean.
The cache also keys on ctime and inode, and (git's racy rule) does not trust an entry
that is not strictly older than the cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.helpers import run_json, write_tree
from tests.installed import InstalledTool

OLD = b"\x89PNG\r\n\x1a\n version 1"
NEW = b"\x89PNG\r\n\x1a\n version 2"  # the same size


def args(tmp_path: Path, static: Path) -> list[str]:
    return ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / "m.json"), "--hash-cache", str(tmp_path / "cache.json")]


def deployed(tmp_path: Path, logical: str) -> bytes:
    entry = json.loads((tmp_path / "m.json").read_text())["files"][logical]
    return (tmp_path / "cdn" / entry["key"]).read_bytes()


def rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    """What ``cp -p`` or ``rsync -t`` does: new bytes, the old mtime put back."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


def test_a_same_size_change_with_the_mtime_put_back_is_deployed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", {"img/a.png": OLD, "img/b.png": b"other"})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    rewrite_keeping_mtime(static / "img/a.png", NEW)
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert deployed(tmp_path, "img/a.png") == NEW
    assert result["uploaded"] == 1


def test_a_file_renamed_over_with_its_stamp_is_deployed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``rsync -t`` writes a new file and renames it over the old one: a new inode."""
    static = write_tree(tmp_path / "static", {"img/a.png": OLD})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    victim = static / "img/a.png"
    before = victim.stat()
    fresh = static / "img/.a.png.tmp"
    fresh.write_bytes(NEW)
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(fresh, victim)
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    assert deployed(tmp_path, "img/a.png") == NEW


def test_an_entry_written_in_the_files_own_tick_is_hashed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Git's racy rule. A change inside the timestamp tick in which the file was hashed
    leaves its whole stamp as it was; simulated here by recording the old hash under the
    file's current stamp, in a cache file written in that same tick."""
    static = write_tree(tmp_path / "static", {"img/a.png": OLD})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    cache_file = tmp_path / "cache.json"
    document = json.loads(cache_file.read_text())
    (static / "img/a.png").write_bytes(NEW)
    now = (static / "img/a.png").stat()
    name = next(iter(document["entries"]))
    assert document["entries"][name][4] == hashlib.sha256(OLD).hexdigest()
    document["entries"][name] = [now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino,
                                 hashlib.sha256(OLD).hexdigest()]
    cache_file.write_text(json.dumps(document))
    tick = max(now.st_mtime_ns, now.st_ctime_ns)
    os.utime(cache_file, ns=(tick, tick))
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert deployed(tmp_path, "img/a.png") == NEW


def test_the_installed_deploy_sees_a_change_with_the_mtime_put_back(
    installed: InstalledTool, project: Path,
) -> None:
    (project / "static" / "img" / "cat.png").write_bytes(OLD)
    first = installed.run("cdn-deploy", "--json", cwd=project)
    assert first.returncode == 0, first.stderr
    assert (project / "build" / ".cdn-hash-cache.json").is_file()
    rewrite_keeping_mtime(project / "static" / "img" / "cat.png", NEW)
    second = installed.run("cdn-deploy", "--json", cwd=project)
    assert second.returncode == 0, second.stderr
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    key = manifest["files"]["img/cat.png"]["key"]
    assert (project / "build" / "cdn" / key).read_bytes() == NEW
