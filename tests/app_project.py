"""A foreign Flask project of the kind issue 20 was found with: an app with its own
``static/``, Flask-Admin (a blueprint whose static folder lives in its installed package)
and a ``gallery`` blueprint whose static folder sits beside the app's, not inside it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.helpers import write_tree


def tiny_png(rgb: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A valid 2x2 PNG (a browser decodes it: naturalWidth 2)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\0" + bytes(rgb) * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

#: ``blog.py``: the app module; settings come from ``BLOG_*`` variables (``BLOG_CDN_URL``).
BLOG_APP = '''\
from pathlib import Path

from flask import Blueprint, Flask, render_template
from flask_admin import Admin

from pipeline import CDN

HERE = Path(__file__).resolve().parent


def create_app():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="not-a-secret-for-tests")
    app.config.from_prefixed_env("BLOG")
    gallery = Blueprint("gallery", __name__, static_folder=str(HERE / "gallery_assets"),
                        static_url_path="/gallery-static", url_prefix="/gallery")
    gallery.add_url_rule("/", "index", lambda: render_template("gallery.html"))
    app.register_blueprint(gallery)
    Admin(app, name="Blog admin")
    CDN(app)
    return app
'''

GALLERY_FILES = {
    # Relative inside the blueprint's folder, and root-absolute into the app's folder.
    "gallery_assets/gallery.css": (b".frame { background: url(img/frame.png); }\n"
                                   b".cat { background: url(/static/img/cat.png); }\n"),
    "gallery_assets/img/frame.png": tiny_png(),
    "gallery_assets/gallery.js": b"document.documentElement.dataset.gallery = 'ready';\n",
    # The admin pages' icon from the CDN too (Flask-Admin's documented override), so the
    # browser never asks the app for /favicon.ico.
    "templates/admin/master.html": (
        b"{% extends admin_base_template %}{% block head_tail %}"
        b"<link rel=icon type=image/png href=\"{{ url_for('static', filename='img/cat.png') }}\">"
        b"{% endblock %}\n"),
    "templates/gallery.html": (
        b"<!doctype html><html><head><title>Gallery</title>"
        b"<link rel=icon type=image/png href=\"{{ url_for('static', filename='img/cat.png') }}\">"
        b"<link rel=stylesheet href=\"{{ url_for('gallery.static', filename='gallery.css') }}\">"
        b"<link rel=stylesheet href=\"{{ url_for('static', filename='css/site.css') }}\">"
        b"</head><body><div class=frame>frame</div><div class=cat>cat</div>"
        b"<img alt=frame src=\"{{ url_for('gallery.static', filename='img/frame.png') }}\">"
        b"<script src=\"{{ url_for('gallery.static', filename='gallery.js') }}\"></script>"
        b"</body></html>\n"),
}


def write_blog_project(project: Path) -> Path:
    """Add the blog app to a foreign ``project`` folder (which has its own ``static/``)."""
    (project / "blog.py").write_text(BLOG_APP, encoding="utf-8")
    write_tree(project, {**GALLERY_FILES, "static/img/cat.png": tiny_png((40, 40, 40))})
    return project
