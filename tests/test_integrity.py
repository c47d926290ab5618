"""Uploads are tied to the content hash the key was named after (issue 9, item 4).

A file rewritten between hashing and upload must never be stored under the old
hash's name. The writer is made deterministic by hooking the upload read path
(``pipeline.storage.base.open_source``): the rewrite happens, in a writer thread
that is joined, exactly when the upload opens the file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files
from pipeline.manifest import Manifest
from pipeline.media_types import IMMUTABLE_CACHE_CONTROL
from pipeline.storage import base
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, run_json, target_args, write_tree

REAL_OPEN = base.open_source


def rewrite_on_open(monkeypatch: pytest.MonkeyPatch, victim: Path, new: bytes, *,
                    times: int | None = None) -> list[int]:
    """When the upload opens ``victim``, a writer thread rewrites it first; afterwards
    (``times`` opens later) the original bytes are put back."""
    original = victim.read_bytes()
    opens: list[int] = []

    def hooked(path: Path) -> Any:
        if Path(path) == victim:
            opens.append(1)
            data = new if times is None or len(opens) <= times else original
            writer = threading.Thread(target=victim.write_bytes, args=(data,))
            writer.start()
            writer.join(timeout=10)
        return REAL_OPEN(path)

    monkeypatch.setattr(base, "open_source", hooked)
    return opens


def sha256_of(s3: S3Env, key: str) -> str:
    return hashlib.sha256(s3.get(key)["Body"].read()).hexdigest()


def test_a_file_rewritten_during_the_upload_fails_the_deploy_naming_it(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim = static_tree / "js/app.min.js"
    stamp = victim.stat()
    rewrite_on_open(monkeypatch, victim, b"console.log('HI');\n")  # same size ...
    monkeypatch.setattr(base, "open_source", keep_mtime(base.open_source, victim, stamp))
    args = [*target_args(s3, tmp_path, static_tree), "-q",
            "--hash-cache", str(tmp_path / "cache.json")]
    code, result = run_json(capsys, args)
    assert code == 1 and "app.min.js" in result["error"] and "changed while" in result["error"]
    assert "static/manifest.json" not in set(s3.keys())  # nothing published
    for key in s3.keys("static/"):  # and nothing stored under a name its bytes do not have
        name_hash = key.rsplit(".", 2)[-2] if key.count(".") > 1 else key.rsplit(".", 1)[-1]
        assert sha256_of(s3, key).startswith(name_hash), key
    # ... and the same mtime: only dropping the cached hash lets the next run see the change.
    monkeypatch.setattr(base, "open_source", REAL_OPEN)
    code, result = run_json(capsys, args)
    assert code == 0, result
    entry = Manifest.load(tmp_path / "out" / "manifest.json").files["js/app.min.js"]
    assert s3.get(entry.key)["Body"].read() == b"console.log('HI');\n"


def keep_mtime(opener: Any, victim: Path, stamp: Any) -> Any:
    """Wrap ``opener`` so the victim's mtime is put back after the rewrite."""
    def hooked(path: Path) -> Any:
        handle = opener(path)
        if Path(path) == victim:
            os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        return handle
    return hooked


def test_a_file_that_changes_back_is_read_again_and_deployed(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim = static_tree / "img/cat.jpg"
    opens = rewrite_on_open(monkeypatch, victim, b"\xff\xd8\xff\xe0 half-written", times=1)
    code, result = run_json(capsys, [*target_args(s3, tmp_path, static_tree), "-q"])
    assert code == 0, result
    assert len(opens) == 2  # read, mismatch, read again
    key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/cat.jpg"].key
    assert s3.get(key)["Body"].read() == victim.read_bytes()


def test_the_content_hash_is_sent_as_the_sha256_checksum(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """What S3 and SeaweedFS check (moto accepts any checksum, so look at the request)."""
    with fault_proxy(s3.endpoint) as proxy:
        args = target_args(s3, tmp_path, static_tree, endpoint=proxy.url)
        assert run_json(capsys, [*args, "-q"])[0] == 0
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    sent = {
        unquote(path.split("?")[0]).split(f"/{s3.bucket}/", 1)[1]: headers
        for method, path, headers in proxy.headers
        if method == "PUT" and s3.bucket + "/" in path
    }
    for entry in manifest.files.values():
        expected = base64.b64encode(bytes.fromhex(entry.hash)).decode()
        assert sent[entry.key]["x-amz-checksum-sha256"] == expected, entry.key


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Multipart above 6 MiB in parts of 5 MiB (S3's smallest part), to keep tests light."""
    monkeypatch.setattr("pipeline.storage.s3.MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr("pipeline.storage.s3.MULTIPART_CHUNK_SIZE", 5 * 1024 * 1024)
    return 11 * 1024 * 1024 + 7


def test_multipart_uploads_check_the_whole_file_and_abort_on_a_change(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, small_parts: int,
) -> None:
    big = bytes(range(256)) * (small_parts // 256) + b"tail"
    static = write_tree(tmp_path / "static", {"video/big.mp4": big, "a.txt": b"a"})
    args = [*target_args(s3, tmp_path, static), "-q"]
    victim = static / "video/big.mp4"
    rewrite_on_open(monkeypatch, victim, big[:-4] + b"TAIL")  # same size, last part differs
    code, result = run_json(capsys, args)
    assert code == 1 and "big.mp4" in result["error"]
    stored = set(s3.keys())
    assert not [k for k in stored if "big" in k] and "static/manifest.json" not in stored
    uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    assert uploads == []  # aborted, not left behind

    monkeypatch.setattr(base, "open_source", REAL_OPEN)
    victim.write_bytes(big)
    code, result = run_json(capsys, args)
    assert code == 0, result
    key = Manifest.load(tmp_path / "out" / "manifest.json").files["video/big.mp4"].key
    assert s3.get(key)["Body"].read() == big


def test_folder_target_refuses_a_file_rewritten_during_the_copy(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rewrite_on_open(monkeypatch, static_tree / "LICENSE", b"GPL\n")
    code, result = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(static_tree), "--manifest", str(tmp_path / "m.json")])
    assert code == 1 and "LICENSE" in result["error"]
    assert not list((tmp_path / "cdn").rglob("LICENSE*"))


def test_verify_full_downloads_and_finds_bytes_that_do_not_match_their_hash(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """An object stored by an older deploy with the wrong bytes: its ETag is the one the
    release recorded, so only a byte check finds it; --repair replaces it."""
    args = target_args(s3, tmp_path, static_tree)
    manifest = build_manifest(collect_files(static_tree), prefix="static", cache=HashCache(None))
    entry = manifest.files["js/app.min.js"]
    bad = b"console.log('HI');\n"  # same size, other bytes, stored under the good name
    assert len(bad) == entry.size
    s3.client.put_object(Bucket=s3.bucket, Key=entry.key, Body=bad,
                         ContentType=entry.content_type, CacheControl=IMMUTABLE_CACHE_CONTROL)
    assert run_json(capsys, [*args, "-q"])[0] == 0  # reuses it (right size), records its ETag
    assert run_json(capsys, ["verify", *args])[0] == 0  # listing and HEADs cannot tell
    code, report = run_json(capsys, ["verify", "--full", *args])
    assert code == 1
    assert [(p["key"], p["problem"]) for p in report["problems"]] == [
        (entry.key, "wrong content (SHA-256)")]
    code, report = run_json(capsys, ["verify", "--full", "--repair", *args])
    assert code == 0 and report["repaired"] == [entry.key]
    assert run_json(capsys, ["verify", "--full", *args])[0] == 0
    assert s3.get(entry.key)["Body"].read() == (static_tree / "js/app.min.js").read_bytes()
