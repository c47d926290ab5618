"""Issue 23: precompressed siblings served by nginx (and Caddy) as the CDN, for every
Accept-Encoding.

A foreign project deployed by the installed ``cdn-deploy`` twice, into a bucket and into a
folder target; in front of them the servers of ``site/cdn_servers.py`` (the configs
docs/precompressed.md shows): nginx as a caching proxy of the bucket that picks the
sibling's key by Accept-Encoding, nginx with ``gzip_static``/``brotli_static`` and Caddy
with ``precompressed br gzip`` on the folder. Every answer must decode to the identity
bytes, name the coding it used, keep the original Content-Type and say
``Vary: Accept-Encoding`` wherever the answer depends on it (never for the PNG).
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import NamedTuple

import brotli
import pytest

from pipeline.manifest import Manifest
from pipeline.negotiate import choose_encoding
from tests.e2e.conftest import stack_module
from tests.installed import InstalledTool
from tests.s3servers import S3Server

#: Accept-Encoding as a client sends it (None: no header at all) -> the coding it must get
#: for a file with both siblings.
MATRIX: dict[str | None, str | None] = {
    None: None,
    "identity": None,
    "gzip": "gzip",
    "br": "br",
    "gzip, deflate, br, zstd": "br",  # Chromium's
    "br;q=0": None,  # br refused; gzip not offered
}
#: Headers whose choice depends on q-values, `*`, identity, aliases, duplicates and
#: malformed elements: nginx in front of the bucket must choose as pipeline.negotiate does.
WEIGHED = (*MATRIX, "br;q=0, gzip", "gzip;q=0.5, br;q=0.9", "gzip;q=0.9, br;q=0.5",
           "br;q=0.5, gzip;q=1", "gzip;q=0.50, br;q=0.5", "*", "*;q=0", "*;q=0.5, br;q=0",
           "*, br;q=0", "*;q=0.3, gzip;q=0.2", "identity;q=1, gzip;q=0.5",
           "br;q=0.999, identity;q=1", "identity;q=0.5, br;q=0.8", "identity, *;q=0",
           "x-gzip", "GZIP;Q=0.3, BR;q=0.2", "gzip ; q = 0.25 , br ; q = 0.125",
           "br;q=abc, gzip;q=0.1", "br;q=1.5, gzip", "gzip;q=0.1234, br;q=0.2",
           "gzip;q=0, gzip", "br, br;q=0", "br;level=5;q=0.4, gzip;q=0.3",
           "br;q=0.001, gzip;q=0", "brotli, gzip;q=0.1", "deflate", "identity;q=0")
COMPRESSIBLE = ("css/site.css", "js/app.js", "img/logo.svg")
IMAGE = "img/photo.png"


def project_files() -> dict[str, bytes]:
    """Text files that compress well (both siblings kept) and a PNG (never compressed)."""
    from PIL import Image

    css = "".join(f".card-{i} {{ margin: {i % 7}px; color: #{i * 4099 % 0xFFFFFF:06x}; }}\n"
                  for i in range(300))
    js = "".join(f"export function step{i}(value) {{ return value * {i} + {i % 5}; }}\n"
                 for i in range(200))
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200">'
           + "".join(f'<circle cx="{i}" cy="{i * 3 % 200}" r="{i % 9 + 1}" fill="#3366aa"/>'
                     for i in range(150)) + "</svg>\n")
    png = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(png, "PNG")
    return {"css/site.css": css.encode(), "js/app.js": js.encode(),
            "img/logo.svg": svg.encode(), IMAGE: png.getvalue()}


class Cdn(NamedTuple):
    url: str
    keys: dict[str, str]  # logical name -> object key


class Served(NamedTuple):
    status: int
    encoding: str | None
    vary: str | None
    content_type: str | None
    cache: str | None
    body: bytes


def get(url: str, accept_encoding: str | None) -> Served:
    """GET with exactly this Accept-Encoding (http.client would add ``identity`` itself)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=20)
    try:
        connection.putrequest("GET", parts.path, skip_accept_encoding=True)
        if accept_encoding is not None:
            connection.putheader("Accept-Encoding", accept_encoding)
        connection.endheaders()
        response = connection.getresponse()
        return Served(response.status, response.getheader("Content-Encoding"),
                      response.getheader("Vary"), response.getheader("Content-Type"),
                      response.getheader("X-Cache-Status"), response.read())
    finally:
        connection.close()


def decoded(served: Served) -> bytes:
    """The body with its Content-Encoding undone (brotli by the brotli package)."""
    if served.encoding == "br":
        return bytes(brotli.decompress(served.body))
    if served.encoding == "gzip":
        return gzip.decompress(served.body)
    assert served.encoding is None, served.encoding
    return served.body


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return project_files()


@pytest.fixture(scope="module")
def cdns(installed: InstalledTool, s3_server: S3Server, files: dict[str, bytes],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cdn]]:
    """The project deployed by the installed tool into a bucket and a folder; nginx on each."""
    project = tmp_path_factory.mktemp("precompressed") / "their-project"
    for name, data in files.items():
        (project / "static" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "static" / name).write_bytes(data)
    bucket = f"precompressed-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:  # module scope: no test's environment yet
        for name, value in s3_server.credentials.env().items():
            patch.setenv(name, value)
        stack_module.create_buckets(s3_server.endpoint, asset_bucket=bucket)
    runs = {"s3": ("--bucket", bucket, "--endpoint-url", s3_server.endpoint),
            "folder": ("--target-dir", "out")}
    keys = {}
    for target, flags in runs.items():
        manifest = f"build/{target}-manifest.json"
        result = installed.run("cdn-deploy", *flags, "--manifest", manifest, "--json",
                               cwd=project, **s3_server.credentials.env())
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["compressed"] == len(COMPRESSIBLE)
        loaded = Manifest.load(project / manifest)
        keys[target] = {name: entry.key for name in files if (entry := loaded.get(name))}
    servers = stack_module.cdn_servers
    with ExitStack() as stack:
        yield {
            "s3": Cdn(stack.enter_context(servers.nginx_cdn(
                s3_server.endpoint, project.parent, bucket=bucket)), keys["s3"]),
            "folder": Cdn(stack.enter_context(servers.nginx_folder(
                project / "out", project.parent)), keys["folder"]),
            "caddy": Cdn(stack.enter_context(servers.caddy_folder(
                project / "out", project.parent)), keys["folder"]),
        }


@pytest.mark.parametrize("target", ["s3", "folder", "caddy"])
@pytest.mark.parametrize("accept_encoding", list(MATRIX))
def test_every_answer_decodes_to_the_identity_bytes(
        cdns: dict[str, Cdn], files: dict[str, bytes], target: str,
        accept_encoding: str | None) -> None:
    cdn = cdns[target]
    for name in (*COMPRESSIBLE, IMAGE):
        identity = get(f"{cdn.url}/{cdn.keys[name]}", None)
        # Twice: the second answer may come from nginx's cache, which keeps each coding apart.
        for _ in range(2):
            served = get(f"{cdn.url}/{cdn.keys[name]}", accept_encoding)
            assert served.status == 200, (name, served)
            assert decoded(served) == files[name], name
            assert served.content_type == identity.content_type, name
            if name == IMAGE:
                assert (served.encoding, served.vary) == (None, None), name
            else:
                assert served.encoding == MATRIX[accept_encoding], name
                assert served.vary == "Accept-Encoding", name
                assert len(served.body) < len(files[name]) or served.encoding is None


def test_the_bucket_behind_nginx_keeps_the_original_type_and_caches_each_coding(
        cdns: dict[str, Cdn]) -> None:
    cdn = cdns["s3"]
    url = f"{cdn.url}/{cdn.keys['css/site.css']}"
    answers = [get(url, coding) for coding in ("br", "gzip", None, "br", "gzip", None)]
    assert [a.encoding for a in answers] == ["br", "gzip", None] * 2
    assert {a.content_type for a in answers} == {"text/css; charset=utf-8"}
    assert [a.cache for a in answers[3:]] == ["HIT"] * 3


@pytest.mark.parametrize("accept_encoding", WEIGHED)
def test_nginx_before_the_bucket_chooses_the_coding_pipeline_negotiate_chooses(
        cdns: dict[str, Cdn], files: dict[str, bytes], accept_encoding: str | None) -> None:
    cdn = cdns["s3"]
    expected = choose_encoding(accept_encoding, ("br", "gzip"))  # both siblings were kept
    for name in COMPRESSIBLE:
        served = get(f"{cdn.url}/{cdn.keys[name]}", accept_encoding)
        assert served.status == 200, (name, served)
        assert (served.encoding, served.vary) == (expected, "Accept-Encoding"), name
        assert decoded(served) == files[name], name
