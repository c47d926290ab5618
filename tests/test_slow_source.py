"""A manifest source that is slow or sends the app elsewhere: deadlines and redirects.

A real loopback HTTP server plays the CDN. In ``trickle`` mode it sends the headers and
then one byte at a time (bounded in count and time, and ending when the client goes
away): socket timeouts never fire, only the overall deadline of a read does. Its
``redirect`` mode answers 302 to a URL of the test's choosing.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for

from pipeline import CDN
from pipeline.errors import ConfigError
from pipeline.flaskext.status import status_blueprint
from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import make_release
from tests.installed import InstalledTool

CDN_BASE = "https://cdn.example.com"
PATH = "/static/manifest.json"
#: The trickle's bounds: a byte every TRICKLE_GAP seconds, at most TRICKLE_BYTES bytes.
TRICKLE_GAP = 0.1
TRICKLE_BYTES = 300


def document(tag: str) -> bytes:
    """A release document whose logo key carries ``tag``."""
    key = f"static/img/logo.{tag}.png"
    entry = Entry(key=key, hash="0" * 64, size=10, content_type="image/png")
    return make_release(Manifest({"img/logo.png": entry}), {}).to_json()


def logo_url(tag: str) -> str:
    return f"{CDN_BASE}/static/img/logo.{tag}.png"


class ManifestServer(ThreadingHTTPServer):
    """Serves ``document`` at any path, or trickles it, or redirects (see ``mode``)."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.document = document("v1")
        self.mode = "serve"
        self.redirect_to = ""
        self.requests: list[str] = []
        #: Set when a trickle starts; ``cut_off`` when the client went away during one.
        self.trickling = threading.Event()
        self.cut_off = threading.Event()
        self.trickled = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ManifestServer

    def do_GET(self) -> None:
        server = self.server
        server.requests.append(self.path)
        if server.mode == "redirect" and not self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.document
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.mode != "trickle":
            self.wfile.write(body)
            return
        server.trickling.set()
        for index in range(min(len(body), TRICKLE_BYTES)):
            try:
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
            except OSError:  # the client shut the connection: it was cut off
                server.cut_off.set()
                return
            server.trickled = index + 1
            time.sleep(TRICKLE_GAP)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def manifest_server(tls: ssl.SSLContext | None = None) -> Iterator[ManifestServer]:
    server = ManifestServer(tls)
    # shutdown() waits for the loop's next poll: 0.5 s by default, at every test's teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def server() -> Iterator[ManifestServer]:
    with manifest_server() as running:
        yield running


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, static_tree: Path, server: ManifestServer) -> Iterator[AppFactory]:
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = Flask(__name__, static_folder=str(static_tree))
        app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=server.url + PATH,
                          CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"), **config)
        app.register_blueprint(status_blueprint, url_prefix="/_cdn")
        apps.append(app)
        CDN(app)
        app.add_url_rule("/logo", "logo", lambda: url_for("static", filename="img/logo.png"))
        return app

    yield factory
    for app in apps:
        state = app.extensions.get("cdn")
        if state is not None and state.refresher is not None:
            state.refresher.stop()


def served(app: Flask) -> str:
    return app.test_client().get("/logo").get_data(as_text=True)


def status(app: Flask) -> dict[str, Any]:
    report: dict[str, Any] = app.test_client().get("/_cdn/status").get_json()
    return report


def wait_for(event: threading.Event, what: str) -> None:
    assert event.wait(30), f"timed out waiting for {what}"  # a hang guard, not a timing check


# --- deadlines -----------------------------------------------------------------------------


def test_a_trickling_source_at_start_up_gives_way_to_the_last_known_good_copy(
    server: ManifestServer, make_app: AppFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    make_app()  # a healthy start writes the last-known-good copy (v1)
    server.document, server.mode = document("v2"), "trickle"

    with caplog.at_level(logging.WARNING, logger="pipeline.serving.refresher"):
        app = make_app(CDN_STARTUP_DEADLINE=1)

    assert served(app) == logo_url("v1")
    report = status(app)
    assert report["loaded_from"] == "last-known-good"
    assert "no complete answer within 1 s" in report["last_error"]
    assert "no complete answer within 1 s" in caplog.text
    # The read was cut off, not left behind: the server saw the connection close mid-body.
    wait_for(server.cut_off, "the server to see the connection shut")
    assert server.trickled < len(server.document)


def test_a_trickling_refresh_counts_a_failure_and_status_shows_the_read_in_progress(
    server: ManifestServer, make_app: AppFactory,
) -> None:
    app = make_app(CDN_REFRESH_DEADLINE=1)  # ends the trickle within a second
    refresher = CDN.state(app).refresher
    assert status(app)["reading_since"] is None
    server.document, server.mode = document("v2"), "trickle"  # a deploy, then a slow CDN

    outcome: list[bool] = []
    reading = threading.Thread(target=lambda: outcome.append(refresher.refresh_once()))
    reading.start()
    wait_for(server.trickling, "the trickle to start")
    assert status(app)["reading_since"] is not None  # the read is in flight, and since when
    reading.join(60)

    assert outcome == [False]
    report = status(app)
    assert report["failures"] == 1 and report["ok"] is False
    assert "no complete answer within 1 s" in report["last_error"]
    assert served(app) == logo_url("v1")
    wait_for(server.cut_off, "the server to see the connection shut")
    # Once the source answers again, the change (a rollback, a deploy) gets through.
    server.mode = "serve"
    assert refresher.refresh_once()
    assert served(app) == logo_url("v2") and status(app)["reading_since"] is None


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (cryptography comes with moto[server])."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_trickling_https_source_is_cut_off_too(
    tmp_path: Path, static_tree: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production case, a CDN over TLS: the deadline shuts the socket under the TLS layer."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this one certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with manifest_server(tls) as secure:
        app = Flask(__name__, static_folder=str(static_tree))
        app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=secure.url + PATH,
                          CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"),
                          CDN_REFRESH_DEADLINE=1)
        CDN(app)
        refresher = CDN.state(app).refresher
        try:
            assert refresher.status.loaded_from == "source"  # TLS itself works
            secure.document, secure.mode = document("v2"), "trickle"
            assert not refresher.refresh_once()
            assert "no complete answer within 1 s" in (refresher.status.last_error or "")
            wait_for(secure.cut_off, "the server to see the TLS connection shut")
            assert secure.trickled < len(secure.document)
        finally:
            refresher.stop()


def test_the_installed_flask_command_starts_from_the_copy_when_the_source_trickles(
    server: ManifestServer, installed: InstalledTool, tmp_path: Path,
) -> None:
    project = tmp_path / "their-project"
    project.mkdir()
    (project / "their_app.py").write_text(
        "from flask import Flask\nfrom pipeline import CDN\n"
        "app = Flask(__name__)\napp.config.from_prefixed_env('APP')\nCDN(app)\n")
    (project / "last-good.json").write_bytes(server.document)  # v1, from an earlier start
    server.document, server.mode = document("v2"), "trickle"

    result = installed.run(
        "python", "-m", "flask", "--app", "their_app.py", "cdn", "status", "--json",
        cwd=project, APP_CDN_URL=CDN_BASE, APP_CDN_MANIFEST=server.url + PATH,
        APP_CDN_MANIFEST_CACHE="last-good.json", APP_CDN_STARTUP_DEADLINE="1")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["loaded_from"] == "last-known-good" and report["enabled"] is True
    assert "no complete answer within 1 s" in report["last_error"]


@pytest.mark.parametrize("value", ["0", "soon", "nan", "9999"])
def test_a_bad_deadline_setting_is_a_config_error(value: str, make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match="CDN_STARTUP_DEADLINE must be"):
        make_app(CDN_STARTUP_DEADLINE=value)


# --- redirects ----------------------------------------------------------------------------


@pytest.fixture
def elsewhere() -> Iterator[ManifestServer]:
    """Another origin, serving a document the app must never load."""
    with manifest_server() as other:
        other.document = document("evil")
        yield other


@pytest.mark.parametrize("target", ["another port", "another host", "another scheme"])
def test_a_redirect_to_another_origin_or_scheme_is_refused(
    target: str, server: ManifestServer, elsewhere: ManifestServer, make_app: AppFactory,
) -> None:
    make_app()  # the copy: v1
    port = server.server_address[1]
    server.mode = "redirect"
    server.redirect_to = {
        "another port": elsewhere.url + PATH,
        "another host": f"http://localhost:{port}/moved{PATH}",
        "another scheme": f"https://127.0.0.1:{port}{PATH}",
    }[target]

    app = make_app()

    assert served(app) == logo_url("v1")
    report = status(app)
    assert report["loaded_from"] == "last-known-good"
    assert "refused a redirect (302)" in report["last_error"]
    assert elsewhere.requests == []
    assert not CDN.state(app).refresher.refresh_once()  # refreshes refuse it too
    assert served(app) == logo_url("v1") and elsewhere.requests == []


def test_a_redirect_within_the_origin_is_followed(
    server: ManifestServer, make_app: AppFactory,
) -> None:
    server.mode, server.document = "redirect", document("v3")
    server.redirect_to = f"{server.url}/moved{PATH}"

    app = make_app()

    assert served(app) == logo_url("v3") and status(app)["loaded_from"] == "source"
    assert server.requests == [PATH, f"/moved{PATH}"]
