"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.s3servers import REGION, S3Server

ROOT = Path(__file__).resolve().parent.parent


#: Another project's static folder: an image, CSS that uses it, JS, something to leave
#: out by pattern, and junk the walk skips (the foreign-project tests' `project`).
FOREIGN_FILES = {
    "css/site.css": b"body { background: url(../img/cat.png); }\n",
    "img/cat.png": b"\x89PNG\r\n\x1a\n cat",
    "img/raw/cat.psd": b"8BPS layers",
    "js/app.js": b"console.log(1);\n",
    ".DS_Store": b"junk",
    "notes.txt~": b"backup",
}


@dataclass
class S3Env:
    """One empty bucket on the session's S3 server, and a client for it."""

    server: S3Server
    bucket: str
    client: Any

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def subprocess_env(self, tmp_path: Path) -> dict[str, str]:
        """The environment of a ``deploy.py`` subprocess: this tree first on the path, the
        server's credentials, and no host AWS/CDN settings or config files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
        env.update(self.server.credentials.env(), AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), PYTHONPATH=str(ROOT))
        return env

    def keys(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under ``prefix``."""
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", ()):
                found[item["Key"]] = item["Size"]
        return found

    def allow_public_read(self, prefix: str) -> None:
        """What an operator does for a CDN origin: a bucket policy, never object ACLs."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{self.bucket}/{prefix}*",
            }],
        }
        self.client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))

    def get(self, key: str) -> dict[str, Any]:
        return self.client.get_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]


def s3_client(server: S3Server) -> Any:
    """A path-style client with the server's own credentials (the tests' view of the bucket)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=server.credentials.access_key,
        aws_secret_access_key=server.credentials.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def published_state(s3: S3Env, prefix: str = "static") -> tuple[dict[str, Any], dict[str, int]]:
    """(current manifest document, key -> size of every object) as the bucket has them now."""
    document = json.loads(s3.get(f"{prefix}/manifest.json")["Body"].read())
    return document, s3.keys(prefix + "/")


def assert_consistent(s3: S3Env, prefix: str = "static") -> dict[str, Any]:
    """The invariant of issue 5: the current manifest is a complete, recorded release.

    Every object it names exists with the recorded size (and ETag where recorded),
    and the release object it names exists with the same files.
    """
    document, stored = published_state(s3, prefix)
    release = document.get("release")
    assert release, "the current manifest names no release"
    release_doc = json.loads(s3.get(f"{prefix}/releases/{release}.json")["Body"].read())
    assert release_doc["files"] == document["files"]
    listing = {}
    for page in s3.client.get_paginator("list_objects_v2").paginate(
        Bucket=s3.bucket, Prefix=prefix + "/"
    ):
        for item in page.get("Contents", ()):
            listing[item["Key"]] = item["ETag"].strip('"')
    for logical, entry in document["files"].items():
        assert stored.get(entry["key"]) == entry["size"], f"{logical}: {entry['key']} missing"
        recorded = document.get("etags", {}).get(entry["key"])
        if recorded:
            assert listing[entry["key"]] == recorded, f"{logical}: ETag changed"
    return document


def target_args(s3: S3Env, tmp_path: Path, static: Path, *, endpoint: str | None = None,
                manifest: Path | None = None) -> list[str]:
    """The options that point a command at the test bucket and a per-test local manifest."""
    return ["--bucket", s3.bucket, "--endpoint-url", endpoint or s3.endpoint,
            "--static-dir", str(static),
            "--manifest", str(manifest or tmp_path / "out" / "manifest.json")]


def run_json(capsys: Any, args: list[str]) -> tuple[int, dict[str, Any]]:
    """Run ``deploy.py ARGS --json`` in-process: (exit code, the one JSON object printed)."""
    from pipeline.cli.main import main

    capsys.readouterr()
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON object, got {out!r}"
    return code, json.loads(lines[0])


def run_in_process(argv: list[str], *, cwd: Path, env: dict[str, str],
                   prog_name: str = "deploy.py") -> subprocess.CompletedProcess[str]:
    """``deploy.py ARGV`` as a subprocess would run it (working folder, whole environment,
    its own stdout and stderr), but in this process: the same exit code and output for a
    fraction of the start-up. For refusals and reports; a handful of tests per command
    still run the real process (no traceback, the interpreter's own exit)."""
    from pipeline.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(env)  # boto3 and the AWS config lookups read os.environ directly
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv, env=env, prog_name=prog_name)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([prog_name, *argv], code, out.getvalue(), err.getvalue())


def sigint_masked(status: str, *masks: str) -> bool:
    """Whether SIGINT is in any of ``masks`` ("SigBlk", "SigIgn", ...) of a /proc status text."""
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    return any(int(fields[mask], 16) & bit for mask in masks)
