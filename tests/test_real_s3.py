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


def _flip(data: bytes) -> bytes:
    """The same bytes with the first one flipped: same length, and wrong."""
    return bytes([data[0] ^ 0xFF]) + data[1:]


class Tamper:
    """Alters PUT requests of every S3 client made in a test, after botocore has computed
    their checksum and before it signs them: the signature covers the altered request, so
    only the server's own check of bytes against checksum can catch it."""

    def __init__(self) -> None:
        self.wrong_checksum: list[str] = []  # URLs containing one of these: a wrong checksum
        self.wrong_body: list[str] = []  # ... : other bytes than the checksum was made of
        self.done: list[str] = []
        self.checksums: list[dict[str, str]] = []  # as computed, of each request altered

    def __call__(self, request: Any, **_: Any) -> None:
        if any(part in request.url for part in self.wrong_checksum + self.wrong_body):
            self.checksums.append({name.lower(): value for name, value in request.headers.items()
                                   if name.lower() in CHECKSUM_HEADERS})
        if any(part in request.url for part in self.wrong_checksum):
            for name in list(request.headers.keys()):
                if name.lower() in CHECKSUM_HEADERS:
                    wrong = _flip(base64.b64decode(request.headers[name]))
                    request.headers.replace_header(name, base64.b64encode(wrong).decode())
                    self.done.append(request.url)
        if any(part in request.url for part in self.wrong_body):
            data = request.data if isinstance(request.data, bytes) else request.data.read()
            request.data = _flip(data)
            self.done.append(request.url)


@pytest.fixture
def tamper(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tamper]:
    tamper = Tamper()
    create_client = botocore.session.Session.create_client

    def create_tampering_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-sign.s3.PutObject", tamper)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_tampering_client)
    yield tamper
    assert tamper.done, "no request was altered: the test did not test anything"


@pytest.mark.real_s3("moto stores an object whose checksum does not match its bytes")
def test_a_wrong_checksum_is_rejected_and_the_deploy_publishes_nothing(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
) -> None:
    tamper.wrong_checksum.append("logo")
    code, report = run_json(capsys, target_args(s3, tmp_path, static_tree))
    assert_rejected_and_nothing_published(s3, tmp_path, code, report, "logo")


@pytest.mark.real_s3("moto stores bytes that do not match the checksum sent with them")
def test_bytes_changed_after_their_checksum_are_rejected_and_nothing_is_published(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
) -> None:
    """What a file rewritten mid-upload, or a flipped bit on the way, looks like to the
    server: the checksum (the content hash) names other bytes than those that arrive."""
    tamper.wrong_body.append("cat")
    code, report = run_json(capsys, target_args(s3, tmp_path, static_tree))
    assert_rejected_and_nothing_published(s3, tmp_path, code, report, "cat")
    content_hash = hashlib.sha256((static_tree / "img/cat.jpg").read_bytes()).digest()
    assert tamper.checksums and all(  # the checksum the server checked is the content hash
        sent.get("x-amz-checksum-sha256") == base64.b64encode(content_hash).decode()
        for sent in tamper.checksums)


def assert_rejected_and_nothing_published(s3: S3Env, tmp_path: Path, code: int,
                                          report: dict[str, Any], name: str) -> None:
    assert code == 1, report
    assert name in report["error"] and "BadDigest" in report["error"]
    assert "nothing was published" in report["error"]
    stored = s3.keys()
    assert not [key for key in stored if name in key]  # the server kept no bad bytes
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

