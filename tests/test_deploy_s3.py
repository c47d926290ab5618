"""The deploy against moto's S3 server over real HTTP, driven through the CLI entry point."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.manifest import Manifest
from pipeline.media_types import IMMUTABLE_CACHE_CONTROL, MANIFEST_CACHE_CONTROL
from pipeline.urls import cdn_url
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, write_tree


def run_deploy(s3: S3Env, static: Path, tmp_path: Path, *extra: str,
               endpoint: str | None = None) -> tuple[int, dict]:
    code = main([
        "--bucket", s3.bucket, "--endpoint-url", endpoint or s3.endpoint,
        "--static-dir", str(static), "--manifest", str(tmp_path / "out" / "manifest.json"),
        "--hash-cache", str(tmp_path / "hash-cache.json"), "--json", "--quiet", *extra,
    ])
    return code, {}


def deploy_json(s3: S3Env, static: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                *extra: str, endpoint: str | None = None) -> tuple[int, dict]:
    capsys.readouterr()
    code, _ = run_deploy(s3, static, tmp_path, *extra, endpoint=endpoint)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_every_file_uploaded_once_with_bytes_type_and_cache_headers(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary = deploy_json(s3, static_tree, tmp_path, capsys)
    assert code == 0
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    assert summary["files"] == summary["uploaded"] == len(manifest) == 9
    assert summary["skipped"] == 0
    assert summary["bytes_uploaded"] == manifest.total_bytes
    assert summary["manifest"] == str(tmp_path / "out" / "manifest.json")
    stored = s3.keys()
    releases = [key for key in stored if key.startswith("static/releases/")]  # issue 5
    assert len(releases) == 1
    assert set(stored) == {e.key for e in manifest.files.values()} | {"static/manifest.json",
                                                                      *releases}
    for logical, entry in manifest.files.items():
        obj = s3.get(entry.key)
        data = obj["Body"].read()
        assert data == (static_tree / logical).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.hash
        assert obj["ContentType"] == entry.content_type
        assert obj["CacheControl"] == IMMUTABLE_CACHE_CONTROL
    assert manifest.files["img/icons/arrow.svg"].content_type == "image/svg+xml"
    remote = s3.get("static/manifest.json")
    assert remote["CacheControl"] == MANIFEST_CACHE_CONTROL
    assert Manifest.from_json(remote["Body"].read()) == manifest


def test_uploads_carry_a_checksum_the_server_stored(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    entry = Manifest.load(tmp_path / "out" / "manifest.json").files["img/cat.jpg"]
    head = s3.client.head_object(Bucket=s3.bucket, Key=entry.key, ChecksumMode="ENABLED")
    # The content hash itself (issue 9): servers that check checksums reject other bytes.
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == entry.hash


def test_rerun_without_changes_writes_nothing_remote(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    local = tmp_path / "out" / "manifest.json"
    before = (local.read_bytes(), local.stat().st_mtime_ns)
    with fault_proxy(s3.endpoint) as proxy:
        code, summary = deploy_json(s3, static_tree, tmp_path, capsys, endpoint=proxy.url)
    assert code == 0
    assert summary["uploaded"] == 0 and summary["skipped"] == 9 and summary["bytes_uploaded"] == 0
    assert summary["new_release"] is False
    # The current manifest already names exactly these objects: no PUT, no listing.
    assert [key for key in proxy.requests if not key.startswith(("GET", "HEAD"))] == []
    assert proxy.count("GET", "list-type=2") == 0
    assert (local.read_bytes(), local.stat().st_mtime_ns) == before  # not even touched


def test_relist_reuploads_an_object_deleted_behind_the_deploys_back(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/cat.jpg"].key
    s3.client.delete_object(Bucket=s3.bucket, Key=key)
    code, summary = deploy_json(s3, static_tree, tmp_path, capsys, "--relist")
    assert code == 0 and summary["uploaded"] == 1
    assert s3.get(key)["Body"].read() == (static_tree / "img/cat.jpg").read_bytes()


def test_one_changed_file_uploads_exactly_one_and_keeps_the_old_object(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    old_key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n a new logo")
    code, summary = deploy_json(s3, static_tree, tmp_path, capsys)
    assert code == 0 and summary["uploaded"] == 1 and summary["skipped"] == 8
    new_key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key
    assert new_key != old_key
    assert old_key in s3.keys() and new_key in s3.keys()
    assert s3.get(new_key)["Body"].read() == b"\x89PNG\r\n\x1a\n a new logo"


def test_dry_run_touches_neither_bucket_nor_disk(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary = deploy_json(s3, static_tree, tmp_path, capsys, "--dry-run")
    assert code == 0 and summary["dry_run"] is True and summary["uploaded"] == 0
    assert set(summary["plan"].values()) == {"new"}
    assert s3.keys() == {}
    assert not (tmp_path / "out").exists() and not (tmp_path / "hash-cache.json").exists()


def test_dry_run_says_per_file_why(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    (static_tree / "img/new.gif").write_bytes(b"GIF89a new")
    capsys.readouterr()
    code = main(["--bucket", s3.bucket, "--endpoint-url", s3.endpoint, "--static-dir",
                 str(static_tree), "--dry-run", "--manifest", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert any(line.startswith("new") and "img/new.gif" in line for line in out.splitlines())
    assert any(line.startswith("unchanged") and "img/cat.jpg" in line for line in out.splitlines())
    assert "would upload 1 of 10" in out


def test_awkward_names_round_trip_through_their_cdn_url(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_json(s3, static_tree, tmp_path, capsys)
    s3.allow_public_read("static/")
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    base = f"{s3.endpoint}/{s3.bucket}"
    for logical in ["img/photos/sunset beach.webp", "img/photos/caf\u00e9.png",
                    "img/odd/a+b #1 100%.gif"]:
        url = cdn_url(base, manifest.files[logical].key)
        with urllib.request.urlopen(url, timeout=10) as response:  # anonymous, like a CDN
            assert response.read() == (static_tree / logical).read_bytes()


def test_symlink_escaping_static_is_never_uploaded(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key=hunter2")
    (static_tree / "img" / "innocent.png").symlink_to(secret)
    capsys.readouterr()
    code, _ = run_deploy(s3, static_tree, tmp_path)
    captured = capsys.readouterr()
    assert code == 2
    assert "innocent.png" in json.loads(captured.out)["error"]
    assert s3.keys() == {}
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_permission_error_on_one_object_fails_with_exit_1_and_publishes_nothing(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("403",), path_filter="logo") as proxy:
        code, summary = deploy_json(s3, static_tree, tmp_path, capsys, endpoint=proxy.url)
    assert code == 1
    assert "logo" in summary["error"] and "AccessDenied" in summary["error"]
    assert "nothing was published" in summary["error"]
    assert proxy.count("PUT", "logo") == 1  # a 403 is final: not retried
    assert "static/manifest.json" not in s3.keys()
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_server_errors_are_retried_then_fail_with_exit_1(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("500", "503"), path_filter="cat") as proxy:
        code, summary = deploy_json(s3, static_tree, tmp_path, capsys, "--max-attempts", "3",
                                    endpoint=proxy.url)
    assert code == 1 and "cat" in summary["error"]
    assert proxy.count("PUT", "cat") == 3, proxy.requests  # 3 tries (not 3 retries), no more
    assert "static/manifest.json" not in s3.keys()


def test_transient_faults_are_retried_to_success(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every first PUT of each object fails in some way; the retry goes through.
    with fault_proxy(s3.endpoint, fail_rate=1.0, kinds=("500", "503", "reset", "lost")) as proxy:
        proxy.fail_rate = 0.5
        code, summary = deploy_json(s3, static_tree, tmp_path, capsys, endpoint=proxy.url)
    assert code == 0, summary
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    for logical, entry in manifest.files.items():
        assert s3.get(entry.key)["Body"].read() == (static_tree / logical).read_bytes()


@pytest.mark.parametrize(("seed", "fail_rate"), [(0, 0.3), (1, 0.3), (2, 0.3), (3, 0.6),
                                                 (4, 0.6), (5, 0.6)])
def test_faults_never_publish_a_manifest_naming_a_missing_object(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int, fail_rate: float
) -> None:
    static = write_tree(tmp_path / "static", {
        f"img/{i:03d}.png": f"image {i} seed {seed}".encode() * (i + 1) for i in range(40)
    })
    with fault_proxy(s3.endpoint, fail_rate=fail_rate, seed=seed) as proxy:
        code, summary = deploy_json(s3, static, tmp_path, capsys, "--workers", "8",
                                    "--max-attempts", "3", endpoint=proxy.url)
    assert proxy.faults, "the proxy must have injected faults"
    stored = s3.keys()
    remote = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix="static/manifest.json")
    if code == 0:
        manifest = Manifest.load(tmp_path / "out" / "manifest.json")
        assert summary["files"] == 40
        for entry in manifest.files.values():
            assert stored.get(entry.key) == entry.size
        published = Manifest.from_json(s3.get("static/manifest.json")["Body"].read())
        assert published == manifest
    else:
        assert code == 1 and "error" in summary
        assert remote.get("KeyCount", 0) == 0
        assert not (tmp_path / "out" / "manifest.json").exists()
