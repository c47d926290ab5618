from __future__ import annotations

import hashlib
import json
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
    cache.put(path, FileStamp(10, 111), H)
    cache.save()

    again = HashCache(cache_file)
    assert again.get(path, FileStamp(10, 111)) == H
    assert again.get(path, FileStamp(10, 112)) is None
    assert again.get(path, FileStamp(11, 111)) is None
    assert (again.hits, again.misses) == (1, 2)


def test_unused_entries_are_dropped_on_save(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.json"
    first = HashCache(cache_file)
    first.put(tmp_path / "gone", FileStamp(1, 1), H)
    first.put(tmp_path / "kept", FileStamp(1, 1), H)
    first.save()
    second = HashCache(cache_file)
    second.get(tmp_path / "kept", FileStamp(1, 1))
    second.save()
    entries = json.loads(cache_file.read_text())["entries"]
    assert list(entries) == [str(tmp_path / "kept")]


@pytest.mark.parametrize("content", ["not json", '{"version": 99, "entries": {}}', "[]",
                                     '{"version": 1, "entries": {"p": "bad"}}'])
def test_corrupt_cache_is_ignored(tmp_path: Path, content: str) -> None:
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(content)
    cache = HashCache(cache_file)
    assert cache.get(Path("p"), FileStamp(1, 1)) is None
