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

from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files
from tests.imagecraft import repeated_scan_jpeg

if TYPE_CHECKING:  # the fixture's type; only annotations use it
    from tests.helpers import S3Env

ROOT = Path(__file__).resolve().parent.parent
SITE_APP = ROOT / "site" / "app.py"
USERS = {"alice": "correct horse", "bob": "p\u00e4ssw\u00f6rd"}
#: For `flask` subprocesses: this checkout's pipeline, not whichever checkout is installed
#: (editable) on the machine, which may lack what this site imports.
THIS_CHECKOUT = {"PYTHONPATH": str(ROOT)}


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
            "CDN_VARIANT_CACHE": tmp_path / "variants",  # not the repository's build/
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


def upload_new(client: FlaskClient, data: bytes, filename: str = "photo.png", **form: str) -> str:
    """Upload as a user does: back to the gallery, which now shows one more image; its URL."""
    before = uploads_shown(client.get("/").get_data(as_text=True))
    response = upload(client, data, filename, **form)
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    new = sorted(uploads_shown(client.get("/").get_data(as_text=True)) - before)
    assert len(new) == 1, new
    return new[0]


def uploads_shown(html: str) -> set[str]:
    """The images' own URLs on the page: sources and links, not variants (a public upload's
    picture switches to its variants when the background encode is done, at any moment)."""
    urls = set(img_sources(html)) | set(re.findall(r'<a href="(/images/[^"]+)"', html))
    return {url for url in urls if "/_v/" not in url}


# -- gallery ---------------------------------------------------------------------------------


def img_sources(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_gallery_in_dev_mode_uses_local_static_urls(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    sources = img_sources(html)
    assert "/static/img/cat.jpg" in sources
    # café.png (240 px) is narrower than every rung: its own width is its one variant width
    cafe = re.search(r'<img src="(/_variants/[^"]+)"[^>]*alt="café"', html)
    assert cafe is not None and ".240w." in cafe.group(1)
    assert 'width="240" height="160"' in cafe.group(0)
    assert "/static/img/icons/arrow.svg" in sources
    # photos come through picture(): variants the dev server renders on demand
    assert all(src.startswith(("/static/img/", "/_variants/_v/")) for src in sources)
    sunset = re.search(r'<img src="(/_variants/[^"]+)"[^>]*alt="sunset beach"', html)
    assert sunset is not None and 'width="400" height="225"' in sunset.group(0)
    for src in sources:  # every image on the page is really served (the big photos' variants
        if src.startswith("/static/") or src == sunset.group(1):  # cost seconds: one here)
            response = client.get(src)
            assert response.status_code == 200, src
            assert response.mimetype.startswith("image/")


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
    public = upload_new(client, png_bytes())
    private = upload_new(client, png_bytes(), visibility="private")
    # even a 20 px upload gets variants (its own width): shown once they exist, linked always
    assert client.application.extensions["demo.encode_worker"].wait_idle(60)
    html = client.get("/").get_data(as_text=True)
    assert f'<a href="{public}"' in html and private in img_sources(html)
    client.post("/logout")
    html = client.get("/").get_data(as_text=True)
    assert f'<a href="{public}"' in html and private not in html


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
    assert "Secure" in cookie  # by default outside debug mode


def test_secure_cookie_is_configurable(make_app: Any) -> None:
    client = make_app(SESSION_COOKIE_SECURE=False).test_client()
    assert "Secure" not in log_in(client).headers["Set-Cookie"]
    debug = make_app(DEBUG=True).test_client()  # flask --debug run on http://127.0.0.1
    assert "Secure" not in log_in(debug).headers["Set-Cookie"]


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


@pytest.mark.parametrize("target", ["/upload\r", "/\rx", "/up\nload", "/\t/evil.example",
                                    "/\n/evil.example", "/x\x00", "/x\x7f"])
def test_a_next_target_with_control_characters_goes_home(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    """CR/LF cannot go into a Location header (it was a 500 with a traceback), and no
    control character belongs in a local path (browsers drop tabs and newlines)."""
    response = client.post(
        "/login", data={"username": "alice", "password": USERS["alice"], "next": target}
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert "Traceback" not in caplog.text
    form = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert 'name="next" value="/"' in form


class FakeClock:
    """Stands in for time.monotonic in the login throttle: tests move time, never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled_app(make_app: Any) -> tuple[Flask, FakeClock]:
    app = make_app()
    clock = FakeClock()
    app.extensions["demo.login_throttle"].clock = clock
    return app, clock


def test_password_guessing_is_throttled_per_account(make_app: Any) -> None:
    """300 wrong passwords no longer buy a 301st try: the account backs off with 429."""
    app, clock = throttled_app(make_app)
    client = app.test_client()
    statuses = [log_in(client, password=f"guess {n}").status_code for n in range(300)]
    assert statuses[:5] == [401] * 5  # a few typos are free
    assert statuses[5] == 429 and set(statuses[5:]) == {429}
    blocked = log_in(client)  # the right password while blocked: still refused
    assert blocked.status_code == 429 and "session" not in blocked.headers.get("Set-Cookie", "")
    assert "Too many failed logins" in blocked.get_data(as_text=True)
    assert blocked.headers["Retry-After"] == "1"
    for wait in (1, 2, 4, 8):  # one try each time the wait is over, each failure doubles it
        clock.now += wait
        assert log_in(client, password="wrong again").status_code == 401
        assert log_in(client).headers["Retry-After"] == str(wait * 2)
    clock.now += 16
    assert log_in(client).status_code == 303  # the owner, once the wait is over
    assert log_in(client, password="typo").status_code == 401  # and the count starts afresh


def test_one_address_guessing_many_accounts_is_throttled(make_app: Any) -> None:
    app, _ = throttled_app(make_app)
    client = app.test_client()
    statuses = [log_in(client, f"user{n}", "guess").status_code for n in range(25)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    other = app.test_client()  # another address is not affected
    response = other.post("/login", data={"username": "alice", "password": USERS["alice"]},
                          environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 303


def test_rotating_ipv6_addresses_inside_one_64_does_not_help(make_app: Any) -> None:
    app, _ = throttled_app(make_app)
    statuses = [app.test_client().post(
        "/login", data={"username": f"user{n}", "password": "guess"},
        environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n:x}"}).status_code for n in range(22)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}


def test_a_blocked_account_is_blocked_from_every_address(make_app: Any) -> None:
    app, _ = throttled_app(make_app)
    for n in range(6):
        app.test_client().post("/login", data={"username": "alice", "password": "x"},
                               environ_base={"REMOTE_ADDR": f"192.0.2.{n}"})
    response = app.test_client().post(
        "/login", data={"username": "ALICE", "password": USERS["alice"]},
        environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert response.status_code == 429


def test_throttle_backoff_is_capped_forgotten_and_bounded_in_memory(site: ModuleType) -> None:
    clock = FakeClock()
    throttle = site.LoginThrottle(free_per_account=1, free_per_address=1, max_delay=60,
                                  forget_after=600, max_accounts=4, max_addresses=3,
                                  clock=clock)
    keys = throttle.keys("alice", "192.0.2.1")
    for _ in range(8):
        clock.now += 61  # past any earlier block
        assert throttle.attempt(keys, lambda: False) == (False, 0)
    assert throttle.attempt(keys, lambda: True) == (False, 60)  # capped, password unchecked
    clock.now += 601
    assert throttle.attempt(keys, lambda: True) == (True, 0)  # a quiet key starts afresh
    clock.now += 601
    lenient = site.LoginThrottle(free_per_account=5, free_per_address=5, max_accounts=4,
                                 max_addresses=3, clock=clock)
    for n in range(10):  # within their free failures: the least recently failed make room
        assert lenient.attempt(lenient.keys(f"user{n}", f"198.51.100.{n}"),
                               lambda: False) == (False, 0)
    assert len(lenient) == 4 + 3


def flood(throttle: Any, clock: FakeClock, *, names: int, per_network: int = 19) -> None:
    """Wrong passwords under ``names`` fresh names, ``per_network`` from each IPv6 /64 (one
    short of the address limit), all at one instant: the attacker never waits."""
    for n in range(names):
        network = n // per_network
        address = f"2001:db8:{network >> 16:x}:{network & 0xFFFF:x}::1"
        throttle.attempt(throttle.keys(f"flood{n}", address), lambda: False)


def test_a_flood_of_other_names_does_not_unblock_an_account(make_app: Any) -> None:
    """The flush attack: 12,000 failures under other names from 632 IPv6 /64s used to push
    the blocked account out of the 10,000-key table, and with it its count (5 fresh guesses
    after every flood). Keys in backoff are never evicted: still blocked, and once the block
    is over one guess buys the next, doubled block."""
    app, clock = throttled_app(make_app)
    throttle = app.extensions["demo.login_throttle"]
    guesser = app.test_client()
    assert [log_in(guesser, password=f"guess {n}").status_code
            for n in range(6)] == [401] * 5 + [429]
    flood(throttle, clock, names=12_000)
    assert len(throttle) <= 20_000  # both tables stay bounded
    fresh = app.test_client()  # another address: the account itself is what is blocked
    response = fresh.post("/login", data={"username": "alice", "password": USERS["alice"]},
                          environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    clock.now += 1
    flood(throttle, clock, names=12_000)
    statuses = [fresh.post("/login", data={"username": "alice", "password": f"again {n}"},
                           environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code
                for n in range(5)]
    assert statuses == [401, 429, 429, 429, 429]  # one guess, not five
    assert log_in(fresh).headers["Retry-After"] == "2"


def test_a_table_of_blocked_keys_fails_closed(site: ModuleType) -> None:
    """When every kept key is in backoff, a new name is refused (429) without its password
    being checked, until the oldest is forgotten; known keys go on as before."""
    clock = FakeClock()
    throttle = site.LoginThrottle(free_per_account=1, free_per_address=100, max_accounts=3,
                                  forget_after=600, clock=clock)
    for n in range(3):
        throttle.attempt(throttle.keys(f"held{n}", "192.0.2.1"), lambda: False)
        clock.now += 10
    checked: list[str] = []
    newcomer = throttle.keys("carol", "192.0.2.2")
    assert throttle.attempt(newcomer, lambda: checked.append("carol") or True) == (False, 570)
    assert checked == [] and len(throttle) == 3 + 1  # nothing counted for carol
    clock.now += 64  # held0 unblocked (not forgotten): its owner may try again
    assert throttle.attempt(throttle.keys("held0", "192.0.2.1"), lambda: True) == (True, 0)
    assert throttle.attempt(newcomer, lambda: True) == (True, 0)  # a slot is free again


def test_a_full_address_table_fails_closed_for_new_addresses(site: ModuleType) -> None:
    clock = FakeClock()
    throttle = site.LoginThrottle(free_per_account=100, free_per_address=1, max_addresses=2,
                                  forget_after=600, clock=clock)
    for n in range(2):
        throttle.attempt(throttle.keys(f"user{n}", f"2001:db8:{n}::1"), lambda: False)
    assert throttle.attempt(throttle.keys("alice", "2001:db8:9::1"), lambda: True) == (
        False, 600)
    clock.now += 601  # both forgotten
    assert throttle.attempt(throttle.keys("alice", "2001:db8:9::1"), lambda: True) == (True, 0)


def test_parallel_guesses_cannot_slip_past_the_limit(
    make_app: Any, site: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty guesses at once, each check slow: still only the 5 free ones are checked."""
    import threading
    import time

    checked: list[str] = []

    def slow_check(users: Any, username: str, password: str) -> bool:
        checked.append(password)
        time.sleep(0.01)
        return False

    monkeypatch.setattr(site, "check_password", slow_check)
    app = make_app()
    statuses: list[int] = []
    start = threading.Barrier(40)

    def guess(n: int) -> None:
        client = app.test_client()
        start.wait(timeout=30)
        statuses.append(log_in(client, password=f"guess {n}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [401] * 5 + [429] * 35
    assert len(checked) == 5


def test_logout_ends_the_session_on_the_server(make_app: Any, tmp_path: Path) -> None:
    """A cookie copied before logout (another tab, a stolen copy) stops working."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "me.png").write_bytes(png_bytes())
    app = make_app()
    client = app.test_client()
    log_in(client)
    captured = client.get_cookie("session")
    assert captured is not None
    thief = app.test_client()
    thief.set_cookie("session", captured.value)
    assert thief.get("/private/me.png").status_code == 200
    client.post("/logout")
    assert thief.get("/private/me.png").status_code == 401
    assert upload(thief, png_bytes()).status_code == 401
    log_in(client)  # logging in again gives a working session
    assert client.get("/private/me.png").status_code == 200
    assert thief.get("/private/me.png").status_code == 401


def test_cross_origin_posts_are_refused(client: FlaskClient) -> None:
    response = client.post(
        "/login", data={"username": "alice", "password": USERS["alice"]},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    same = client.post("/login", data={"username": "alice", "password": USERS["alice"]},
                       headers={"Origin": "http://localhost"})
    assert same.status_code == 303


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({}, "FLASK_SECRET_KEY"),  # the defaults: development key and demo/demo
        ({"DEMO_USERS": {"alice": "a long password"}}, "FLASK_SECRET_KEY"),
        ({"SECRET_KEY": "a real secret"}, "FLASK_DEMO_USERS"),
        ({"SECRET_KEY": "a real secret", "DEMO_USERS": {"demo": "demo", "al": "x"}},
         "FLASK_DEMO_USERS"),
    ],
)
def test_production_refuses_public_credentials(
    site: ModuleType, tmp_path: Path, config: dict[str, Any], names: str
) -> None:
    with pytest.raises(site.ConfigError, match=names):
        site.create_app({"CDN_MANIFEST": tmp_path / "none.json", **config})


def test_public_credentials_are_fine_in_debug_and_testing(
    site: ModuleType, tmp_path: Path
) -> None:
    for mode in ("DEBUG", "TESTING"):
        app = site.create_app({"CDN_MANIFEST": tmp_path / "none.json", mode: True})
        assert app.config["DEMO_USERS"] == {"demo": "demo"}
    app = site.create_app({"CDN_MANIFEST": tmp_path / "none.json", "SECRET_KEY": "s",
                           "DEMO_USERS": {"alice": "a long password"}})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_production_refusal_from_the_flask_command(tmp_path: Path) -> None:
    """What an operator sees: one message naming what to set."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", str(SITE_APP), "routes"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, **THIS_CHECKOUT, "FLASK_SECRET_KEY": "x"},
    )
    assert result.returncode != 0
    assert "FLASK_DEMO_USERS" in result.stderr and "demo/demo" in result.stderr


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


def test_gallery_lists_only_image_files_newest_first(site: ModuleType, tmp_path: Path) -> None:
    """site/gallery.py's listing: images directly in the folder; no dot-files, other
    types or sub-folders (the image views would not serve them)."""
    for age, name in enumerate(["new.png", "old.jpg"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "page.html").write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert site.list_images(tmp_path) == ["new.png", "old.jpg"]
    assert site.list_images(tmp_path, limit=1) == ["new.png"]
    assert site.list_images(tmp_path / "absent") == [] and site.list_images(None) == []


def test_upload_form_page(client: FlaskClient) -> None:
    log_in(client)
    html = client.get("/upload").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'type="file"' in html


def test_upload_accepts_a_real_png_under_a_generated_name(
    client: FlaskClient, tmp_path: Path
) -> None:
    log_in(client)
    data = png_bytes()
    location = upload_new(client, data, filename="../../evil name.png")
    match = re.fullmatch(r"/images/([0-9a-f]{32}\.png)", location)
    assert match, location
    assert (tmp_path / "images" / match.group(1)).read_bytes() == data
    served = client.get(location)
    assert (served.status_code, served.data, served.headers["Content-Type"]) == (
        200, data, "image/png"
    )
    assert client.application.extensions["demo.encode_worker"].wait_idle(60)
    # the upload under its generated name, its variants in _v/, and no temporary file
    assert sorted(os.listdir(tmp_path / "images")) == sorted([match.group(1), "_v"])


def test_upload_extension_comes_from_the_content(client: FlaskClient) -> None:
    log_in(client)
    location = upload_new(client, png_bytes(fmt="JPEG"), filename="photo.png")
    assert re.fullmatch(r"/images/[0-9a-f]{32}\.jpg", location)


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


def test_upload_of_a_jpeg_with_repeated_scans_is_refused_before_decoding(
    client: FlaskClient, tmp_path: Path
) -> None:
    """Issue: 2,000 repeated scans took 8.7 s of CPU through /upload; now refused unread."""
    crafted = repeated_scan_jpeg((1024, 1024), copies=2000)
    log_in(client)
    response = upload(client, crafted, filename="photo.jpg")
    assert response.status_code == 400
    assert "more than 32 scans" in response.get_data(as_text=True)
    assert not (tmp_path / "images").exists() or not os.listdir(tmp_path / "images")


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
    location = upload_new(client, png_bytes(), visibility="private")
    match = re.fullmatch(r"/private/([0-9a-f]{32}\.png)", location)
    assert match
    assert (tmp_path / "private" / match.group(1)).is_file()
    assert client.get(location).data == png_bytes()


def test_private_upload_in_cdn_mode_goes_to_the_bucket(make_app: Any, s3: S3Env) -> None:
    client = make_app(PRIVATE_BUCKET=s3.bucket, PRIVATE_ENDPOINT_URL=s3.endpoint,
                      PRIVATE_PREFIX="members").test_client()
    log_in(client)
    location = upload_new(client, png_bytes(), visibility="private")
    name = location.rsplit("/", 1)[1]
    key = f"members/{name}"
    assert s3.get(key)["Body"].read() == png_bytes()
    assert s3.get(key)["ContentType"] == "image/png"
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key=key)["Grants"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)
    redirect = client.get(location)
    assert redirect.status_code == 302 and "X-Amz-Expires=300" in redirect.headers["Location"]


# -- running it ------------------------------------------------------------------------------


@pytest.mark.slow  # a `flask` subprocess importing the whole app
def test_flask_command_loads_the_site(tmp_path: Path) -> None:
    """``flask --app site/app.py`` puts only site/ on sys.path; the app must still import."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", str(SITE_APP), "routes"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, **THIS_CHECKOUT, "FLASK_SECRET_KEY": "x",
             "FLASK_DEMO_USERS": '{"al": "pw"}'},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for route in ("/images/<path:filename>", "/private/<path:filename>", "/upload", "/login"):
        assert route in result.stdout


def test_public_upload_gets_variants_shown_with_picture(client: FlaskClient,
                                                         tmp_path: Path) -> None:
    log_in(client)
    photo = Image.linear_gradient("L").resize((800, 500)).convert("RGB")
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    response = upload(client, buffer.getvalue(), "big.jpg")
    assert response.status_code == 303
    assert client.application.extensions["demo.encode_worker"].wait_idle(60)  # background
    html = client.get("/").get_data(as_text=True)
    uploads = html.split("<h2>Uploaded images</h2>", 1)[1].split("</div>", 1)[0]
    avif = re.search(r'<source type="image/avif" srcset="([^"]+)"', uploads)
    assert avif is not None, uploads
    img = re.search(r"<img [^>]*>", uploads)
    assert img is not None and 'width="800" height="500"' in img.group(0)
    candidates = [c.rsplit(" ", 1) for c in avif.group(1).split(", ")]
    assert [w for _, w in candidates] == ["320w", "640w", "800w"]
    for url, width in candidates:
        assert url.startswith("/images/_v/")
        served = client.get(url)
        assert served.status_code == 200 and served.mimetype == "image/avif"
        assert Image.open(io.BytesIO(served.data)).size[0] == int(width[:-1])
    # a private upload stays whole: no variants next to it
    upload(client, buffer.getvalue(), "secret.jpg", visibility="private")
    assert not (tmp_path / "private" / "_v").exists()


def test_a_private_image_never_gets_a_placeholder(client: FlaskClient) -> None:
    """A preview, even blurred, is the image's content: a page must never carry one of a
    private image. The static photos on the same page get theirs (so the check is real)."""
    log_in(client)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 40), (203, 17, 101)).save(buffer, "JPEG", quality=95)
    private = upload_new(client, buffer.getvalue(), "secret.jpg", visibility="private")
    html = client.get("/").get_data(as_text=True)
    tags = re.findall(r"<img [^>]*>", html)
    private_tag = next(tag for tag in tags if f'src="{private}"' in tag)
    assert "style=" not in private_tag and "class=" not in private_tag
    painted = [tag for tag in tags if 'style="background-color:#' in tag]
    assert len(painted) >= 5  # the demo's photos
    assert not re.search(r"#c[0-9a-f]1[0-9a-f]6[0-9a-f]", html)  # nothing near (203, 17, 101)
    assert "data:image" not in html


def test_gallery_leads_with_the_biggest_photo_preloaded(make_app: Any) -> None:
    """The first photo is the page's largest paint: first in the grid, eager, high priority,
    and the one set the response's Link header preloads; GALLERY_PRIORITY=False: none."""
    response = make_app().test_client().get("/")
    html = response.get_data(as_text=True)
    first = re.search(r"<figure>\s*<picture>.*?<img [^>]*>", html, re.S)
    assert first is not None and 'width="2560" height="1600"' in first.group(0)
    assert 'loading="eager"' in first.group(0) and 'fetchpriority="high"' in first.group(0)
    assert html.count('fetchpriority="high"') == 1
    avif = re.search(r'<source type="image/avif" srcset="([^"]+)"', first.group(0))
    assert avif is not None
    assert f'imagesrcset="{avif.group(1)}"' in response.headers["Link"]
    plain = make_app(GALLERY_PRIORITY=False).test_client().get("/")
    assert "Link" not in plain.headers and 'fetchpriority="high"' not in plain.get_data(
        as_text=True)
