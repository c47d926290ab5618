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
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "site")):  # pipeline, and cdn_servers beside this file
    if _path not in sys.path:
        sys.path.insert(0, _path)

import boto3
import cdn_servers
from botocore.config import Config
from flask import Flask
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from pipeline.cli.main import main as deploy_main

ASSET_BUCKET = "demo-assets"
PRIVATE_BUCKET = "demo-private"
EXISTING_BUCKET_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})

@dataclass(frozen=True)
class Stack:
    s3_endpoint: str
    cdn_url: str
    site_url: str
    manifest_path: Path
    workdir: Path
    app: Flask


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


def create_buckets(endpoint: str, *, prefix: str = "static",
                   asset_bucket: str = ASSET_BUCKET) -> None:
    """The asset bucket is readable by the CDN through a bucket policy; the private one is not."""
    client = s3_client(endpoint)
    for bucket in (asset_bucket, PRIVATE_BUCKET):
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.ClientError as exc:
            # A server shared by several stacks (the tests') already has them.
            if exc.response.get("Error", {}).get("Code") not in EXISTING_BUCKET_CODES:
                raise
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{asset_bucket}/{prefix}/*",
    }]}
    client.put_bucket_policy(Bucket=asset_bucket, Policy=json.dumps(policy))


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
        cdn_url = stack.enter_context(
            cdn_servers.nginx_cdn(endpoint, workdir, bucket=ASSET_BUCKET))
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
