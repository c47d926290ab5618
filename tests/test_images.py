"""The image views (public, private local and private on S3) and upload validation.

A bare Flask app with only the images blueprint keeps these tests independent of the
demo site; a test sets the logged-in user through the session. A few requests go to
a real HTTP server because a browser-less client may send paths that the Flask test
client would build differently.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.serving import make_server
from werkzeug.wsgi import FileWrapper

from pipeline.errors import ConfigError, UnsafePathError
from pipeline.images.private import (
    MAX_EXPIRES_IN,
    PrivateObjects,
    upload_private,
    validate_expires_in,
)
from pipeline.images.responder import safe_relative_path
from pipeline.images.uploads import UploadRejected, detect_image, store_image
from pipeline.images.views import images_blueprint, images_state
from pipeline.storage.s3 import S3Settings, S3Storage

if TYPE_CHECKING:  # the fixture's type; only annotations use it
    from tests.helpers import S3Env

SECRET = b"TOP-SECRET-BYTES-never-served"


def image_bytes(fmt: str, size: tuple[int, int] = (16, 12), color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")
WEBP = image_bytes("WEBP")
GIF = image_bytes("GIF")
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf fake avif"
SVG = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
BIG = bytes(range(256)) * 40  # 10 KiB, for ranges


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return make_dirs(tmp_path)


def make_dirs(tmp_path: Path) -> dict[str, Path]:
    """IMAGES_DIR and PRIVATE_DIR, with secrets (and links to them) just outside."""
    images, private = tmp_path / "images", tmp_path / "private"
    files = {
        images / "logo.png": PNG, images / "photo.jpg": JPEG, images / "pic.webp": WEBP,
        images / "anim.gif": GIF, images / "new.avif": AVIF, images / "icon.svg": SVG,
        images / "big.png": BIG, images / "sub" / "nested.png": PNG,
        images / "page.html": b"<script>alert(1)</script>", images / ".hidden.png": SECRET,
        private / "photo.png": PNG, private / "sub" / "nested.png": PNG,
        tmp_path / "secret.png": SECRET, tmp_path / "secret.txt": SECRET,
        tmp_path / "outside" / "secret.png": SECRET,
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for folder in (images, private):
        (folder / "link-out.png").symlink_to(tmp_path / "secret.png")
        (folder / "linkdir").symlink_to(tmp_path / "outside", target_is_directory=True)
        (folder / "link-in.png").symlink_to(folder / "sub" / "nested.png")
    return {"images": images, "private": private, "root": tmp_path}


class BufferedClient(FlaskClient):
    """Reads every response whole and closes it, so no file handle is left open."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(dirs: dict[str, Path], **config: Any) -> Flask:
    app = Flask(__name__)
    app.test_client_class = BufferedClient
    app.config.update(SECRET_KEY="test", TESTING=True, IMAGES_DIR=dirs["images"],
                      PRIVATE_DIR=dirs["private"], IMAGES_CACHE_MAX_AGE=600)
    app.config.update(config)
    app.register_blueprint(images_blueprint(
        current_user=lambda: session.get("user"),
        may_read_private=lambda user, path: user != "mallory",
    ))
    return app


@pytest.fixture
def client(dirs: dict[str, Path]) -> FlaskClient:
    return make_app(dirs).test_client()


def log_in(client: FlaskClient, user: str = "alice") -> None:
    with client.session_transaction() as sess:
        sess["user"] = user


# -- public images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "mimetype"),
    [
        ("logo.png", PNG, "image/png"),
        ("photo.jpg", JPEG, "image/jpeg"),
        ("pic.webp", WEBP, "image/webp"),
        ("new.avif", AVIF, "image/avif"),
        ("anim.gif", GIF, "image/gif"),
        ("icon.svg", SVG, "image/svg+xml"),
        ("sub/nested.png", PNG, "image/png"),
        ("link-in.png", PNG, "image/png"),  # a symlink that stays inside is fine
    ],
)
def test_public_image_bytes_type_and_headers(
    client: FlaskClient, name: str, data: bytes, mimetype: str
) -> None:
    response = client.get(f"/images/{name}")
    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Type"] == mimetype
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Cache-Control"] == "public, max-age=600"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["ETag"]
    assert response.headers["Last-Modified"]
    assert response.headers["Accept-Ranges"] == "bytes"


def test_svg_cannot_run_script(client: FlaskClient) -> None:
    csp = client.get("/images/icon.svg").headers["Content-Security-Policy"]
    directives = {part.strip().split(" ")[0] for part in csp.split(";")}
    assert {"sandbox", "default-src"} <= directives
    assert "default-src 'none'" in csp
    assert "script" not in csp


def test_cache_max_age_is_configurable(dirs: dict[str, Path]) -> None:
    client = make_app(dirs, IMAGES_CACHE_MAX_AGE=0).test_client()
    assert "max-age=0" in client.get("/images/logo.png").headers["Cache-Control"]


def test_non_image_files_and_dotfiles_are_not_served(client: FlaskClient) -> None:
    assert client.get("/images/page.html").status_code == 404
    assert client.get("/images/.hidden.png").status_code == 404
    assert client.get("/images/missing.png").status_code == 404
    assert client.get("/images/sub").status_code == 404


def test_if_none_match_gives_304(client: FlaskClient) -> None:
    etag = client.get("/images/logo.png").headers["ETag"]
    response = client.get("/images/logo.png", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_if_modified_since_gives_304(client: FlaskClient) -> None:
    last_modified = client.get("/images/logo.png").headers["Last-Modified"]
    response = client.get("/images/logo.png", headers={"If-Modified-Since": last_modified})
    assert response.status_code == 304


def test_stale_validators_give_200(client: FlaskClient, dirs: dict[str, Path]) -> None:
    response = client.get("/images/logo.png", headers={"If-None-Match": '"other"'})
    assert response.status_code == 200
    old = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert client.get("/images/logo.png", headers={"If-Modified-Since": old}).status_code == 200


def test_range_gives_206(client: FlaskClient) -> None:
    response = client.get("/images/big.png", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.data == BIG[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(BIG)}"
    assert response.headers["Content-Length"] == "100"
    suffix = client.get("/images/big.png", headers={"Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.data == BIG[-10:]


def test_unsatisfiable_range_gives_416(client: FlaskClient) -> None:
    response = client.get("/images/big.png", headers={"Range": f"bytes={len(BIG) + 10}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(BIG)}"


def test_head_has_headers_without_body(client: FlaskClient) -> None:
    response = client.head("/images/photo.jpg")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(JPEG))
    assert response.headers["Content-Type"] == "image/jpeg"


def test_files_are_streamed_not_read_whole(dirs: dict[str, Path]) -> None:
    app = make_app(dirs)
    with app.test_request_context("/images/big.png"):
        response = app.full_dispatch_request()
        try:
            assert response.direct_passthrough
            assert isinstance(response.response, FileWrapper)
        finally:
            response.close()


# -- the per-file cache: every request revalidates with stat ----------------------------------

# Each case requests the file once (so its checks and headers are cached), changes the
# disk, then asks again: plainly, and with the first answer's ETag (the 304 path, which
# never opens the file).
ROUTES = [("images", "logo.png", None), ("private", "photo.png", "alice")]


def cached_get(client: FlaskClient, url: str) -> Any:
    first = client.get(url)
    assert first.status_code == 200
    return first


@pytest.mark.parametrize(("prefix", "name", "user"), ROUTES)
def test_cached_file_replaced_serves_new_bytes_and_new_etag(
    dirs: dict[str, Path], prefix: str, name: str, user: str | None
) -> None:
    client = make_app(dirs).test_client()
    if user:
        log_in(client, user)
    url = f"/{prefix}/{name}"
    first = cached_get(client, url)
    target = dirs[prefix] / name
    new = image_bytes("PNG", color="blue")
    assert new != first.data
    staged = target.with_name("staged.tmp")
    staged.write_bytes(new)
    staged.replace(target)  # an atomic replace: same name, new file
    again = client.get(url)
    assert (again.status_code, again.data) == (200, new)
    assert again.headers["Content-Length"] == str(len(new))
    assert again.headers["ETag"] != first.headers["ETag"]
    revalidated = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert (revalidated.status_code, revalidated.data) == (200, new)
    assert client.get(url, headers={"If-None-Match": again.headers["ETag"]}).status_code == 304


def test_cached_file_rewritten_in_place_serves_new_bytes(dirs: dict[str, Path]) -> None:
    """The same inode rewritten (a longer body and a new mtime): size and mtime_ns see it."""
    client = make_app(dirs).test_client()
    first = cached_get(client, "/images/big.png")
    target = dirs["images"] / "big.png"
    target.write_bytes(BIG + b"more")
    os.utime(target, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    again = client.get("/images/big.png")
    assert (again.status_code, again.data) == (200, BIG + b"more")
    assert again.headers["ETag"] != first.headers["ETag"]


@pytest.mark.parametrize(("prefix", "name", "user"), ROUTES)
@pytest.mark.parametrize("conditional", [False, True])
def test_cached_file_replaced_by_a_link_out_is_refused(
    dirs: dict[str, Path], prefix: str, name: str, user: str | None, conditional: bool
) -> None:
    client = make_app(dirs).test_client()
    if user:
        log_in(client, user)
    first = cached_get(client, f"/{prefix}/{name}")
    target = dirs[prefix] / name
    target.unlink()
    target.symlink_to(dirs["root"] / "secret.png")
    headers = {"If-None-Match": first.headers["ETag"]} if conditional else {}
    response = client.get(f"/{prefix}/{name}", headers=headers)
    assert response.status_code == 404
    assert SECRET not in response.data


def test_cached_folder_replaced_by_a_link_out_is_refused(dirs: dict[str, Path]) -> None:
    client = make_app(dirs).test_client()
    cached_get(client, "/images/sub/nested.png")
    (dirs["root"] / "outside" / "nested.png").write_bytes(SECRET)
    sub = dirs["images"] / "sub"
    sub.rename(dirs["root"] / "moved-sub")
    sub.symlink_to(dirs["root"] / "outside", target_is_directory=True)
    response = client.get("/images/sub/nested.png")
    assert response.status_code == 404
    assert SECRET not in response.data


def test_cached_file_follows_a_repointed_folder_link(dirs: dict[str, Path]) -> None:
    """IMAGES_DIR as a symlink swapped to a new release folder: the new file is served."""
    old, new = dirs["root"] / "v1", dirs["root"] / "v2"
    for folder, data in ((old, PNG), (new, image_bytes("PNG", color="green"))):
        folder.mkdir()
        (folder / "logo.png").write_bytes(data)
    current = dirs["root"] / "current"
    current.symlink_to(old, target_is_directory=True)
    client = make_app(dirs, IMAGES_DIR=current).test_client()
    assert cached_get(client, "/images/logo.png").data == PNG
    staged = dirs["root"] / "staged-link"
    staged.symlink_to(new, target_is_directory=True)
    staged.replace(current)
    assert client.get("/images/logo.png").data == (new / "logo.png").read_bytes()


@pytest.mark.parametrize("conditional", [False, True])
def test_cached_file_deleted_is_404(client: FlaskClient, dirs: dict[str, Path],
                                    conditional: bool) -> None:
    first = cached_get(client, "/images/photo.jpg")
    (dirs["images"] / "photo.jpg").unlink()
    headers = {"If-None-Match": first.headers["ETag"]} if conditional else {}
    assert client.get("/images/photo.jpg", headers=headers).status_code == 404
    (dirs["images"] / "photo.jpg").write_bytes(JPEG)  # back again: served again
    assert client.get("/images/photo.jpg").data == JPEG


def test_file_cache_keeps_the_most_recently_used_names_up_to_its_bound(
    dirs: dict[str, Path]
) -> None:
    app = make_app(dirs)
    cache = images_state(app).public_files
    cache.max_entries = 2
    client = app.test_client()
    for name in ("logo.png", "photo.jpg", "logo.png", "pic.webp", "anim.gif"):
        assert client.get(f"/images/{name}").status_code == 200
        assert len(cache) <= 2
    assert "anim.gif" in cache and "pic.webp" in cache and "logo.png" not in cache
    assert client.get("/images/logo.png").data == PNG  # evicted names are checked again


def test_no_images_dir_means_404(dirs: dict[str, Path]) -> None:
    client = make_app(dirs, IMAGES_DIR=None, PRIVATE_DIR=None).test_client()
    assert client.get("/images/logo.png").status_code == 404
    log_in(client)
    assert client.get("/private/photo.png").status_code == 404


# -- path traversal --------------------------------------------------------------------------

TRAVERSALS = [
    "../secret.png", "../secret.txt", "../../secret.png", "sub/../../secret.png",
    "..%2fsecret.png", "..%2Fsecret.png", "%2e%2e/secret.png", "%2e%2e%2fsecret.png",
    ".%2e/secret.png", "%2e./secret.png", "sub/%2e%2e/%2e%2e/secret.png",
    "%252e%252e/secret.png", "%252e%252e%252fsecret.png", "..%252fsecret.png",
    "%25252e%25252e/secret.png",
    "..\\secret.png", "..%5csecret.png", "%2e%2e%5csecret.png", "sub\\..\\..\\secret.png",
    "/etc/passwd", "%2fetc%2fpasswd", "/{root}/secret.png", "%2f{root}%2fsecret.png",
    "logo.png%00.png", "..%00/secret.png", "../secret.png%00.png", "%00",
    "%c0%ae%c0%ae/secret.png", "..%c0%afsecret.png", "%e0%80%ae%e0%80%ae/secret.png",
    "%ef%bc%8e%ef%bc%8e/secret.png", "..%ef%bc%8fsecret.png", "%e2%80%a4%e2%80%a4/secret.png",
    "\uff0e\uff0e/secret.png", "..;/secret.png", "./../secret.png", "....//secret.png",
    "link-out.png", "linkdir/secret.png", ".hidden.png", "file:///etc/passwd",
]


def traversal_url(prefix: str, attack: str, root: Path) -> str:
    return f"/{prefix}/" + attack.replace("{root}", str(root).lstrip("/"))


@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_on_public_images_is_404(
    client: FlaskClient, dirs: dict[str, Path], attack: str
) -> None:
    response = client.get(traversal_url("images", attack, dirs["root"]))
    assert response.status_code == 404
    assert SECRET not in response.data
    assert b"root:" not in response.data


@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_on_private_images_logged_in_is_404(
    client: FlaskClient, dirs: dict[str, Path], attack: str
) -> None:
    log_in(client)
    response = client.get(traversal_url("private", attack, dirs["root"]))
    assert response.status_code == 404
    assert SECRET not in response.data
    assert b"root:" not in response.data


@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_on_private_images_anonymous_never_serves(
    client: FlaskClient, dirs: dict[str, Path], attack: str
) -> None:
    """Anonymous: unsafe names are a 404 (a string check); names that look safe get
    the same 401 as any other name, because nothing on disk is looked at before login."""
    response = client.get(traversal_url("private", attack, dirs["root"]))
    assert response.status_code in (400, 401, 404)
    assert SECRET not in response.data


@pytest.mark.parametrize("attack", ["../secret.png", "..%2fsecret.png", "..\\secret.png",
                                    "%00", "/etc/passwd", ".hidden.png"])
def test_unsafe_private_names_are_404_even_anonymous(client: FlaskClient, attack: str) -> None:
    assert client.get(f"/private/{attack}").status_code == 404


def test_send_from_directory_alone_would_follow_the_link(dirs: dict[str, Path]) -> None:
    """Why the resolved-path check exists: Flask's helper serves the secret."""
    from flask import send_from_directory

    with make_app(dirs).test_request_context():
        response = send_from_directory(dirs["images"], "link-out.png")
        response.direct_passthrough = False
        try:
            assert response.get_data() == SECRET
        finally:
            response.close()


@pytest.mark.parametrize(
    "name",
    ["../x.png", "a/../b.png", "./a.png", "a//b.png", "/a.png", "a\\b.png", "a\x00.png",
     "a\n.png", ".x.png", "\uff0e\uff0e/x.png", ""],
)
def test_safe_relative_path_refuses(name: str) -> None:
    assert safe_relative_path(name) is None


@pytest.mark.parametrize("name", ["a.png", "sub/b c.png", "caf\u00e9.png", "a..b.png", "%2e.png"])
def test_safe_relative_path_accepts(name: str) -> None:
    assert safe_relative_path(name) == name


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a real HTTP server on a free loopback port, one for the module (its tests
    only read)."""
    app = make_app(make_dirs(tmp_path_factory.mktemp("live")))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.parametrize(
    "raw_path",
    ["/images/../secret.png", "/images/..%2fsecret.png", "/images/%2e%2e/secret.png",
     "/images/..%5csecret.png", "/images//etc/passwd", "/images/link-out.png",
     "/images/sub/../../secret.png", "/images/%252e%252e/secret.png"],
)
def test_traversal_over_real_http(live_url: str, raw_path: str) -> None:
    """http.client sends the path as written, unlike a browser that would normalise it."""
    connection = http.client.HTTPConnection(live_url, timeout=10)
    try:
        connection.request("GET", raw_path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status in (400, 404)
    assert SECRET not in body


def test_range_and_304_over_real_http(live_url: str) -> None:
    connection = http.client.HTTPConnection(live_url, timeout=10)
    try:
        connection.request("GET", "/images/big.png", headers={"Range": "bytes=0-9"})
        ranged = connection.getresponse()
        assert (ranged.status, ranged.read()) == (206, BIG[:10])
        etag = ranged.getheader("ETag")
        connection.request("GET", "/images/big.png", headers={"If-None-Match": str(etag)})
        cached = connection.getresponse()
        assert (cached.status, cached.read()) == (304, b"")
    finally:
        connection.close()


# -- private images, local mode --------------------------------------------------------------


def test_private_requires_login(client: FlaskClient) -> None:
    response = client.get("/private/photo.png")
    assert response.status_code == 401
    assert PNG not in response.data


def test_private_401_does_not_reveal_existence(client: FlaskClient) -> None:
    present = client.get("/private/photo.png")
    absent = client.get("/private/no-such-file.png")
    assert (present.status_code, present.data) == (absent.status_code, absent.data)


def test_private_served_to_logged_in_user(client: FlaskClient) -> None:
    log_in(client)
    response = client.get("/private/photo.png")
    assert response.status_code == 200
    assert response.data == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/private/sub/nested.png").data == PNG


def test_private_forbidden_for_user_without_access(client: FlaskClient) -> None:
    log_in(client, "mallory")
    response = client.get("/private/photo.png")
    assert response.status_code == 403
    assert PNG not in response.data


def test_private_missing_file_is_404_when_logged_in(client: FlaskClient) -> None:
    log_in(client)
    assert client.get("/private/missing.png").status_code == 404


# -- private images, CDN mode (moto over HTTP) -----------------------------------------------


def s3_storage(s3: S3Env) -> S3Storage:
    return S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=2))


def cdn_app(dirs: dict[str, Path], s3: S3Env, **config: Any) -> Flask:
    return make_app(dirs, PRIVATE_BUCKET=s3.bucket, PRIVATE_ENDPOINT_URL=s3.endpoint,
                    PRIVATE_PREFIX="private", **config)


def private_folder(root: Path) -> Path:
    folder = root / "to-publish"
    for name, data in {"photo.png": PNG, "sub/nested.png": PNG, ".DS_Store": SECRET}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_upload_private_stores_objects_without_public_acl(
    s3: S3Env, dirs: dict[str, Path]
) -> None:
    keys = upload_private(private_folder(dirs["root"]), s3_storage(s3), "private")
    assert keys == ["private/photo.png", "private/sub/nested.png"]
    assert s3.keys() == {"private/photo.png": len(PNG), "private/sub/nested.png": len(PNG)}
    head = s3.client.head_object(Bucket=s3.bucket, Key="private/photo.png")
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "private, no-store"
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key="private/photo.png")["Grants"]
    assert grants, "expected the owner's grant"
    for grant in grants:  # only the owner: no AllUsers / AuthenticatedUsers group grant
        assert grant["Grantee"]["Type"] == "CanonicalUser", grant


def test_upload_private_refuses_symlinks_out_of_the_folder(
    s3: S3Env, dirs: dict[str, Path]
) -> None:
    folder = private_folder(dirs["root"])
    (folder / "link-out.png").symlink_to(dirs["root"] / "secret.png")
    with pytest.raises(UnsafePathError):
        upload_private(folder, s3_storage(s3), "private")
    assert s3.keys() == {}


@pytest.fixture
def cdn_client(s3: S3Env, dirs: dict[str, Path]) -> FlaskClient:
    s3.client.put_object(Bucket=s3.bucket, Key="private/photo.png", Body=PNG,
                         ContentType="image/png")
    return cdn_app(dirs, s3).test_client()


def test_cdn_private_redirects_to_presigned_url(cdn_client: FlaskClient) -> None:
    log_in(cdn_client)
    response = cdn_client.get("/private/photo.png")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "private, no-store"
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert 0 < int(query["X-Amz-Expires"][0]) <= 900
    assert "X-Amz-Signature" in query
    with urllib.request.urlopen(location, timeout=10) as fetched:  # loopback moto server
        assert fetched.read() == PNG


def test_cdn_private_expiry_is_configurable(s3: S3Env, dirs: dict[str, Path]) -> None:
    client = cdn_app(dirs, s3, PRIVATE_URL_EXPIRES=60).test_client()
    log_in(client)
    location = client.get("/private/photo.png").headers["Location"]
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["60"]


@pytest.mark.parametrize(("expires", "says"), [
    (901, "between 1 and 900 seconds (15 minutes), not 901"),
    (3600, "between 1 and 900 seconds (15 minutes), not 3600"),
    (0, "between 1 and 900 seconds (15 minutes), not 0"),
    (-5, "between 1 and 900 seconds (15 minutes), not -5"),
    ("soon", "whole seconds, not 'soon'"),
])
def test_cdn_private_expiry_above_15_minutes_is_refused(
    s3: S3Env, dirs: dict[str, Path], expires: object, says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"presigned URL expiry must be {says}")):
        cdn_app(dirs, s3, PRIVATE_URL_EXPIRES=expires)


def test_cdn_private_no_presigned_url_without_login(cdn_client: FlaskClient) -> None:
    response = cdn_client.get("/private/photo.png")
    assert response.status_code == 401
    assert "Location" not in response.headers
    assert b"X-Amz" not in response.data


def test_cdn_private_no_presigned_url_when_forbidden(cdn_client: FlaskClient) -> None:
    log_in(cdn_client, "mallory")
    response = cdn_client.get("/private/photo.png")
    assert response.status_code == 403
    assert "Location" not in response.headers


@pytest.mark.parametrize("attack", ["../secret.png", "..%2fsecret.png", "%2e%2e/x.png",
                                    "..\\x.png", "%00.png", "/etc/passwd"])
def test_cdn_private_traversal_is_404(cdn_client: FlaskClient, attack: str) -> None:
    log_in(cdn_client)
    response = cdn_client.get(f"/private/{attack}")
    assert response.status_code == 404
    assert "Location" not in response.headers


def test_presigned_url_is_not_logged(
    cdn_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing of ours logs it, at any level. (botocore's own DEBUG output prints
    signatures: keep the ``botocore`` logger at INFO or above in production.)"""
    log_in(cdn_client)
    with caplog.at_level("DEBUG"):
        location = cdn_client.get("/private/photo.png").headers["Location"]
    signature = parse_qs(urlsplit(location).query)["X-Amz-Signature"][0]
    ours = [r for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))]
    assert not any(signature in r.getMessage() for r in ours)
    caplog.clear()
    with caplog.at_level("INFO"):
        cdn_client.get("/private/photo.png")
    assert "X-Amz-Signature" not in caplog.text


def test_private_objects_put_and_names(s3: S3Env) -> None:
    objects = PrivateObjects(s3_storage(s3), prefix="p", expires_in=MAX_EXPIRES_IN)
    assert objects.put("a.png", PNG) == "p/a.png"
    assert objects.names() == ["a.png"]
    assert s3.get("p/a.png")["Body"].read() == PNG


def test_validate_expires_in_bounds() -> None:
    assert validate_expires_in(900) == 900
    assert validate_expires_in("60") == 60
    for bad in (901, 0, None, "x"):
        with pytest.raises(ConfigError):
            validate_expires_in(bad)


# -- upload validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "ext"),
    [(PNG, "PNG", ".png"), (JPEG, "JPEG", ".jpg"), (GIF, "GIF", ".gif"), (WEBP, "WEBP", ".webp")],
)
def test_detect_image_accepts_allowed_formats(data: bytes, fmt: str, ext: str) -> None:
    detected = detect_image(data)
    assert (detected.format, detected.extension, detected.width, detected.height) == (
        fmt, ext, 16, 12,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html><script>alert(1)</script></html>",
        b"\x89PNG\r\n\x1a\n" + b"<script>alert(1)</script>",  # a PNG signature, then junk
        PNG[: len(PNG) // 2],  # truncated
        SVG,
        image_bytes("BMP"),  # a real image, but not an allowed format
        image_bytes("TIFF"),
    ],
)
def test_detect_image_rejects(data: bytes) -> None:
    with pytest.raises(UploadRejected):
        detect_image(data)


def test_detect_image_rejects_too_many_pixels() -> None:
    with pytest.raises(UploadRejected, match="pixels"):
        detect_image(image_bytes("PNG", size=(200, 200)), max_pixels=100 * 100)


def test_store_image_uses_a_generated_name(tmp_path: Path) -> None:
    name = store_image(tmp_path, JPEG)
    assert name.endswith(".jpg") and len(name) == 32 + 4
    assert (tmp_path / name).read_bytes() == JPEG
    assert store_image(tmp_path, JPEG) != name
    assert len(list(tmp_path.iterdir())) == 2  # two files, no temporary left behind


# -- deploy.py private: how private images reach the bucket ---------------------------------


def test_private_command_uploads_without_acl_under_its_own_prefix(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli.main import main

    folder = tmp_path / "private"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "plan.png").write_bytes(PNG)
    (folder / ".DS_Store").write_bytes(b"junk")
    s3.allow_public_read("static/")  # the CDN's grant covers the public prefix only
    code = main(["private", str(folder), "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                 "--json"])
    assert code == 0, capsys.readouterr().err
    assert s3.keys("private/") == {"private/sub/plan.png": len(PNG)}
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key="private/sub/plan.png")["Grants"]
    assert [g["Grantee"].get("Type") for g in grants] == ["CanonicalUser"]  # the owner only


@pytest.mark.parametrize("resource", ["{bucket}/*", "{bucket}/priv*", "{bucket}/private/*"])
def test_private_command_refuses_a_policy_that_would_expose_it(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], resource: str
) -> None:
    import json as json_module

    from pipeline.cli.main import main

    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "plan.png").write_bytes(PNG)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:Get*"],
        "Resource": "arn:aws:s3:::" + resource.format(bucket=s3.bucket)}]}
    s3.client.put_bucket_policy(Bucket=s3.bucket, Policy=json_module.dumps(policy))
    code = main(["private", str(folder), "--bucket", s3.bucket, "--endpoint-url", s3.endpoint])
    assert code == 2
    assert "private images would be public" in capsys.readouterr().err
    assert s3.keys() == {}


@pytest.mark.parametrize(("args", "needle"), [
    (["--private-prefix", "static"], "overlaps"),
    (["--private-prefix", "static/private"], "overlaps"),
    (["--prefix", "/", "--private-prefix", "private"], "prefix '/' is empty"),
    (["--private-prefix", "/"], "prefix '/' is empty"),
])
def test_private_command_refuses_overlapping_prefixes(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    from pipeline.cli.main import main

    (tmp_path / "p").mkdir()
    code = main(["private", str(tmp_path / "p"), "--bucket", s3.bucket, "--endpoint-url",
                 s3.endpoint, *args])
    assert code == 2 and needle in capsys.readouterr().err


def test_private_command_refuses_a_folder_target(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    (tmp_path / "p").mkdir()
    assert main(["private", str(tmp_path / "p"), "--target-dir", str(tmp_path / "cdn")]) == 2
    captured = capsys.readouterr().err
    assert "needs a bucket" in captured and "Using the embedded default" not in captured
    assert not (tmp_path / "cdn").exists()


def test_the_responder_needs_no_web_framework() -> None:
    """How an image is answered is Werkzeug's HTTP and our checks, not Flask: the views are
    the only Flask part, so another WSGI framework could use the responder."""
    import subprocess
    import sys

    code = ("import sys, pipeline.images.responder; "
            "print('flask' in sys.modules, 'werkzeug' in sys.modules)")
    root = str(Path(__file__).resolve().parent.parent)  # this checkout's pipeline
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert result.stdout.split() == ["False", "True"]
