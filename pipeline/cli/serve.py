"""``deploy.py serve`` / ``flask cdn serve``: the embedded default's folder as a CDN origin
on loopback.

``python -m http.server`` is not enough for the README's recipe: the site's
``<link>``/``<script>`` tags carry ``integrity`` with ``crossorigin="anonymous"``,
so the browser fetches them in CORS mode and refuses a response without
``Access-Control-Allow-Origin`` (an unstyled page, no JS). This server sends it,
the Content-Type from our own table and the Cache-Control a bucket deploy sets.

It is a development tool: it binds 127.0.0.1 unless told otherwise, serves only
regular files below the folder (Werkzeug's ``safe_join`` refuses ``..`` and
absolute paths; dotfiles such as the deploy's lock are hidden; a symlink is followed
only when the file it resolves to is inside the folder too) and lists no folder.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import click

from ..keys import ENCODING_SUFFIXES, MANIFEST_NAME, encoded_key
from ..media_types import (
    IMMUTABLE_CACHE_CONTROL,
    MANIFEST_CACHE_CONTROL,
    content_type_for,
    is_compressible,
)
from ..negotiate import choose_encoding
from .settings import DEFAULT_EMBEDDED_DIR

if TYPE_CHECKING:
    from flask import Flask

DEFAULT_PORT = 8001
DEFAULT_HOST = "127.0.0.1"


def cache_control_for(key: str) -> str:
    """What the deploy stores with ``key``: only the manifest changes in place."""
    if PurePosixPath(key).name == MANIFEST_NAME:
        return MANIFEST_CACHE_CONTROL
    return IMMUTABLE_CACHE_CONTROL


def resolved_inside(folder: Path, key: str) -> Path | None:
    """The real file ``key`` names below ``folder`` (itself resolved), or ``None`` when it is
    missing, not a regular file, hidden, or resolves outside the folder: ``safe_join`` only
    looks at the name, and a symlink in the folder would serve any file the user can read."""
    try:
        target = (folder / key).resolve(strict=True)
        info = target.stat()
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    if target == folder or not target.is_relative_to(folder) or not stat.S_ISREG(info.st_mode):
        return None
    if any(part.startswith(".") for part in target.relative_to(folder).parts):
        return None  # a link to the lock file or an upload in flight: hidden like them
    return target


def _siblings(folder: Path, key: str) -> list[str]:
    """The encodings whose precompressed sibling (``key.br``, ``key.gz``) lies in ``folder``."""
    return [encoding for encoding in ENCODING_SUFFIXES
            if resolved_inside(folder, encoded_key(key, encoding)) is not None]


def create_app(root: Path) -> Flask:
    """A WSGI app serving ``root`` like the bucket it mirrors, readable from any origin."""
    from flask import Flask, abort, request, send_from_directory
    from werkzeug.wrappers import Response

    app = Flask(__name__, static_folder=None)
    folder = root.resolve()

    @app.route("/<path:key>", methods=["GET", "HEAD"])
    def serve_object(key: str) -> Response:
        if any(part.startswith(".") for part in key.split("/")):
            abort(404)  # the lock file, temporary uploads, and any "..": never served
        target = resolved_inside(folder, key)
        if target is None:
            abort(404)
        content_type = content_type_for(key)
        negotiated = is_compressible(content_type)
        encoding = choose_encoding(request.headers.get("Accept-Encoding"),
                                   _siblings(folder, key)) if negotiated else None
        if encoding is not None:  # the precompressed sibling beside it, checked the same way
            target = resolved_inside(folder, encoded_key(key, encoding)) or target
        # The file that was checked, by its real name (the type still follows the key).
        # Its own ETag per file, so each encoding has its own (RFC 9110 8.8.3), and a Range
        # is served from the bytes of the chosen representation, as RFC 9110 14 defines it.
        response = send_from_directory(folder, target.relative_to(folder).as_posix(),
                                       conditional=True, etag=True)
        # Set after send_file, which would append a second charset to text/* types.
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = cache_control_for(key)
        if encoding is not None:
            response.headers["Content-Encoding"] = encoding
        if negotiated:  # caches must key this URL's answers by the request's Accept-Encoding
            response.headers["Vary"] = "Accept-Encoding"
        del response.headers["Content-Disposition"]  # a bucket sends none
        return response

    @app.after_request
    def allow_any_origin(response: Response) -> Response:
        # Public assets only: any page may read them, which SRI's CORS fetch requires.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # The server writes its own Date (http.server's send_response); the one Werkzeug's
        # make_conditional adds would be a second, which RFC 9110 does not allow.
        del response.headers["Date"]
        return response

    return app


def run_server(root: Path, *, host: str, port: int, announce: Any = print) -> None:
    """Serve until interrupted; ``announce`` gets the base URL once the port is bound."""
    from werkzeug.serving import make_server

    server = make_server(host, port, create_app(root), threaded=True)
    url_host = f"[{host}]" if ":" in host else host
    announce(f"http://{url_host}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "--target-dir", "folder", type=click.Path(file_okay=False),
              help="Folder to serve [CDN_TARGET_DIR, then target-dir in pyproject.toml; "
                   f"default: {DEFAULT_EMBEDDED_DIR}].")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to bind; keep loopback unless you mean to share the folder.")
@click.pass_context
def serve_command(ctx: click.Context, folder: str | None, port: int, host: str) -> None:
    """Serve the deployed folder as a local CDN origin (CORS, types, cache headers)."""
    from ..errors import ConfigError

    root = served_folder(ctx, folder)
    if not root.is_dir():
        from .common import command_hint

        raise ConfigError(f"folder {str(root)!r} does not exist: run `{command_hint(ctx)}` "
                          "first or pass --dir")

    def announce(url: str) -> None:
        click.echo(f"Serving {root} at {url}; run the site with CDN_URL={url} (Ctrl-C stops)")
        sys.stdout.flush()  # a parent reading the pipe sees the URL before the first request

    try:
        run_server(root, host=host, port=port, announce=announce)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def served_folder(ctx: click.Context, folder: str | None) -> Path:
    """The folder the deploy publishes to, resolved as the deploy resolves it (flag >
    ``CDN_TARGET_DIR`` > ``target-dir`` in pyproject.toml > the embedded default), so
    ``serve`` run after ``deploy.py`` serves what it just wrote."""
    from ..errors import ConfigError
    from .common import resolve_for

    settings = resolve_for(ctx, {"target_dir": folder})
    if settings.bucket is not None:
        raise ConfigError(f"this project deploys to bucket {settings.bucket!r} (from "
                          f"{settings.sources.get('bucket', 'default')}), not a folder: "
                          "pass the folder to serve with --dir")
    return settings.target_dir or settings.embedded_dir
