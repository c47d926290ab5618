"""A re-run that uploads again an object the current release names says so (issue 19, low
item): the object had gone missing from the bucket, so the live site was broken until now.
Every path that uploads: after hashing (``--relist``), while hashing (early uploads, when a
new file makes the deploy list first), and image variants from the local cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import S3Env, run_json, target_args, write_tree
from tests.installed import InstalledTool
from tests.test_variants_deploy import WIDTHS, make_static

WARNING = "object(s) of the current release"


def first_deploy(capsys: Any, s3: S3Env, tmp_path: Path, static: Path, *extra: str
                 ) -> dict[str, Any]:
    code, out = run_json(capsys, [*target_args(s3, tmp_path, static), *extra])
    assert code == 0 and out["restored"] == 0, out
    return json.loads((tmp_path / "out" / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_a_relisted_rerun_says_it_restored_a_deleted_object(
        capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", {"a.css": b"a{}", "b.js": b"b()"})
    manifest = first_deploy(capsys, s3, tmp_path, static)
    gone = manifest["files"]["a.css"]["key"]
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)
    code, out = run_json(capsys, [*target_args(s3, tmp_path, static), "--relist"])
    assert code == 0 and out["restored"] == 1 and out["uploaded"] == 1
    assert gone in s3.keys()
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)
    from pipeline.cli.main import main

    assert main([*target_args(s3, tmp_path, static), "--relist"]) == 0
    err = capsys.readouterr().err
    assert f"warning: 1 {WARNING} {manifest['release']} were missing" in err
    assert f"(first: {gone})" in err and gone in s3.keys()


def test_uploads_begun_while_hashing_say_it_too(capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    """A new file (not in the hash cache, not in the release) makes the deploy list first and
    upload while hashing: the restored object goes that way, and is reported."""
    static = write_tree(tmp_path / "static", {"a.css": b"a{}", "b.js": b"b()"})
    manifest = first_deploy(capsys, s3, tmp_path, static)
    gone = manifest["files"]["b.js"]["key"]
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)
    (static / "new.txt").write_text("new\n")
    code, out = run_json(capsys, target_args(s3, tmp_path, static))
    assert code == 0 and out["restored"] == 1 and out["uploaded"] == 2, out
    assert gone in s3.keys()


def test_a_variant_restored_from_the_cache_is_reported(
        capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = make_static(tmp_path)
    cache = ["--variant-cache", str(tmp_path / "variants")]
    manifest = first_deploy(capsys, s3, tmp_path, static, *WIDTHS, *cache)
    gone = manifest["files"]["img/photo.jpg"]["variants"][1]["key"]
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)
    code, out = run_json(capsys, [*target_args(s3, tmp_path, static), *WIDTHS, *cache,
                                  "--relist"])
    assert code == 0 and (out["restored"], out["encoded"], out["variant_uploads"]) == (1, 0, 1)
    assert gone in s3.keys()


def test_the_installed_deploy_says_what_it_restored(
        s3: S3Env, installed: InstalledTool, project: Path) -> None:
    target = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint]
    env = s3.server.credentials.env()
    first = installed.run("cdn-deploy", *target, cwd=project, **env)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    gone = manifest["files"]["css/site.css"]["key"]
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)
    again = installed.run("cdn-deploy", *target, "--relist", cwd=project, **env)
    assert again.returncode == 0, again.stderr
    assert f"warning: 1 {WARNING} {manifest['release']} were missing" in again.stderr
    assert f"(first: {gone})" in again.stderr and "Traceback" not in again.stderr
    assert gone in s3.keys()
