"""Baseline contender: the plainest fast boto3 upload, as a whole process.

Walks DIR and PUTs every file under PREFIX/<relative path> with put_object from a
pool of 16 threads sharing one client (connection pool >= the threads), setting
ContentType and Cache-Control like the deploy does. No hashing, no listing, no
manifest: it is the floor the deploy's first run is compared with.

    python bench/raw_put.py DIR BUCKET ENDPOINT_URL [--prefix raw] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".svg": "image/svg+xml", ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
}
CACHE_CONTROL = "public, max-age=31536000, immutable"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("bucket")
    parser.add_argument("endpoint_url")
    parser.add_argument("--prefix", default="raw")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    jobs = []
    for folder, _dirs, names in os.walk(args.dir):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, args.dir).replace(os.sep, "/")
            ext = os.path.splitext(name)[1].lower()
            jobs.append((path, f"{args.prefix}/{rel}", TYPES.get(ext, "application/octet-stream")))

    client = boto3.session.Session().client(
        "s3", endpoint_url=args.endpoint_url, region_name="us-east-1",
        config=Config(max_pool_connections=args.workers, s3={"addressing_style": "path"},
                      retries={"mode": "standard", "max_attempts": 6}),
    )

    def put(job: tuple[str, str, str]) -> None:
        path, key, ctype = job
        with open(path, "rb") as body:
            client.put_object(Bucket=args.bucket, Key=key, Body=body,
                              ContentType=ctype, CacheControl=CACHE_CONTROL)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for _ in pool.map(put, jobs):
            pass
    print(f"uploaded {len(jobs)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
