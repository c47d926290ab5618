"""The whole stack on loopback, in one command: S3 (moto) + nginx as the CDN + the demo site.

    python site/stack.py            # then open the printed site URL; Ctrl-C stops everything

It starts moto's S3 server, creates a public-read (by bucket policy) asset bucket and
a private bucket, runs the real deploy into it, starts nginx as a caching reverse
proxy in front of the bucket (``X-Cache-Status`` shows HIT/MISS), and serves the
demo site with ``CDN_URL`` pointing at nginx. The end-to-end tests use the same
pieces (``tests/e2e``). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3
from botocore.config import Config
from flask import Flask
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from pipeline.cli.main import main as deploy_main

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ASSET_BUCKET = "demo-assets"
PRIVATE_BUCKET = "demo-private"
EXISTING_BUCKET_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})

#: nginx as a stand-in CDN: it caches what the origin's Cache-Control allows and says
#: whether a response came from its cache. ``$request_uri`` is passed on untouched so
#: percent-encoded keys (``%2B``, ``%23``) reach S3 exactly as the browser sent them.
NGINX_CONF = """
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
    proxy_cache_path {work}/cache levels=1:2 keys_zone=cdn:10m max_size=1g inactive=7d
                     use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            limit_except GET HEAD {{ deny all; }}
            proxy_pass http://{origin}/{bucket}$request_uri;
            proxy_cache cdn;
            proxy_cache_key $request_uri;
            proxy_cache_lock on;
            proxy_hide_header x-amz-request-id;
            proxy_hide_header x-amz-id-2;
            add_header X-Cache-Status $upstream_cache_status always;
            # Fonts and SRI-checked CSS/JS are fetched in CORS mode: one CORS answer, the
            # CDN's, whatever the origin sends (two values make the browser refuse both).
            proxy_hide_header Access-Control-Allow-Origin;
            proxy_hide_header Access-Control-Allow-Methods;
            proxy_hide_header Access-Control-Expose-Headers;
            add_header Access-Control-Allow-Origin * always;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Stack:
    s3_endpoint: str
    cdn_url: str
    site_url: str
    manifest_path: Path
    workdir: Path
    app: Flask


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


def use_local_credentials() -> None:
    """moto accepts any key; never fall through to real credentials or the EC2 metadata address."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@contextmanager
def s3_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def create_buckets(endpoint: str, *, prefix: str = "static") -> None:
    """The asset bucket is readable by the CDN through a bucket policy; the private one is not."""
    client = s3_client(endpoint)
    for bucket in (ASSET_BUCKET, PRIVATE_BUCKET):
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.ClientError as exc:
            # A server shared by several stacks (the tests') already has them.
            if exc.response.get("Error", {}).get("Code") not in EXISTING_BUCKET_CODES:
                raise
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{ASSET_BUCKET}/{prefix}/*",
    }]}
    client.put_bucket_policy(Bucket=ASSET_BUCKET, Policy=json.dumps(policy))


def deploy_static(endpoint: str, manifest_path: Path, static_dir: Path = ROOT / "static") -> None:
    """Run the real deploy (bundles first) into the asset bucket."""
    code = deploy_main([
        "--assets", str(ROOT / "site" / "assets.py"),
        "--bucket", ASSET_BUCKET, "--endpoint-url", endpoint, "--static-dir", str(static_dir),
        "--manifest", str(manifest_path), "--no-hash-cache", "--quiet",
        # The repository's variant cache (content-addressed, shared with the dev server), so
        # a stack in a fresh folder encodes the photos once, not on every start.
        "--variant-cache", str(ROOT / "build" / "variants"),
    ])
    if code != 0:
        raise RuntimeError(f"deploy failed with exit code {code}")


@contextmanager
def nginx_cdn(s3_endpoint: str, workdir: Path) -> Iterator[str]:
    """Run nginx in the foreground as a caching proxy for the asset bucket."""
    work = workdir / "nginx"
    for sub in ("tmp", "cache"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(
        work=work, port=port, origin=s3_endpoint.removeprefix("http://"), bucket=ASSET_BUCKET,
        # As root, workers would drop to 'nobody', who cannot write our cache folder.
        user="user root;" if os.geteuid() == 0 else "",
    ))
    startup_log = work / "startup.log"
    with open(startup_log, "wb") as log_file:
        process = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(f"nginx did not start: {startup_log.read_text()}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish in-flight requests
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def serve(app: Flask, *, on_stop: Callable[[Flask], None] | None = None) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; ``on_stop(app)`` once it takes no requests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        if on_stop is not None:
            on_stop(app)  # e.g. the upload encoder: no encode is cut off half-way


def load_site_module() -> Any:
    """``site`` is the stdlib's name, so the demo app is loaded from its file."""
    spec = importlib.util.spec_from_file_location("demo_site_app", ROOT / "site" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def make_sample_private_image(folder: Path) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (240, 160), (30, 30, 60))
    ImageDraw.Draw(image).text((70, 70), "private", fill=(250, 210, 80))
    image.save(folder / "secret-plan.png")


@contextmanager
def running_stack(workdir: Path, *, cdn_enabled: bool = True,
                  extra_config: dict[str, Any] | None = None,
                  s3_endpoint: str | None = None) -> Iterator[Stack]:
    """S3 + deploy + nginx + site, torn down in reverse order on exit.

    With ``s3_endpoint`` the stack uses that running S3 server (the tests pass theirs, with
    its credentials in the environment) instead of starting moto.
    """
    use_local_credentials()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
    with ExitStack() as stack:
        endpoint = s3_endpoint or stack.enter_context(s3_server())
        create_buckets(endpoint)
        manifest_path = workdir / "cdn-manifest.json"
        deploy_static(endpoint, manifest_path)
        cdn_url = stack.enter_context(nginx_cdn(endpoint, workdir))
        private_dir = workdir / "private"
        make_sample_private_image(private_dir)
        images_dir = workdir / "images"
        images_dir.mkdir(exist_ok=True)
        site = load_site_module()
        config: dict[str, Any] = {
            "CDN_URL": cdn_url, "CDN_MANIFEST": manifest_path, "CDN_ENABLED": cdn_enabled,
            "IMAGES_DIR": images_dir, "PRIVATE_DIR": private_dir,
            "SECRET_KEY": os.urandom(16).hex(),
            # Not debug mode, so the app refuses the published demo/demo account; the
            # demo user gets a fresh password, printed at start-up.
            "DEMO_USERS": {"demo": secrets.token_urlsafe(9)},
            "SESSION_COOKIE_SECURE": False,  # plain HTTP on loopback
        }
        if cdn_enabled:
            config.update({"PRIVATE_BUCKET": PRIVATE_BUCKET, "PRIVATE_ENDPOINT_URL": endpoint})
            _upload_private(endpoint, private_dir)
        else:  # the development view, on loopback: variants encoded on request, as in debug
            config["CDN_VARIANT_ROUTE"] = True
        config.update(extra_config or {})
        app = site.create_app(config)
        site_url = stack.enter_context(serve(app, on_stop=site.shutdown_app))
        yield Stack(endpoint, cdn_url, site_url, manifest_path, workdir, app)


def _upload_private(endpoint: str, private_dir: Path) -> None:
    from pipeline.images.private import upload_private
    from pipeline.storage.s3 import S3Settings, S3Storage

    storage = S3Storage(S3Settings(bucket=PRIVATE_BUCKET, endpoint_url=endpoint, workers=4))
    upload_private(private_dir, storage, "private")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # same clean teardown as Ctrl-C (nginx must not be orphaned)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Only ``--help`` for now: the stack needs no settings, and help must start nothing."""
    parser = argparse.ArgumentParser(
        prog="python site/stack.py",
        description="Run moto's S3 server, deploy static/ into it, nginx as a caching CDN in "
                    "front of it, and the demo site, all on 127.0.0.1; print their URLs and "
                    "stop everything on Ctrl-C (or SIGTERM). Needs nginx (apt-get install nginx) "
                    "and the demo extra (pip install -e '.[demo]').",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="cdn-demo-") as tmp, running_stack(Path(tmp)) as stack:
        # Flushed line by line: piped into a log or `tee`, the URLs must show at once.
        password = stack.app.config["DEMO_USERS"]["demo"]
        for line in (
            f"S3 (moto):   {stack.s3_endpoint}  buckets {ASSET_BUCKET}, {PRIVATE_BUCKET}",
            f"CDN (nginx): {stack.cdn_url}  (see the X-Cache-Status header)",
            f"Site:        {stack.site_url}  (log in as demo / {password} for private images)",
            "Press Ctrl-C to stop.",
        ):
            print(line, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
