"""``private`` claims privacy only after a request without credentials was refused (issue 19,
item 8): SeaweedFS with an anonymous read identity (and an R2 bucket whose public URL is
on) served the "private" objects to anyone while the command said they were private.

Run against the real servers: the normal configuration (moto and SeaweedFS refuse an
unsigned GET with 403), a second SeaweedFS with an ``anonymous`` read identity, and a
public base URL in front of the bucket (a loopback HTTP server answering as R2's
``r2.dev`` would).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.cli.main import main
from tests.helpers import S3Env, s3_client
from tests.installed import InstalledTool
from tests.s3servers import S3Server, seaweedfs_server

PNG = b"\x89PNG\r\n\x1a\n private plan"
CLAIM = "readable only through presigned URLs"
CHECKED_CLAIM = "an unsigned GET was refused: " + CLAIM


def unsigned_status(url: str) -> int:
    """What a stranger's browser gets: no credentials, no signature."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def private_folder(root: Path) -> Path:
    folder = root / "private"
    (folder / "floors").mkdir(parents=True)
    (folder / "floors" / "plan.png").write_bytes(PNG)
    (folder / "floors" / "roof.png").write_bytes(PNG + b" roof")
    return folder


def test_the_installed_private_command_checks_what_a_stranger_gets_before_claiming_privacy(
    s3: S3Env, installed: InstalledTool, project: Path
) -> None:
    private_folder(project)
    result = installed.run("cdn-deploy", "private", "private", "--bucket", s3.bucket,
                           "--endpoint-url", s3.endpoint, cwd=project,
                           **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    assert CHECKED_CLAIM in result.stdout and "warning" not in result.stderr
    assert set(s3.keys("private/")) == {"private/floors/plan.png", "private/floors/roof.png"}
    assert unsigned_status(f"{s3.endpoint}/{s3.bucket}/private/floors/plan.png") == 403


@pytest.fixture(scope="module")
def open_server(s3_server: S3Server) -> Iterator[S3Server]:
    """A second SeaweedFS whose ``anonymous`` identity may read every bucket."""
    assert s3_server.backend == "seaweedfs"  # real_s3 tests only
    with seaweedfs_server(anonymous_read=True) as server:
        yield server


@pytest.mark.real_s3("SeaweedFS's anonymous identity: moto has no such setting")
def test_private_refuses_a_server_that_lets_anyone_read_and_never_claims_privacy(
    open_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in open_server.credentials.env().items():
        monkeypatch.setenv(name, value)
    client = s3_client(open_server)
    bucket = "open-bucket"
    client.create_bucket(Bucket=bucket)
    folder = private_folder(tmp_path)
    code = main(["private", str(folder), "--bucket", bucket, "--endpoint-url",
                 open_server.endpoint])
    captured = capsys.readouterr()
    assert code == 2
    assert "error: an unsigned GET of 'private/floors/plan.png'" in captured.err
    assert "answered 206: anyone can read private/" in captured.err
    assert "Traceback" not in captured.err and CLAIM not in captured.out + captured.err
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed == []  # the probed object was deleted, the rest never uploaded


class PublicURL:
    """A loopback HTTP server standing in for a bucket's public URL (R2's ``r2.dev``):
    answers every GET with ``status`` and records the paths asked for."""

    def __init__(self, status: int) -> None:
        paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"x")

            def log_message(self, *args: object) -> None:
                pass

        self.paths = paths
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> PublicURL:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("status", "code", "claimed"), [(206, 2, False), (403, 0, True),
                                                         (404, 0, False)])
def test_a_public_url_in_front_of_the_bucket_is_probed_too(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int, code: int,
    claimed: bool,
) -> None:
    """206 through the public URL: refused. 403: private. 404: uploaded, but no claim and a
    warning (a stranger was not told "forbidden", so nothing is confirmed)."""
    folder = private_folder(tmp_path)
    with PublicURL(status) as public:
        result = main(["private", str(folder), "--bucket", s3.bucket, "--endpoint-url",
                       s3.endpoint, "--cdn-url", public.url])
    captured = capsys.readouterr()
    assert result == code, captured.err
    assert public.paths == ["/private/floors/plan.png"]
    assert (CHECKED_CLAIM in captured.out) is claimed and (CLAIM in captured.out) is claimed
    if code == 2:
        assert f"from {public.url}/private/floors/plan.png answered 206" in captured.err
        assert s3.keys("private/") == {}
    else:
        assert set(s3.keys("private/")) == {"private/floors/plan.png",
                                            "private/floors/roof.png"}
    if status == 404:
        assert "warning: could not confirm that private/ is private" in captured.err
