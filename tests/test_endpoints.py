"""Which S3 endpoint a command talks to, said truthfully, and one that never answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import S3Env
from tests.installed import InstalledTool


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a hung proxy, a wrong
    service behind the port): the URL of it, while the block runs."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # the server socket was closed: the test is over
                return
            held.append(connection)  # kept open, never read or answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(timeout=10)
        for connection in held:
            connection.close()


@pytest.mark.slow  # two pre-flight tries of a few seconds each
def test_an_endpoint_that_never_answers_fails_in_seconds_naming_it(
        installed: InstalledTool, project: Path) -> None:
    with silent_endpoint() as url:
        # The timeout is a bound, not a timing assertion: before, the pre-flight alone
        # waited 2 x 60 s, and the deploy said nothing meanwhile.
        result = installed.run("cdn-deploy", "--bucket", "assets", "--endpoint-url", url,
                               cwd=project, timeout=60, AWS_ACCESS_KEY_ID="key",
                               AWS_SECRET_ACCESS_KEY="secret")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: the S3 endpoint '{url}' accepted the connection but did "
                           "not answer within 5 s")
    assert not (project / "build" / "cdn-manifest.json").exists()


def test_an_endpoint_from_the_aws_config_file_is_the_one_reported(
        s3: S3Env, installed: InstalledTool, project: Path, tmp_path: Path) -> None:
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nendpoint_url = {s3.endpoint}\nregion = us-east-1\n")
    result = installed.run("cdn-deploy", "--bucket", s3.bucket, cwd=project,
                           AWS_CONFIG_FILE=str(config), **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    assert f"to s3://{s3.bucket} ({s3.endpoint}):" in result.stdout
    assert "AWS" not in result.stdout
    assert "static/manifest.json" in s3.keys()

    again = installed.run("cdn-deploy", "--bucket", s3.bucket, "--json", cwd=project,
                          AWS_CONFIG_FILE=str(config), **s3.server.credentials.env())
    assert json.loads(again.stdout)["target"] == f"s3://{s3.bucket} ({s3.endpoint})"


def test_aws_endpoint_url_from_the_environment_is_the_one_reported(
        s3: S3Env, installed: InstalledTool, project: Path) -> None:
    result = installed.run("cdn-deploy", "--bucket", s3.bucket, "--json", cwd=project,
                           AWS_ENDPOINT_URL=s3.endpoint, **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["target"] == f"s3://{s3.bucket} ({s3.endpoint})"
