"""Releases and rollback against moto's S3 server over HTTP (and the folder backend)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from flask import Flask, url_for

from pipeline import CDN
from pipeline.errors import ConflictError
from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import make_release
from pipeline.release.store import ReleaseStore
from pipeline.storage import FolderStorage
from pipeline.storage.cloudfront import invalidate
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.helpers import S3Env, assert_consistent, run_json, target_args

ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


def deploy(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict:
    code, summary = run_json(capsys, [*args, "-q"])
    assert code == 0, summary
    return summary


def test_each_deploy_records_a_release_and_releases_lists_them(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    first = deploy(capsys, args)
    (static_tree / "img/new.gif").write_bytes(b"GIF89a new")
    second = deploy(capsys, args)
    assert ID_RE.match(first["release"]) and ID_RE.match(second["release"])
    assert first["release"] < second["release"] and second["previous_release"] == first["release"]
    code, listing = run_json(capsys, ["releases", *args])
    assert code == 0 and listing["current"] == second["release"]
    rows = listing["releases"]
    assert [r["id"] for r in rows] == [first["release"], second["release"]]
    assert [r["current"] for r in rows] == [False, True]
    assert [r["files"] for r in rows] == [9, 10]
    assert rows[1]["bytes"] == Manifest.load(tmp_path / "out" / "manifest.json").total_bytes
    # The current manifest is a byte copy of the current release object, and so is the local one.
    current = s3.get("static/manifest.json")["Body"].read()
    assert current == s3.get(f"static/releases/{second['release']}.json")["Body"].read()
    assert current == (tmp_path / "out" / "manifest.json").read_bytes()
    assert_consistent(s3)


def test_release_objects_are_immutable(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = deploy(capsys, target_args(s3, tmp_path, static_tree))["release"]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.client.put_object(Bucket=s3.bucket, Key=f"static/releases/{release}.json",
                             Body=b"{}", IfNoneMatch="*")


def test_unchanged_redeploy_republishes_the_same_release(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    first = deploy(capsys, args)
    again = deploy(capsys, args)
    assert again["release"] == first["release"] and again["new_release"] is False
    assert len([k for k in s3.keys("static/releases/")]) == 1


def test_rollback_switches_the_current_manifest_without_copying_or_deleting(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    v1 = deploy(capsys, args)["release"]
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo v2")
    v2 = deploy(capsys, args)["release"]
    before = s3.keys()
    code, result = run_json(capsys, ["rollback", *args])
    assert code == 0 and result["release"] == v1 and result["previous"] == v2
    assert result["changed"] is True
    assert s3.keys() == before  # only the manifest was rewritten, same size class
    assert read_json(s3, "static/manifest.json")["release"] == v1
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["release"] == v1
    assert_consistent(s3)
    # Forward again by id; then "previous" of the oldest release is an error (exit 1).
    code, result = run_json(capsys, ["rollback", v2, *args])
    assert code == 0 and result["release"] == v2
    run_json(capsys, ["rollback", v1, *args])
    code, result = run_json(capsys, ["rollback", *args])
    assert code == 1 and "no earlier release" in result["error"]


def read_json(s3: S3Env, key: str) -> dict:
    return json.loads(s3.get(key)["Body"].read())


@pytest.mark.parametrize(("release", "needle"), [("nonsense", "not valid"),
                                                 ("20200101T000000.000Z-abcdef", "does not exist")])
def test_rollback_to_a_bad_or_unknown_id_is_a_usage_error(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    release: str, needle: str,
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    deploy(capsys, args)
    code, result = run_json(capsys, ["rollback", release, *args])
    assert code == 2 and needle in result["error"]


def test_rollback_refuses_a_release_whose_objects_are_gone(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    deploy(capsys, args)
    old_key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo v2")
    v2 = deploy(capsys, args)["release"]
    s3.client.delete_object(Bucket=s3.bucket, Key=old_key)
    code, result = run_json(capsys, ["rollback", *args])
    assert code == 1 and old_key in result["error"] and "--repair" in result["error"]
    assert read_json(s3, "static/manifest.json")["release"] == v2


def test_flask_app_serves_the_old_urls_after_rollback_and_reload(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    deploy(capsys, args)
    old_key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo v2")
    deploy(capsys, args)
    new_key = Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key
    app = Flask(__name__, static_folder=str(static_tree))
    app.config.update(CDN_URL="https://cdn.example.com", CDN_RELOAD=True,
                      CDN_MANIFEST=str(tmp_path / "out" / "manifest.json"))
    CDN(app)
    app.add_url_rule("/logo", "logo", lambda: url_for("static", filename="img/logo.png"))
    client = app.test_client()
    assert client.get("/logo").get_data(as_text=True).endswith(new_key)
    assert run_json(capsys, ["rollback", *args])[0] == 0
    assert client.get("/logo").get_data(as_text=True).endswith(old_key)


def test_folder_backend_has_releases_and_rollback_too(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static_tree),
            "--manifest", str(tmp_path / "m.json")]
    v1 = deploy(capsys, args)["release"]
    (static_tree / "favicon.ico").write_bytes(b"\x00\x00\x01\x00 icon v2")
    v2 = deploy(capsys, args)["release"]
    code, listing = run_json(capsys, ["releases", *args])
    assert [r["id"] for r in listing["releases"]] == [v1, v2] and listing["current"] == v2
    code, result = run_json(capsys, ["rollback", *args])
    assert code == 0 and result["release"] == v1
    published = (tmp_path / "cdn" / "static" / "manifest.json").read_bytes()
    assert published == (tmp_path / "cdn" / "static" / "releases" / f"{v1}.json").read_bytes()
    assert published == (tmp_path / "m.json").read_bytes()


def test_an_unchanged_redeploy_writes_the_published_manifest_bytes_locally(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local manifest is a byte copy of the one the target serves, also when an unchanged
    re-run finds it laid out differently (written by another version): copied, not re-encoded."""
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static_tree),
            "--manifest", str(tmp_path / "m.json")]
    first = deploy(capsys, args)["release"]
    published = tmp_path / "cdn" / "static" / "manifest.json"
    other_layout = json.dumps(json.loads(published.read_bytes()), indent=1).encode()
    published.write_bytes(other_layout)
    again = deploy(capsys, args)
    assert again["release"] == first and again["new_release"] is False
    assert (tmp_path / "m.json").read_bytes() == other_layout == published.read_bytes()
    # A local copy damaged in place (same size) is noticed and replaced.
    damaged = bytearray(other_layout)
    damaged[len(damaged) // 2] ^= 1
    (tmp_path / "m.json").write_bytes(bytes(damaged))
    deploy(capsys, args)
    assert (tmp_path / "m.json").read_bytes() == other_layout


@pytest.mark.parametrize("backend", ["s3", "folder"])
def test_a_stale_conditional_write_is_a_conflict_and_a_deploy_retries_it(
    backend: str, s3: S3Env, tmp_path: Path
) -> None:
    storage = (S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=2))
               if backend == "s3" else FolderStorage(tmp_path / "cdn"))
    empty = Manifest.from_json(b'{"version": 1, "files": {}}')
    one = Manifest({"a.png": Entry("static/a.1.png", "h" * 64, 1, "image/png")})
    first, second = make_release(empty, {}), make_release(one, {})
    store = ReleaseStore(storage, "static")
    stale = store.read_current()  # nothing published yet
    assert store.point_current(first, expected=stale, retry=False) == 0
    with pytest.raises(ConflictError, match="changed while this ran"):
        store.point_current(second, expected=stale, retry=False)
    assert store.point_current(second, expected=stale, retry=True) == 1
    assert store.read_current().release_id == second.release_id


def test_invalidate_sends_only_the_manifest_path() -> None:
    import boto3

    client = boto3.session.Session().client(
        "cloudfront", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response(
            "create_invalidation",
            {"Invalidation": {"Id": "I123", "Status": "InProgress",
                              "CreateTime": "2026-01-01T00:00:00Z",
                              "InvalidationBatch": {"Paths": {"Quantity": 1,
                                                              "Items": ["/static/manifest.json"]},
                                                    "CallerReference": "r"}}},
            {"DistributionId": "E2QWRUHAPOMQZL",
             "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/static/manifest.json"]},
                                   "CallerReference": ANY}},
        )
        assert invalidate("E2QWRUHAPOMQZL", ["static/manifest.json"], client=client) == "I123"


def test_invalid_distribution_id_is_rejected_before_any_work(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(static_tree), "--invalidate", "not an id"])
    assert code == 2 and "distribution" in result["error"]
    assert not (tmp_path / "cdn").exists()


def test_deploy_and_rollback_invalidate_only_the_manifest_after_publishing(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_invalidate(distribution_id: str, keys: list[str], **_: object) -> str:
        published = (tmp_path / "cdn" / "static" / "manifest.json").read_bytes()
        assert published == (tmp_path / "m.json").read_bytes()  # called after publishing
        calls.append((distribution_id, list(keys)))
        return f"I{len(calls)}"

    monkeypatch.setattr("pipeline.storage.cloudfront.invalidate", fake_invalidate)
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static_tree),
            "--manifest", str(tmp_path / "m.json"), "--invalidate", "E2QWRUHAPOMQZL"]
    assert run_json(capsys, args)[1]["invalidation"] == "I1"
    (static_tree / "LICENSE").write_bytes(b"BSD\n")
    run_json(capsys, args)
    code, result = run_json(capsys, ["rollback", *args])
    assert code == 0 and result["invalidation"] == "I3"
    assert calls == [("E2QWRUHAPOMQZL", ["static/manifest.json"])] * 3


def test_a_failed_invalidation_says_the_release_is_current(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.errors import DeployError

    def failing(*_: object, **__: object) -> str:
        raise DeployError("the CloudFront invalidation failed: Throttling")

    monkeypatch.setattr("pipeline.storage.cloudfront.invalidate", failing)
    code, result = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(static_tree), "--manifest", str(tmp_path / "m.json"),
                                     "--invalidate", "E2QWRUHAPOMQZL"])
    assert code == 1 and "is current, but" in result["error"]
    assert (tmp_path / "m.json").exists()
