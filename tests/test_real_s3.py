"""What S3 servers do to our requests, beyond what moto checks: checksums, conditional
writes, multipart ETags. Tests marked ``real_s3`` run on every chosen backend but moto
(``--s3-backend=seaweedfs``); the others run everywhere, so a real server confirms them."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from pipeline.errors import ConflictError
from pipeline.manifest import Manifest
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree

#: Checksum headers botocore may send (the algorithm-name header is not one of them).
CHECKSUM_HEADERS = tuple(f"x-amz-checksum-{name}"
                         for name in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"))


def _wrong(value: str) -> str:
    """The same checksum with its first byte flipped: well-formed, and wrong."""
    digest = bytearray(base64.b64decode(value))
    digest[0] ^= 0xFF
    return base64.b64encode(bytes(digest)).decode()


@pytest.fixture
def wrong_checksums(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every S3 client made in this test sends a wrong checksum on PUTs of URLs containing
    the strings appended to the yielded list; the URLs it corrupted are appended too.

    botocore computes the checksum header before ``before-sign``, so the altered value is
    signed like the rest: only the server's own check of the bytes can catch it.
    """
    targets: list[str] = []
    corrupted: list[str] = []

    def corrupt(request: Any, **_: Any) -> None:
        if not any(part in request.url for part in targets):
            return
        for name in list(request.headers.keys()):
            if name.lower() in CHECKSUM_HEADERS:
                request.headers.replace_header(name, _wrong(request.headers[name]))
                corrupted.append(request.url)

    create_client = botocore.session.Session.create_client

    def create_corrupting_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-sign.s3.PutObject", corrupt)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_corrupting_client)
    yield targets
    assert corrupted, "no checksum was altered: the test did not test anything"


@pytest.mark.real_s3("moto stores an object whose checksum does not match its bytes")
def test_a_wrong_checksum_is_rejected_and_the_deploy_publishes_nothing(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    wrong_checksums: list[str],
) -> None:
    wrong_checksums.append("logo")
    code, report = run_json(capsys, target_args(s3, tmp_path, static_tree))
    assert code == 1, report
    assert "logo" in report["error"] and "BadDigest" in report["error"]
    assert "nothing was published" in report["error"]
    stored = s3.keys()
    assert not [key for key in stored if "logo" in key]  # the server kept no bad bytes
    assert "static/manifest.json" not in stored
    assert not [key for key in stored if key.startswith("static/releases/")]
    assert not (tmp_path / "out" / "manifest.json").exists()


def put_manifest(storage: S3Storage, data: bytes, *, if_match: str | None = None,
                 if_absent: bool = False) -> str:
    return storage.put_if("static/manifest.json", data, content_type="application/json",
                          cache_control="no-cache", if_match=if_match, if_absent=if_absent)


def test_the_server_enforces_conditional_writes(s3: S3Env) -> None:
    """The release and rollback safety rests on these two 412s (If-None-Match, If-Match)."""
    storage = S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=2))
    first = put_manifest(storage, b"{}", if_absent=True)
    with pytest.raises(ClientError) as raw:  # what the server says, without our translation
        s3.client.put_object(Bucket=s3.bucket, Key="static/manifest.json", Body=b"[]",
                             IfNoneMatch="*")
    assert raw.value.response["Error"]["Code"] == "PreconditionFailed"
    assert raw.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ConflictError):
        put_manifest(storage, b"[1]", if_absent=True)
    with pytest.raises(ConflictError):
        put_manifest(storage, b"[2]", if_match="0" * 32)
    second = put_manifest(storage, b"[3]", if_match=first)
    with pytest.raises(ConflictError):  # the first ETag is stale now
        put_manifest(storage, b"[4]", if_match=first)
    assert second != first
    assert s3.get("static/manifest.json")["Body"].read() == b"[3]"


def test_a_multipart_upload_with_a_dash_n_etag_verifies(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Objects above the multipart threshold get an ETag like ``<md5 of part md5s>-2``,
    not the MD5 of the bytes: deploy records it and verify (sampled and --full) accepts it."""
    big = random.Random(11).randbytes(17 * 1024 * 1024 + 5)  # two parts of 16 MiB at most
    static = write_tree(tmp_path / "static", {"video/intro.webm": big, "app.js": b"go();\n"})
    args = target_args(s3, tmp_path, static)
    # The second deploy uploads nothing and takes what it records from the listing.
    for _ in range(2):
        code, report = run_json(capsys, [*args, "--no-assets"])
        assert code == 0, report
        manifest = Manifest.load(tmp_path / "out" / "manifest.json")
        key = manifest.files["video/intro.webm"].key
        etag = s3.client.head_object(Bucket=s3.bucket, Key=key)["ETag"].strip('"')
        assert etag.endswith("-2") and etag != hashlib.md5(big, usedforsecurity=False).hexdigest()
        document = assert_consistent(s3)
        assert document.get("etags", {}).get(key) in (None, etag)  # if recorded: the server's
        for extra in ([], ["--full"]):
            code, report = run_json(capsys, ["verify", *args, *extra])
            assert code == 0 and not report.get("problems"), (extra, json.dumps(report)[:2000])
    assert s3.get(key)["Body"].read() == big

