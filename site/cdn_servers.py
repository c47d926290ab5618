"""The CDN servers of the demo stack and the end-to-end tests, each on a loopback port.

* :func:`nginx_cdn`: nginx as a caching CDN in front of a bucket, serving the deploy's
  precompressed siblings (key + ``.br`` / ``.gz``) by Accept-Encoding;
* :func:`nginx_folder`: nginx serving a folder target with ``gzip_static``/``brotli_static``;
* :func:`caddy_folder`: Caddy's ``file_server { precompressed br gzip }`` on a folder target.

The configs are the ones docs/precompressed.md shows (a test checks that every line the
document shows is one these render), so the recipes are the tested configs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.media_types import CONTENT_TYPES, is_compressible

_SITE = str(Path(__file__).resolve().parent)
if _SITE not in sys.path:  # loaded from its file (tests): site/ is not on sys.path
    sys.path.insert(0, _SITE)

from nginx_accept import accept_encoding_maps  # needs site/ on the path (above)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"

#: The extensions the deploy stores precompressed siblings for (from the one type table).
PRECOMPRESSED_EXTENSIONS = tuple(sorted(
    suffix.removeprefix(".") for suffix, content_type in CONTENT_TYPES.items()
    if is_compressible(content_type)))

#: Debian's libnginx-mod-http-brotli-static, loaded by path: an nginx started with its own
#: config (``-c``) reads no ``/etc/nginx/modules-enabled/``.
BROTLI_STATIC_MODULE = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"

#: What every nginx here shares: one worker, everything under ``{work}``, loopback only.
NGINX_MAIN = """
{modules}
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
{http}
}}
"""

#: The deploy's precompressed siblings (key + ``.br`` / ``.gz``) exist only for these
#: extensions, so nginx asks the bucket for a sibling of nothing else (an image request
#: never costs a second origin request). For the others the suffix is the one
#: Accept-Encoding selects, weighed as pipeline.negotiate weighs it (:mod:`nginx_accept`);
#: without an acceptable coding it is empty: the identity object.
NGINX_NEGOTIATION = r"""
    map $uri $cdn_precompressed {{
        default 0;
        "~*\.({extensions})$" 1;
    }}
""" + textwrap.indent(accept_encoding_maps(), " " * 4).replace("{", "{{").replace("}", "}}") + r"""
    map $cdn_precompressed $cdn_encoding_suffix {{
        1 $cdn_coding_suffix;
        default "";
    }}
    # Any response for such a path depends on Accept-Encoding (S3 cannot store a Vary).
    map $cdn_precompressed $cdn_vary {{
        1 Accept-Encoding;
        default "";
    }}
    # The object key is the path as the browser sent it (percent-encoding kept), no query.
    map $request_uri $cdn_key {{
        "~^(?<cdn_path>[^?]*)" $cdn_path;
    }}
"""

#: nginx as a stand-in CDN in front of the bucket: it caches what the origin's
#: Cache-Control allows, says whether a response came from its cache, and serves the
#: precompressed sibling the client accepts. The key is passed on percent-encoded as
#: the browser sent it (``%2B``, ``%23``) so it reaches S3 exactly; the cache key holds
#: the chosen coding, so each coding is cached apart.
NGINX_S3_HTTP = NGINX_NEGOTIATION + """
    proxy_cache_path {work}/cache levels=1:2 keys_zone=cdn:10m max_size=1g inactive=7d
                     use_temp_path=off;
    server {{
        listen {listen};
        proxy_cache cdn;
        proxy_cache_lock on;
        proxy_hide_header x-amz-request-id;
        proxy_hide_header x-amz-id-2;
        proxy_hide_header Vary;
        add_header Vary $cdn_vary always;
        add_header X-Cache-Status $upstream_cache_status always;
        # Fonts and SRI-checked CSS/JS are fetched in CORS mode: one CORS answer, the
        # CDN's, whatever the origin sends (two values make the browser refuse both).
        proxy_hide_header Access-Control-Allow-Origin;
        proxy_hide_header Access-Control-Allow-Methods;
        proxy_hide_header Access-Control-Expose-Headers;
        add_header Access-Control-Allow-Origin * always;
        location / {{
            limit_except GET HEAD {{ deny all; }}
            proxy_pass http://{origin}/{bucket}$cdn_key$cdn_encoding_suffix;
            proxy_cache_key $cdn_key$cdn_encoding_suffix;
            # A file may have no sibling (it did not shrink enough): ask for the identity
            # object instead. S3 answers 403 for a missing key the reader may not list.
            # The miss is cached for a minute, so the origin is not asked on every request.
            proxy_intercept_errors on;
            proxy_cache_valid 403 404 1m;
            error_page 403 404 = @identity;
        }}
        location @identity {{
            proxy_pass http://{origin}/{bucket}$cdn_key;
            proxy_cache_key $cdn_key;
        }}
    }}
"""

#: The folder target served by nginx itself: the siblings lie beside the files, and
#: gzip_static / brotli_static pick them by Accept-Encoding (q=0 honoured) with the
#: original Content-Type; gzip_vary adds ``Vary: Accept-Encoding`` where a sibling exists.
NGINX_FOLDER_HTTP = """
    include /etc/nginx/mime.types;
    server {{
        listen {listen};
        root {root};
        location / {{
            limit_except GET HEAD {{ deny all; }}
            gzip_static on;
            brotli_static on;
            gzip_vary on;
            add_header Access-Control-Allow-Origin * always;
        }}
    }}
"""

#: Caddy on the folder target. ``precompressed`` picks ``.br``/``.gz`` beside the file and
#: says Vary only when it serves one; the deferred header says it on every answer of a
#: compressible type (the identity answer depends on Accept-Encoding too).
CADDYFILE = r"""
{{
    admin off
    auto_https off
}}
http://{listen} {{
    root * {root}
    header Access-Control-Allow-Origin *
    @precompressed path_regexp (?i)\.({extensions})$
    header @precompressed {{
        Vary Accept-Encoding
        defer
    }}
    file_server {{
        precompressed br gzip
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def nginx_conf(work: Path, *, listen: str, http: str, modules: str = "", **values: str) -> str:
    """A whole nginx config: the shared frame around ``http`` (a template of ``values``)."""
    return NGINX_MAIN.format(
        work=work, modules=modules, http=http.format(work=work, listen=listen, **values),
        # As root, workers would drop to 'nobody', who cannot write our cache folder.
        user="user root;" if os.geteuid() == 0 else "",
    )


def s3_cdn_conf(work: Path, *, listen: str, origin: str, bucket: str) -> str:
    """nginx as the caching, negotiating CDN of ``bucket`` on the S3 server ``origin``."""
    return nginx_conf(work, listen=listen, http=NGINX_S3_HTTP, origin=origin, bucket=bucket,
                      extensions="|".join(PRECOMPRESSED_EXTENSIONS))


def folder_cdn_conf(work: Path, *, listen: str, root: str) -> str:
    """nginx serving the folder target ``root``, its precompressed siblings too."""
    return nginx_conf(work, listen=listen, http=NGINX_FOLDER_HTTP, root=root,
                      modules=f"load_module {BROTLI_STATIC_MODULE};")


@contextmanager
def nginx_cdn(s3_endpoint: str, workdir: Path, *, bucket: str) -> Iterator[str]:
    """Run nginx in the foreground as a caching, negotiating proxy for the asset bucket."""
    work, port = workdir / "nginx", free_port()
    conf = s3_cdn_conf(work, listen=f"127.0.0.1:{port}", bucket=bucket,
                       origin=s3_endpoint.removeprefix("http://"))
    with running_nginx(work, conf, port) as url:
        yield url


@contextmanager
def nginx_folder(root: Path, workdir: Path) -> Iterator[str]:
    """Run nginx in the foreground serving the folder target ``root`` (precompressed too)."""
    work, port = workdir / "nginx-folder", free_port()
    conf = folder_cdn_conf(work, listen=f"127.0.0.1:{port}", root=str(root))
    with running_nginx(work, conf, port) as url:
        yield url


def caddyfile(*, listen: str, root: str) -> str:
    """Caddy serving the folder target ``root``, its precompressed siblings too."""
    return CADDYFILE.format(listen=listen, root=root, extensions="|".join(PRECOMPRESSED_EXTENSIONS))


@contextmanager
def caddy_folder(root: Path, workdir: Path) -> Iterator[str]:
    """Run Caddy serving the folder target ``root``; its state stays in ``workdir``."""
    work, port = workdir / "caddy-folder", free_port()
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "Caddyfile"
    conf.write_text(caddyfile(listen=f"127.0.0.1:{port}", root=str(root)))
    env = {**os.environ, "HOME": str(work), "XDG_DATA_HOME": str(work),
           "XDG_CONFIG_HOME": str(work)}
    command = [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"]
    with running(command, work=work, port=port, env=env, stop=signal.SIGTERM) as url:
        yield url


@contextmanager
def running_nginx(work: Path, conf_text: str, port: int) -> Iterator[str]:
    """nginx in the foreground with ``conf_text``; stopped gracefully (SIGQUIT) on exit."""
    for sub in ("tmp", "cache"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(conf_text)
    command = [NGINX, "-c", str(conf), "-p", str(work), "-g", "daemon off;"]
    with running(command, work=work, port=port, env=None, stop=signal.SIGQUIT) as url:
        yield url


@contextmanager
def running(command: list[str], *, work: Path, port: int, env: dict[str, str] | None,
            stop: signal.Signals) -> Iterator[str]:
    """Run a server until it listens on ``port``; on exit ``stop`` it (graceful: in-flight
    requests finish), killed if it does not end within 10 s."""
    startup_log = work / "startup.log"
    with open(startup_log, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(f"{command[0]} did not start: {startup_log.read_text()}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(stop)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
