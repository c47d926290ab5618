"""Shared fixtures: a clean environment, moto's S3 server over real HTTP, sample trees."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

SCRUBBED_PREFIXES = ("CDN_", "AWS_", "FLASK_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the host's AWS/CDN settings, and nothing ever asks the EC2 metadata address."""
    import os

    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class S3Env:
    endpoint: str
    bucket: str
    client: Any

    def keys(self, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", ()):
                found[item["Key"]] = item["Size"]
        return found

    def get(self, key: str) -> dict[str, Any]:
        return self.client.get_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """A fresh, empty bucket on the moto server, with credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = s3_client(moto_endpoint)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3Env(endpoint=moto_endpoint, bucket=bucket, client=client)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def static_tree(tmp_path: Path) -> Path:
    """A small static folder with awkward names."""
    return write_tree(
        tmp_path / "static",
        {
            "img/cat.jpg": b"\xff\xd8\xff\xe0 cat jpeg bytes",
            "img/logo.png": b"\x89PNG\r\n\x1a\n logo",
            "img/icons/arrow.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "img/photos/sunset beach.webp": b"RIFF....WEBPVP8 sunset",
            "img/photos/caf\u00e9.png": b"\x89PNG\r\n\x1a\n cafe",
            "img/odd/a+b #1 100%.gif": b"GIF89a odd name",
            "favicon.ico": b"\x00\x00\x01\x00 icon",
            "js/app.min.js": b"console.log('hi');\n",
            "LICENSE": b"MIT\n",
        },
    )
