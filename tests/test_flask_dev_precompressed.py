"""Development (CDN off): Flask's static view serves a precompressed sibling lying beside a file
(``app.css.br``/``.gz``, as a build tool writes them) to a client that accepts it, with the same
negotiation as ``cdn-deploy serve``; without siblings nothing changes."""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli
import pytest
from flask import Flask

from pipeline import CDN
from tests.helpers import write_tree

CSS = b"".join(b".c%d { color: #%06x; }\n" % (i, i * 977) for i in range(300))
JS = b"console.log(1);\n" * 50


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    static = write_tree(tmp_path / "static", {
        "app.css": CSS, "app.css.br": brotli.compress(CSS), "app.css.gz": gzip.compress(CSS),
        "plain.js": JS, "only-gz.js": JS, "only-gz.js.gz": gzip.compress(JS)})
    app = Flask(__name__, static_folder=str(static))
    app.config.update(DEBUG=True)  # development: the CDN is off
    CDN(app)
    return app


def fetch(app: Flask, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body, the response closed (its file too)."""
    with app.test_client().get(path, headers=headers) as response:
        return response.status_code, dict(response.headers), response.get_data()


@pytest.mark.parametrize(("accept", "encoding"), [
    (None, None), ("identity", None), ("gzip", "gzip"), ("br", "br"),
    ("gzip, deflate, br, zstd", "br"), ("br;q=0", None)])
def test_the_accepted_representation_decodes_to_the_file(
        app: Flask, accept: str | None, encoding: str | None) -> None:
    headers = {} if accept is None else {"Accept-Encoding": accept}
    status, got, body = fetch(app, "/static/app.css", headers)
    assert status == 200
    assert got.get("Content-Encoding") == encoding
    decode = {None: bytes, "br": brotli.decompress, "gzip": gzip.decompress}[encoding]
    assert decode(body) == CSS
    assert got["Content-Type"] == "text/css; charset=utf-8"
    assert got["Vary"] == "Accept-Encoding"


def test_only_the_siblings_present_are_offered(app: Flask) -> None:
    _, got, body = fetch(app, "/static/only-gz.js", {"Accept-Encoding": "br, gzip"})
    assert got["Content-Encoding"] == "gzip" and gzip.decompress(body) == JS


def test_without_siblings_nothing_changes(app: Flask) -> None:
    status, got, body = fetch(app, "/static/plain.js", {"Accept-Encoding": "br, gzip"})
    assert status == 200 and body == JS
    assert "Content-Encoding" not in got and "Vary" not in got


def test_a_sibling_keeps_flasks_conditional_handling(app: Flask) -> None:
    etag = fetch(app, "/static/app.css", {"Accept-Encoding": "br"})[1]["ETag"]
    assert etag != fetch(app, "/static/app.css", {"Accept-Encoding": "gzip"})[1]["ETag"]
    assert fetch(app, "/static/app.css", {"Accept-Encoding": "br", "If-None-Match": etag})[0] == 304


def test_traversal_is_still_refused(app: Flask, tmp_path: Path) -> None:
    (tmp_path / "secret.css").write_bytes(b"x")
    (tmp_path / "secret.css.gz").write_bytes(gzip.compress(b"x"))
    assert fetch(app, "/static/../secret.css", {"Accept-Encoding": "gzip"})[0] == 404
