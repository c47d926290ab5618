"""``cdn-deploy serve`` negotiates the precompressed siblings, as installed by a user: every
``Accept-Encoding`` a client sends gets bytes that decode to the file, with the headers that
say how (Content-Encoding, the original Content-Type, Vary, an ETag per representation)."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator

import brotli
import pytest

from tests.helpers import write_tree
from tests.installed import InstalledTool

CSS = b"".join(b".c%d { color: #%06x; margin: 0 auto; }\n" % (i, i * 977) for i in range(300))
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 3000
DECODE = {None: lambda data: data, "br": brotli.decompress, "gzip": gzip.decompress}

#: Accept-Encoding (None: absent) -> the Content-Encoding a client must get.
MATRIX = {None: None, "identity": None, "gzip": "gzip", "br": "br",
          "gzip, deflate, br, zstd": "br", "br;q=0": None}


@pytest.fixture(scope="module")
def served(installed: InstalledTool, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, dict[str, str]]]:
    """A foreign project deployed to its folder target and served, by the installed tool."""
    project = tmp_path_factory.mktemp("encodings") / "their-project"
    write_tree(project / "static", {"css/site.css": CSS, "img/p.png": PNG})
    deployed = installed.run("cdn-deploy", "--no-assets", "--json", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["sibling_uploads"] == 2
    document = json.loads((project / "build" / "cdn-manifest.json").read_bytes())
    keys = {path: entry["key"] for path, entry in document["files"].items()}
    with installed.serving(cwd=project) as server:
        yield server.url, keys


def get(base: str, path: str, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    # skip_accept_encoding: http.client would otherwise send "identity" on its own
    connection.putrequest("GET", path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


@pytest.mark.parametrize("accept", list(MATRIX))
def test_every_accept_encoding_decodes_to_the_file(
        served: tuple[str, dict[str, str]], accept: str | None) -> None:
    base, keys = served
    headers = {} if accept is None else {"Accept-Encoding": accept}
    response, body = get(base, "/" + keys["css/site.css"], headers)
    expected = MATRIX[accept]
    assert response.status == 200
    assert response.headers.get("Content-Encoding") == expected
    assert DECODE[expected](body) == CSS
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_each_representation_has_its_own_etag_and_revalidates(
        served: tuple[str, dict[str, str]]) -> None:
    base, keys = served
    path = "/" + keys["css/site.css"]
    etags = {accept: get(base, path, {"Accept-Encoding": accept})[0].headers["ETag"]
             for accept in ("identity", "gzip", "br")}
    assert len(set(etags.values())) == 3
    response, _ = get(base, path, {"Accept-Encoding": "br", "If-None-Match": etags["br"]})
    assert response.status == 304
    # The gzip ETag does not validate the br representation.
    response, body = get(base, path, {"Accept-Encoding": "br", "If-None-Match": etags["gzip"]})
    assert response.status == 200 and brotli.decompress(body) == CSS


def test_a_range_of_a_compressed_representation_is_a_range_of_its_bytes(
        served: tuple[str, dict[str, str]]) -> None:
    """RFC 9110 14.1: ranges address the selected representation, here the gzip bytes."""
    base, keys = served
    path = "/" + keys["css/site.css"]
    _, whole = get(base, path, {"Accept-Encoding": "gzip"})
    response, part = get(base, path, {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert response.status == 206 and response.headers["Content-Encoding"] == "gzip"
    assert part == whole[:10]
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(whole)}"


def test_an_image_is_never_negotiated(served: tuple[str, dict[str, str]]) -> None:
    base, keys = served
    response, body = get(base, "/" + keys["img/p.png"], {"Accept-Encoding": "br, gzip"})
    assert response.status == 200 and body == PNG
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers
