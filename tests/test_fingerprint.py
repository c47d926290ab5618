from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pipeline.build.fingerprint import FileStamp, HashCache, hash_file, hashed_name

H = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        ("img/cat.jpg", "img/cat.0123456789ab.jpg"),
        ("js/app.min.js", "js/app.min.0123456789ab.js"),
        ("LICENSE", "LICENSE.0123456789ab"),
        ("a b/caf\u00e9 #1+%.png", "a b/caf\u00e9 #1+%.0123456789ab.png"),
        ("deep/er/x.tar.gz", "deep/er/x.tar.0123456789ab.gz"),
    ],
)
def test_hashed_name_inserts_short_hash_before_last_extension(logical: str, expected: str) -> None:
    assert hashed_name(logical, H) == expected


def test_hash_is_sha256_of_bytes_regardless_of_name(tmp_path: Path) -> None:
    data = b"x" * (3 * 1024 * 1024 + 7)  # spans several read chunks
    (tmp_path / "a.png").write_bytes(data)
    (tmp_path / "other name.bin").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert hash_file(tmp_path / "a.png") == expected
    assert hash_file(tmp_path / "other name.bin") == expected


def test_cache_hits_only_for_same_size_and_mtime(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.json"
    cache = HashCache(cache_file)
    path = tmp_path / "f"
    cache.put(path, FileStamp(10, 111, 111, 7), H)
    cache.save()

    again = HashCache(cache_file)
    assert again.get(path, FileStamp(10, 111, 111, 7)) == H
    assert again.get(path, FileStamp(10, 112, 112, 7)) is None
    assert again.get(path, FileStamp(11, 111, 111, 7)) is None
    assert again.get(path, FileStamp(10, 111, 112, 7)) is None  # ctime: utime put mtime back
    assert again.get(path, FileStamp(10, 111, 111, 8)) is None  # inode: a new file renamed in
    assert (again.hits, again.misses) == (1, 4)


def test_unused_entries_are_dropped_on_save(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.json"
    first = HashCache(cache_file)
    first.put(tmp_path / "gone", FileStamp(1, 1, 1, 7), H)
    first.put(tmp_path / "kept", FileStamp(1, 1, 1, 7), H)
    first.save()
    second = HashCache(cache_file)
    second.get(tmp_path / "kept", FileStamp(1, 1, 1, 7))
    second.save()
    entries = json.loads(cache_file.read_text())["entries"]
    assert list(entries) == [str(tmp_path / "kept")]


@pytest.mark.parametrize("content", ["not json", '{"version": 99, "entries": {}}', "[]",
                                     '{"version": 2, "entries": {"p": "bad"}}'])
def test_corrupt_cache_is_ignored(tmp_path: Path, content: str) -> None:
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(content)
    cache = HashCache(cache_file)
    assert cache.get(Path("p"), FileStamp(1, 1, 1, 7)) is None


def test_an_entry_not_older_than_the_cache_file_is_not_trusted(tmp_path: Path) -> None:
    """Git's racy rule: a file changed in the tick it was hashed in keeps its stamp."""
    cache_file = tmp_path / "cache.json"
    cache = HashCache(cache_file)
    old, racy = FileStamp(1, 1_000, 1_000, 7), FileStamp(1, 5_000, 5_000, 8)
    cache.put(tmp_path / "old", old, H)
    cache.put(tmp_path / "racy", racy, H)
    cache.put(tmp_path / "racy-ctime", FileStamp(1, 1_000, 5_000, 9), H)
    cache.save()
    os.utime(cache_file, ns=(5_000, 5_000))  # the cache was written in the racy files' tick
    again = HashCache(cache_file)
    assert again.get(tmp_path / "old", old) == H
    assert again.get(tmp_path / "racy", racy) is None
    assert again.get(tmp_path / "racy-ctime", FileStamp(1, 1_000, 5_000, 9)) is None
