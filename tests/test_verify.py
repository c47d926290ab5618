"""verify and verify --repair against moto's S3 server over HTTP (and the folder backend)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.manifest import Manifest
from pipeline.media_types import IMMUTABLE_CACHE_CONTROL
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, run_json, target_args

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def deployed(s3: S3Env, static_tree: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> tuple[list[str], Manifest]:
    args = target_args(s3, tmp_path, static_tree)
    code, summary = run_json(capsys, [*args, "-q"])
    assert code == 0, summary
    return args, Manifest.load(tmp_path / "out" / "manifest.json")


def test_a_clean_release_verifies_from_one_listing(
    s3: S3Env, deployed: tuple[list[str], Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    args, manifest = deployed
    with fault_proxy(s3.endpoint) as proxy:
        args = [*args[:2], "--endpoint-url", proxy.url, *args[4:]]
        code, report = run_json(capsys, ["verify", *args])
    assert code == 0 and report["ok"] and report["problems"] == []
    assert report["current"] is True and report["checked"] == len(manifest)
    assert proxy.count("GET", "list-type=2") == 1
    # Everything was written just now, at or after the release: all get a HEAD here.
    assert proxy.count("HEAD", "/static/") == report["inspected"] == len(manifest)


def test_verify_lists_a_deleted_a_truncated_and_a_mistyped_object_and_repair_fixes_them(
    s3: S3Env, deployed: tuple[list[str], Manifest], static_tree: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, manifest = deployed
    deleted, truncated, mistyped = (manifest.files[name].key for name in
                                    ("img/cat.jpg", "js/app.min.js", "img/logo.png"))
    s3.client.delete_object(Bucket=s3.bucket, Key=deleted)
    s3.client.put_object(Bucket=s3.bucket, Key=truncated, Body=b"console",
                         ContentType="text/javascript; charset=utf-8",
                         CacheControl=IMMUTABLE_CACHE_CONTROL)
    s3.client.copy_object(Bucket=s3.bucket, Key=mistyped, ContentType="text/plain",
                          CopySource={"Bucket": s3.bucket, "Key": mistyped},
                          MetadataDirective="REPLACE", CacheControl=IMMUTABLE_CACHE_CONTROL)
    code, report = run_json(capsys, ["verify", *args])
    assert code == 1 and not report["ok"]
    found = {(p["key"], p["problem"]) for p in report["problems"]}
    assert found == {(deleted, "missing"), (truncated, "wrong size"),
                     (mistyped, "wrong Content-Type")}

    code, report = run_json(capsys, ["verify", "--repair", *args])
    assert code == 0 and report["ok"], report
    assert sorted(report["repaired"]) == sorted([deleted, truncated, mistyped])
    for name, key in (("img/cat.jpg", deleted), ("js/app.min.js", truncated),
                      ("img/logo.png", mistyped)):
        obj = s3.get(key)
        assert obj["Body"].read() == (static_tree / name).read_bytes()
        assert obj["ContentType"] == manifest.files[name].content_type
        assert obj["CacheControl"] == IMMUTABLE_CACHE_CONTROL


def test_same_size_different_bytes_is_a_checksum_problem(
    s3: S3Env, deployed: tuple[list[str], Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    args, manifest = deployed
    entry = manifest.files["LICENSE"]
    s3.client.put_object(Bucket=s3.bucket, Key=entry.key, Body=b"BSD\n",
                         ContentType=entry.content_type, CacheControl=IMMUTABLE_CACHE_CONTROL)
    code, report = run_json(capsys, ["verify", *args])
    assert code == 1
    assert [p["problem"] for p in report["problems"]] == ["wrong checksum (ETag)"]


def test_a_missing_cache_control_is_found(
    s3: S3Env, deployed: tuple[list[str], Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    args, manifest = deployed
    key = manifest.files["favicon.ico"].key
    s3.client.copy_object(Bucket=s3.bucket, Key=key, CopySource={"Bucket": s3.bucket, "Key": key},
                          MetadataDirective="REPLACE", ContentType="image/vnd.microsoft.icon")
    code, report = run_json(capsys, ["verify", *args])
    assert code == 1 and [p["problem"] for p in report["problems"]] == ["wrong Cache-Control"]


def test_verify_an_older_release_and_a_repair_that_has_no_source(
    s3: S3Env, deployed: tuple[list[str], Manifest], static_tree: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, v1_manifest = deployed
    v1 = run_json(capsys, ["releases", *args])[1]["current"]
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo v2")
    assert run_json(capsys, [*args, "-q"])[0] == 0
    old_key = v1_manifest.files["img/logo.png"].key
    s3.client.delete_object(Bucket=s3.bucket, Key=old_key)
    assert run_json(capsys, ["verify", *args])[0] == 0  # the current release is fine
    code, report = run_json(capsys, ["verify", "--release", v1, "--repair", *args])
    assert code == 1 and report["current"] is False and report["repaired"] == []
    assert [(p["key"], p["problem"]) for p in report["problems"]] == [(old_key, "missing")]


def test_folder_backend_verifies_content_and_repairs(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static_tree),
            "--manifest", str(tmp_path / "m.json")]
    assert run_json(capsys, [*args, "-q"])[0] == 0
    key = Manifest.load(tmp_path / "m.json").files["img/cat.jpg"].key
    stored = tmp_path / "cdn" / key
    stored.write_bytes(stored.read_bytes().upper())  # same size, other bytes
    code, report = run_json(capsys, ["verify", *args])
    assert code == 1 and [p["problem"] for p in report["problems"]] == ["wrong content (SHA-256)"]
    code, report = run_json(capsys, ["verify", "--repair", *args])
    assert code == 0 and report["repaired"] == [key]
    assert stored.read_bytes() == (static_tree / "img/cat.jpg").read_bytes()


def test_verify_in_a_subprocess_exits_1_without_a_traceback(
    s3: S3Env, deployed: tuple[list[str], Manifest], tmp_path: Path
) -> None:
    args, manifest = deployed
    s3.client.delete_object(Bucket=s3.bucket, Key=manifest.files["img/cat.jpg"].key)
    env = s3.subprocess_env(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "deploy.py"), "verify", *args],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stderr
    assert "problem: img/cat.jpg" in result.stdout and "missing" in result.stdout
    assert "Traceback" not in result.stderr


def test_verify_with_nothing_published_is_a_usage_error(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Usually a wrong --prefix or bucket: exit 2 like any other usage error, saying so.
    code, report = run_json(capsys, ["verify", *target_args(s3, tmp_path, static_tree)])
    assert code == 2 and "no manifest at 'static/manifest.json'" in report["error"]
    assert "nothing is deployed under this prefix" in report["error"]


TEXT_FILES = {"docs/notes.md": b"# Notes\n", "data/table.csv": b"a,b\n1,2\n",
              "config/site.yaml": b"title: x\n", "config/app.toml": b"a = 1\n"}


def test_common_text_types_are_stored_with_their_own_type_and_verify_cleanly(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``.md`` and friends were stored as octet-stream; SeaweedFS then served its own type
    and verify reported a false problem."""
    static = tmp_path / "static"
    for name, data in TEXT_FILES.items():
        (static / name).parent.mkdir(parents=True, exist_ok=True)
        (static / name).write_bytes(data)
    args = target_args(s3, tmp_path, static)
    assert run_json(capsys, [*args, "-q"])[0] == 0
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    expected = {"docs/notes.md": "text/markdown; charset=utf-8",
                "data/table.csv": "text/csv; charset=utf-8",
                "config/site.yaml": "application/yaml; charset=utf-8",
                "config/app.toml": "application/toml; charset=utf-8"}
    for name, content_type in expected.items():
        head = s3.client.head_object(Bucket=s3.bucket, Key=manifest.files[name].key)
        assert head["ContentType"] == content_type, name
    code, report = run_json(capsys, ["verify", "--full", *args])
    assert code == 0 and report["ok"], report["problems"]
    assert report["server_types"] == {}


@pytest.mark.real_s3("SeaweedFS serves an octet-stream object with a type derived from its "
                     "name; moto serves what was stored")
def test_verify_accepts_a_type_the_server_chose_for_an_octet_stream_object_and_says_so(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    static = tmp_path / "static"
    (static / "raw").mkdir(parents=True)
    (static / "raw" / "cat.psd").write_bytes(b"8BPS layered cat")
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo")
    args = target_args(s3, tmp_path, static)
    assert run_json(capsys, [*args, "-q"])[0] == 0
    key = Manifest.load(tmp_path / "out" / "manifest.json").files["raw/cat.psd"].key
    served = s3.client.head_object(Bucket=s3.bucket, Key=key)["ContentType"]
    assert served not in ("application/octet-stream", "")  # the server's own choice

    code, report = run_json(capsys, ["verify", "--full", *args])
    assert code == 0 and report["ok"], report["problems"]
    assert report["server_types"] == {key: served}
    from pipeline.cli.main import main

    assert main(["verify", *args]) == 0
    out = capsys.readouterr().out
    assert f"note: 1 object(s) stored as application/octet-stream are served with a type the " \
           f"server derives from the name (first: {key}: {served!r})" in out
    assert out.rstrip().endswith(": OK")
