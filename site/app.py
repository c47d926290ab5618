"""The demo site: a gallery served through ``url_for('static')``, public and private images,
uploads.

Run it with ``flask --app site/app.py run`` (add ``--debug`` for local files).
``create_app(config)`` builds a fresh app; configuration is layered: the defaults
below < ``FLASK_*`` environment variables (``FLASK_SECRET_KEY``,
``FLASK_DEMO_USERS='{"alice": "..."}'``, JSON-parsed by Flask) and ``CDN_URL`` /
``CDN_MANIFEST`` < the ``config`` argument.

Routes: ``/`` gallery, ``/images/<path>`` and ``/private/<path>`` (see
:mod:`pipeline.images.views`), ``GET/POST /login``, ``POST /logout``, ``GET/POST /upload``.

Uploads require a login: they publish content under our origin, so anonymous
uploads would turn the demo into free hosting for anyone.

Outside debug/testing the app refuses to start with the development ``SECRET_KEY`` or
the demo/demo account (:func:`check_production_config`). Failed logins are throttled
per account and per client address, and logging out ends the user's sessions; both
are kept in memory, per process (``site/login_guard.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

ROOT = Path(__file__).resolve().parent.parent

try:
    import pipeline  # noqa: F401
except ModuleNotFoundError:  # `flask --app site/app.py` puts only site/ on sys.path
    sys.path.insert(0, str(ROOT))

from PIL import Image

from pipeline import CDN
from pipeline.errors import ConfigError
from pipeline.flaskext.bundles import init_bundles
from pipeline.images.encode_queue import EncodeRefused
from pipeline.images.uploads import UploadRejected
from pipeline.images.views import images_blueprint, images_state
from pipeline.localfs import collect_files
from pipeline.media_types import content_type_for

_SITE = str(Path(__file__).resolve().parent)
if _SITE not in sys.path:  # loaded from its file (tests, stack.py): site/ is not on sys.path
    sys.path.insert(0, _SITE)
from gallery import (
    encode_worker,
    init_upload_encoding,
    list_images,
    list_private_images,
    store_upload,
    upload_picture,
)
from login_guard import LoginThrottle, SessionGenerations

log = logging.getLogger(__name__)

#: Signs the session cookie. Anyone who knows it can log in as anyone: set
#: FLASK_SECRET_KEY (e.g. ``python -c "import secrets; print(secrets.token_hex())"``).
DEV_SECRET_KEY = "dev-only-insecure-secret-key-set-FLASK_SECRET_KEY"
#: The published demo account (user, password): debug and testing only.
DEMO_ACCOUNT = ("demo", "demo")

DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": DEV_SECRET_KEY,
    # Demo accounts, plain passwords on purpose (dev only): set FLASK_DEMO_USERS.
    "DEMO_USERS": dict([DEMO_ACCOUNT]),
    # None: every logged-in user may read every private image; else a list of names.
    "PRIVATE_ALLOWED_USERS": None,
    "IMAGES_DIR": ROOT / "instance" / "images",
    "PRIVATE_DIR": ROOT / "instance" / "private",
    "CDN_MANIFEST": ROOT / "build" / "cdn-manifest.json",
    # Variant settings: none here, the extension reads the deploy's (pyproject.toml); the
    # dev route caches its encodes where the deploy looks for them.
    "CDN_VARIANT_CACHE": ROOT / "build" / "variants",
    "GALLERY_DIR": "img",
    # The first photo is picture(..., priority=True): eager, high priority, preloaded.
    "GALLERY_PRIORITY": True,
    "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
    # Variants of public uploads are encoded in the background (site/gallery.py): threads,
    # uploads waiting (more: 503), uploads waiting or encoding per user (more: 429), the
    # Retry-After of those answers; or a callable (job, owner) handing them to a job queue.
    "UPLOAD_ENCODE_WORKERS": 1,
    "UPLOAD_ENCODE_QUEUE": 8,
    "UPLOAD_ENCODE_PER_USER": 2,
    "UPLOAD_ENCODE_RETRY_AFTER": 30,
    "UPLOAD_ENCODE_SCHEDULER": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # None: Secure (HTTPS only) unless in debug mode; False for plain HTTP on loopback.
    "SESSION_COOKIE_SECURE": None,
}

#: Keys of the per-app login state in ``app.extensions``.
THROTTLE_KEY = "demo.login_throttle"
GENERATIONS_KEY = "demo.session_generations"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the demo app; ``config`` overrides defaults and environment."""
    app = Flask(
        __name__,
        static_folder=str(ROOT / "static"),  # the top-level folder, not site/static
        instance_path=str(ROOT / "instance"),
    )
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env()
    app.config.update({k: os.environ[k] for k in ("CDN_URL", "CDN_MANIFEST") if os.environ.get(k)})
    app.config.update(config or {})
    check_production_config(app)
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = not app.debug
    app.extensions[THROTTLE_KEY] = LoginThrottle()
    app.extensions[GENERATIONS_KEY] = SessionGenerations()
    CDN(app)
    init_upload_encoding(app)
    init_bundles(app, _load_bundles())
    app.register_blueprint(
        images_blueprint(current_user=current_user, may_read_private=_may_read_private)
    )
    app.context_processor(lambda: {"user": current_user()})
    app.before_request(_refuse_cross_origin_posts)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.add_template_global(upload_picture)
    app.add_url_rule("/", "gallery", gallery)
    app.add_url_rule("/login", "login", login_form, methods=["GET"])
    app.add_url_rule("/login", "login_post", login, methods=["POST"])
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.add_url_rule("/upload", "upload", upload, methods=["GET", "POST"])
    return app


def shutdown_app(app: Flask) -> None:
    """Stop the app's background work once it serves no more requests: uploads waiting for
    their variants are dropped (their originals stay shown), a running encode finishes."""
    worker = encode_worker(app)
    if worker is not None:
        worker.shutdown(cancel_pending=True)


def _load_bundles() -> dict[str, Any]:
    """``site/assets.py`` is the one definition of the bundles (the deploy builds it too)."""
    from pipeline.build.bundles import load_bundles

    return dict(load_bundles(Path(__file__).with_name("assets.py")))


def check_production_config(app: Flask) -> None:
    """Refuse to run with publicly known credentials outside debug/testing.

    Anyone can sign a session cookie with the development key, and anyone can log in
    as demo/demo: either would hand out private images and uploads.
    """
    users = app.config.get("DEMO_USERS")
    if not isinstance(users, Mapping) or not all(
            isinstance(name, str) and isinstance(pw, str) for name, pw in users.items()):
        raise ConfigError("DEMO_USERS must map user names to passwords, e.g. "
                          "FLASK_DEMO_USERS='{\"alice\": \"a long password\"}'")
    if not app.config.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY is empty: set FLASK_SECRET_KEY")
    if app.debug or app.testing:
        return
    if app.config["SECRET_KEY"] == DEV_SECRET_KEY:
        raise ConfigError(
            "the development SECRET_KEY is public and this app is not in debug mode: set "
            "FLASK_SECRET_KEY to a random value (python -c \"import secrets; "
            "print(secrets.token_hex())\"), or run with --debug on your own machine")
    name, password = DEMO_ACCOUNT
    if users.get(name) == password:
        raise ConfigError(
            f"the demo account {name}/{password} is enabled and this app is not in debug "
            "mode: set FLASK_DEMO_USERS='{\"alice\": \"a long password\"}' (JSON), or run "
            "with --debug on your own machine")


# -- users -----------------------------------------------------------------------------------

#: Compared against when the user name is unknown, so both cases cost the same.
_UNKNOWN_USER_PASSWORD = secrets.token_hex(16)


def check_password(users: Mapping[str, str], username: str, password: str) -> bool:
    """Constant-time check of ``password``, also for an unknown ``username``.

    Both sides are hashed first: ``hmac.compare_digest`` refuses non-ASCII ``str``
    and returns early on a length mismatch.
    """
    expected = users.get(username)
    candidate = expected if isinstance(expected, str) else _UNKNOWN_USER_PASSWORD
    same = hmac.compare_digest(_digest(password), _digest(candidate))
    return same and isinstance(expected, str)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def current_user() -> str | None:
    """The logged-in user, if the session names one who still exists in ``DEMO_USERS``
    and was not logged out since the session began."""
    user = session.get("user")
    if not isinstance(user, str) or user not in current_app.config["DEMO_USERS"]:
        return None
    if session.get("generation") != _generations().current(user):
        return None  # a cookie from before a logout
    return user


def _throttle() -> LoginThrottle:
    throttle: LoginThrottle = current_app.extensions[THROTTLE_KEY]
    return throttle


def _generations() -> SessionGenerations:
    generations: SessionGenerations = current_app.extensions[GENERATIONS_KEY]
    return generations


def _may_read_private(user: str, relative_path: str) -> bool:
    allowed = current_app.config.get("PRIVATE_ALLOWED_USERS")
    return allowed is None or user in allowed


def _refuse_cross_origin_posts() -> None:
    """A second line behind SameSite=Lax: browsers send ``Origin`` with every POST."""
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
        abort(403)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``//evil.example`` or ``https://...`` would be an open redirect.

    Control characters are refused too: CR or LF cannot go into a ``Location`` header,
    and browsers drop tabs and newlines from URLs, so ``/\t/evil.example`` is ``//evil...``.
    """
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in target)):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


# -- gallery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GalleryImage:
    filename: str  # relative to the static folder, for url_for('static')
    alt: str
    width: int | None
    height: int | None


def gallery_images(static_folder: Path, subdir: str) -> list[GalleryImage]:
    """The images below ``static_folder/subdir``, walked with the deploy's own safe walk,
    those in ``photos/`` first, biggest first."""
    try:
        files = collect_files(static_folder / subdir)
    except ConfigError:
        return []
    images = []
    for item in files:
        if not content_type_for(item.logical_path).startswith("image/"):
            continue
        size = _dimensions(str(item.path), item.mtime_ns)
        images.append(GalleryImage(
            filename=f"{subdir}/{item.logical_path}",
            alt=Path(item.logical_path).stem.replace("-", " ").replace("_", " "),
            width=size[0] if size else None,
            height=size[1] if size else None,
        ))
    # Photos lead, the biggest first: the first is the page's largest paint (priority).
    return sorted(images, key=lambda image: (not image.filename.startswith(f"{subdir}/photos/"),
                                             -(image.width or 0) * (image.height or 0)))


@lru_cache(maxsize=512)
def _dimensions(path: str, mtime_ns: int) -> tuple[int, int] | None:
    """Width and height from the image header (cached per file version), for width/height
    attributes: the browser reserves the space and the page does not jump while loading."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # SVG and friends: Pillow cannot read them


# -- views -----------------------------------------------------------------------------------


def gallery() -> str:
    user = current_user()
    return render_template(
        "gallery.html",
        static_images=gallery_images(Path(str(current_app.static_folder)),
                                     current_app.config["GALLERY_DIR"]),
        public_uploads=list_images(images_state().settings.images_dir),
        private_images=list_private_images() if user else [],
    )


def login_form() -> str:
    return render_template("login.html", next=_safe_next(request.args.get("next")), error=None)


def login() -> Response | tuple[str, int, dict[str, str]] | tuple[str, int]:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    next_url = _safe_next(request.form.get("next"))
    throttle = _throttle()
    verified, wait = throttle.attempt(
        throttle.keys(username, request.remote_addr),
        lambda: check_password(current_app.config["DEMO_USERS"], username, password),
    )
    if wait:
        log.warning("login for user %r from %s throttled for %d s", username[:64],
                    request.remote_addr, wait)
        error = f"Too many failed logins. Try again in {wait} seconds."
        return render_template("login.html", next=next_url, error=error), 429, {
            "Retry-After": str(wait)}
    if not verified:
        log.info("failed login for user %r", username[:64])
        error = "Wrong user name or password."
        return render_template("login.html", next=next_url, error=error), 401
    session.clear()  # a fresh session on every login
    session["user"] = username
    session["generation"] = _generations().current(username)
    return redirect(next_url, code=303)


def logout() -> Response:
    user = current_user()
    if user is not None:
        _generations().end_sessions(user)  # copies of this cookie stop working too
    session.clear()
    return redirect(url_for("gallery"), code=303)


def upload() -> Response | str | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Logged-in users upload an image; it is checked by content and stored under a new name.

    The answer does not wait for the variants: they are encoded in the background and the
    gallery shows the original until they exist. When the encoder takes no more work (too
    many uploads waiting: 503; this user's budget used: 429) nothing is stored and the
    answer says when to try again."""
    user = current_user()
    if user is None:
        if request.method == "GET":
            return redirect(url_for("login", next=url_for("upload")))
        abort(401)
    if request.method == "GET":
        return render_template("upload.html", error=None)
    file = request.files.get("image")
    if file is None or not file.filename:
        return render_template("upload.html", error="Choose an image file."), 400
    private = request.form.get("visibility") == "private"
    try:
        name = store_upload(file.read(), owner=user, private=private)
    except UploadRejected as exc:
        return render_template("upload.html", error=f"Not accepted: {exc}."), 400
    except EncodeRefused as exc:
        log.warning("upload by %s refused: %s", user, exc)
        error = f"Not now: {exc}. Try again in {exc.retry_after} seconds."
        return render_template("upload.html", error=error), exc.status, {
            "Retry-After": str(exc.retry_after)}
    log.info("%s uploaded %s image %s", user, "a private" if private else "an", name)
    return redirect(url_for("gallery"), code=303)  # where the new image is listed first


def _too_large(exc: RequestEntityTooLarge) -> tuple[str, int]:
    limit = current_app.config["MAX_CONTENT_LENGTH"] // 1024
    return render_template("upload.html", error=f"The file is too large (max {limit} KiB)."), 413
