"""The demo site (site/app.py): gallery in both modes, demo login, uploads, private images.

``import site.app`` cannot work (the stdlib ``site`` module is loaded at start-up),
so the module is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from pipeline.fingerprint import HashCache
from pipeline.localfs import collect_files
from pipeline.manifest import build_manifest

if TYPE_CHECKING:  # the fixture's type; only annotations use it
    from tests.helpers import S3Env

ROOT = Path(__file__).resolve().parent.parent
SITE_APP = ROOT / "site" / "app.py"
USERS = {"alice": "correct horse", "bob": "p\u00e4ssw\u00f6rd"}


@pytest.fixture(scope="module")
def site() -> Iterator[ModuleType]:
    """site/app.py as a module (registered in sys.modules, as dataclasses need)."""
    name = "demo_site_app"
    spec = importlib.util.spec_from_file_location(name, SITE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


class BufferedClient(FlaskClient):
    """Reads every response whole and closes it, so no file handle is left open."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def make_app(site: ModuleType, tmp_path: Path) -> Any:
    def make(**config: Any) -> Flask:
        settings = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DEMO_USERS": USERS,
            "IMAGES_DIR": tmp_path / "images",
            "PRIVATE_DIR": tmp_path / "private",
            "CDN_MANIFEST": tmp_path / "no-manifest.json",
            **config,
        }
        app: Flask = site.create_app(settings)
        app.test_client_class = BufferedClient
        return app

    return make


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    return make_app().test_client()


def log_in(client: FlaskClient, user: str = "alice", password: str | None = None) -> Any:
    return client.post("/login", data={"username": user, "password": password or USERS[user]})


def png_bytes(size: tuple[int, int] = (20, 10), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, fmt)
    return buffer.getvalue()


def upload(client: FlaskClient, data: bytes, filename: str = "photo.png", **form: str) -> Any:
    return client.post(
        "/upload",
        data={"image": (io.BytesIO(data), filename), **form},
        content_type="multipart/form-data",
    )


# -- gallery ---------------------------------------------------------------------------------


def img_sources(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_gallery_in_dev_mode_uses_local_static_urls(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    sources = img_sources(response.get_data(as_text=True))
    assert "/static/img/cat.jpg" in sources
    assert "/static/img/photos/caf%C3%A9.png" in sources
    assert "/static/img/photos/sunset%20beach.webp" in sources
    assert "/static/img/icons/arrow.svg" in sources
    assert all(src.startswith("/static/img/") for src in sources)
    for src in sources:  # every image on the page is really served
        assert client.get(src).status_code == 200, src


def test_gallery_sets_dimensions_and_lazy_loading(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    cat = re.search(r'<img src="/static/img/cat.jpg"[^>]*>', html)
    assert cat is not None
    assert 'width="320" height="240"' in cat.group(0)
    assert 'alt="cat"' in cat.group(0)
    assert html.count('loading="lazy"') >= 5


def test_gallery_in_cdn_mode_uses_fingerprinted_urls(make_app: Any, tmp_path: Path) -> None:
    manifest = build_manifest(collect_files(ROOT / "static"), prefix="static",
                              cache=HashCache(None))
    manifest.save(tmp_path / "manifest.json")
    app = make_app(CDN_URL="https://cdn.example.com", CDN_MANIFEST=tmp_path / "manifest.json",
                   CDN_ENABLED=True)
    sources = img_sources(app.test_client().get("/").get_data(as_text=True))
    assert sources and all(src.startswith("https://cdn.example.com/static/img/") for src in sources)
    cat = manifest.get("img/cat.jpg")
    assert cat is not None and f"https://cdn.example.com/{cat.key}" in sources


def test_gallery_lists_uploads_and_private_images_for_users(client: FlaskClient) -> None:
    log_in(client)
    public = upload(client, png_bytes()).headers["Location"]
    private = upload(client, png_bytes(), visibility="private").headers["Location"]
    html = client.get("/").get_data(as_text=True)
    assert public in img_sources(html) and private in img_sources(html)
    client.post("/logout")
    html = client.get("/").get_data(as_text=True)
    assert public in img_sources(html) and private not in html


def test_static_folder_is_the_top_level_one(make_app: Any) -> None:
    assert Path(make_app().static_folder) == ROOT / "static"


# -- login -----------------------------------------------------------------------------------


def test_login_form_page(client: FlaskClient) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in html and 'type="password"' in html and 'method="post"' in html


def test_login_sets_a_safe_session_cookie(client: FlaskClient) -> None:
    response = log_in(client)
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_secure_cookie_is_configurable(make_app: Any) -> None:
    client = make_app(SESSION_COOKIE_SECURE=True).test_client()
    assert "Secure" in log_in(client).headers["Set-Cookie"]


def test_private_image_needs_login(client: FlaskClient, tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "me.png").write_bytes(png_bytes())
    assert client.get("/private/me.png").status_code == 401
    log_in(client)
    response = client.get("/private/me.png")
    assert response.status_code == 200
    assert response.data == png_bytes()
    client.post("/logout")
    assert client.get("/private/me.png").status_code == 401


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("alice", ""), ("nobody", "correct horse"), ("", ""),
     ("alice", "correct horse "), ("bob", "p\u00e4ssword")],
)
def test_wrong_credentials_are_rejected(
    client: FlaskClient, tmp_path: Path, user: str, password: str
) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "me.png").write_bytes(png_bytes())
    response = client.post("/login", data={"username": user, "password": password})
    assert response.status_code == 401
    assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/private/me.png").status_code == 401


def test_non_ascii_password_works(client: FlaskClient) -> None:
    assert log_in(client, "bob").status_code == 303


def test_check_password_is_constant_time_shaped(site: ModuleType) -> None:
    assert site.check_password(USERS, "alice", "correct horse")
    assert not site.check_password(USERS, "alice", "correct hors")
    assert not site.check_password(USERS, "carol", "anything")
    assert not site.check_password({"x": None}, "x", "")  # bad config is not a login


def test_privileges_limit_who_reads_private_images(make_app: Any, tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "me.png").write_bytes(png_bytes())
    client = make_app(PRIVATE_ALLOWED_USERS=["alice"]).test_client()
    log_in(client, "bob")
    assert client.get("/private/me.png").status_code == 403
    client.post("/logout")
    log_in(client, "alice")
    assert client.get("/private/me.png").status_code == 200


def test_logout_is_post_only(client: FlaskClient) -> None:
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 303


def test_login_redirects_only_to_local_paths(client: FlaskClient) -> None:
    for target, expected in [("/upload", "/upload"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/"), ("/\\evil.example", "/")]:
        response = client.post(
            "/login", data={"username": "alice", "password": USERS["alice"], "next": target}
        )
        assert response.headers["Location"] == expected


def test_cross_origin_posts_are_refused(client: FlaskClient) -> None:
    response = client.post(
        "/login", data={"username": "alice", "password": USERS["alice"]},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    same = client.post("/login", data={"username": "alice", "password": USERS["alice"]},
                       headers={"Origin": "http://localhost"})
    assert same.status_code == 303


def test_dev_secret_key_is_flagged(
    site: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"):
        site.create_app({"CDN_MANIFEST": tmp_path / "none.json"})
    assert "dev-only SECRET_KEY" in caplog.text
    assert "dev-only" in site.DEV_SECRET_KEY


def test_secret_key_from_environment(
    site: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-env")
    monkeypatch.setenv("FLASK_DEMO_USERS", '{"eve": "pw"}')
    app = site.create_app({"CDN_MANIFEST": tmp_path / "none.json"})
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["DEMO_USERS"] == {"eve": "pw"}


# -- upload ----------------------------------------------------------------------------------


def test_upload_needs_login(client: FlaskClient) -> None:
    response = client.get("/upload")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert upload(client, png_bytes()).status_code == 401


def test_upload_form_page(client: FlaskClient) -> None:
    log_in(client)
    html = client.get("/upload").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'type="file"' in html


def test_upload_accepts_a_real_png_under_a_generated_name(
    client: FlaskClient, tmp_path: Path
) -> None:
    log_in(client)
    data = png_bytes()
    response = upload(client, data, filename="../../evil name.png")
    assert response.status_code == 303
    location = response.headers["Location"]
    match = re.fullmatch(r"/images/([0-9a-f]{32}\.png)", location)
    assert match, location
    assert (tmp_path / "images" / match.group(1)).read_bytes() == data
    served = client.get(location)
    assert (served.status_code, served.data, served.headers["Content-Type"]) == (
        200, data, "image/png"
    )
    assert os.listdir(tmp_path / "images") == [match.group(1)]


def test_upload_extension_comes_from_the_content(client: FlaskClient) -> None:
    log_in(client)
    response = upload(client, png_bytes(fmt="JPEG"), filename="photo.png")
    assert re.fullmatch(r"/images/[0-9a-f]{32}\.jpg", response.headers["Location"])


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"<html><script>alert(1)</script></html>", "photo.png"),
        (b"\x89PNG\r\n\x1a\nnot really", "photo.png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (b"", "empty.png"),
    ],
)
def test_upload_rejects_non_images(
    client: FlaskClient, tmp_path: Path, data: bytes, filename: str
) -> None:
    log_in(client)
    response = upload(client, data, filename=filename)
    assert response.status_code == 400
    assert "Not accepted" in response.get_data(as_text=True)
    assert list((tmp_path / "images").glob("*")) == []  # nothing stored, not even a temp file


def test_upload_without_a_file_is_400(client: FlaskClient) -> None:
    log_in(client)
    assert client.post("/upload", data={}, content_type="multipart/form-data").status_code == 400


def test_upload_rejects_an_oversized_file_with_413(make_app: Any, tmp_path: Path) -> None:
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    log_in(client)
    big = png_bytes(size=(600, 600))
    assert len(big) > 2048
    response = upload(client, big)
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert not (tmp_path / "images").exists() or not os.listdir(tmp_path / "images")


def test_private_upload_in_local_mode(client: FlaskClient, tmp_path: Path) -> None:
    log_in(client)
    response = upload(client, png_bytes(), visibility="private")
    match = re.fullmatch(r"/private/([0-9a-f]{32}\.png)", response.headers["Location"])
    assert match
    assert (tmp_path / "private" / match.group(1)).is_file()
    assert client.get(response.headers["Location"]).data == png_bytes()


def test_private_upload_in_cdn_mode_goes_to_the_bucket(make_app: Any, s3: S3Env) -> None:
    client = make_app(PRIVATE_BUCKET=s3.bucket, PRIVATE_ENDPOINT_URL=s3.endpoint,
                      PRIVATE_PREFIX="members").test_client()
    log_in(client)
    location = upload(client, png_bytes(), visibility="private").headers["Location"]
    name = location.rsplit("/", 1)[1]
    key = f"members/{name}"
    assert s3.get(key)["Body"].read() == png_bytes()
    assert s3.get(key)["ContentType"] == "image/png"
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key=key)["Grants"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)
    redirect = client.get(location)
    assert redirect.status_code == 302 and "X-Amz-Expires=300" in redirect.headers["Location"]


# -- running it ------------------------------------------------------------------------------


def test_flask_command_loads_the_site(tmp_path: Path) -> None:
    """``flask --app site/app.py`` puts only site/ on sys.path; the app must still import."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", str(SITE_APP), "routes"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "FLASK_SECRET_KEY": "x"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for route in ("/images/<path:filename>", "/private/<path:filename>", "/upload", "/login"):
        assert route in result.stdout
