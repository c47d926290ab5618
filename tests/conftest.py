"""Shared fixtures: a clean environment, moto's S3 server over real HTTP, sample trees."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from tests.helpers import S3Env, s3_client, write_tree

SCRUBBED_PREFIXES = ("CDN_", "AWS_", "FLASK_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the host's AWS/CDN settings, and nothing ever asks the EC2 metadata address.

    Each test also runs in its own empty folder, like a user's project: commands run
    in-process must not pick up this repository's pyproject.toml (the demo's settings).
    """
    import os

    monkeypatch.chdir(tmp_path)

    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port for the whole session."""
    # moto's werkzeug server logs every request; keep CI output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


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
