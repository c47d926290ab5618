"""Precompressed siblings at deploy: what lands beside each object, with which headers, and
when a deploy compresses (only what the bucket lacks).

Folder target in-process for the rules; the S3 servers (moto, SeaweedFS) for the headers.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import brotli
import pytest

from pipeline.media_types import IMMUTABLE_CACHE_CONTROL
from tests.helpers import S3Env, run_json, target_args, write_tree
from tests.test_extras import run_python

CSS = b"".join(b".c%d { color: #%06x; margin: 0 auto; }\n" % (i, i * 977) for i in range(300))
JS = b"".join(b"export function f%d(x) { return x + %d; }\n" % (i, i) for i in range(300))
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg">' + b'<rect width="1" height="1"/>' * 200
       + b"</svg>")
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 3000   # compressible bytes, but an image
TINY = b"a{}"                                              # no sibling saves 5% of 3 bytes
FILES = {"app.css": CSS, "js/app.js": JS, "logo.svg": SVG, "img/pixel.png": PNG,
         "tiny.css": TINY}


def _deploy(capsys: Any, static: Path, out: Path, *extra: str) -> dict[str, Any]:
    code, summary = run_json(capsys, ["--static-dir", str(static), "--target-dir", str(out / "cdn"),
                                      "--manifest", str(out / "manifest.json"), "--hash-cache",
                                      str(out / "hashes.json"), "--no-assets", *extra])
    assert code == 0
    return summary


def _manifest(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "manifest.json").read_bytes())
    return document


def test_siblings_lie_beside_their_object_decode_to_it_and_are_recorded(
        capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    summary = _deploy(capsys, static, tmp_path / "out")
    document = _manifest(tmp_path / "out")
    assert document["version"] == 3
    cdn = tmp_path / "out" / "cdn"
    for logical in ("app.css", "js/app.js", "logo.svg"):
        entry = document["files"][logical]
        br = (cdn / (entry["key"] + ".br")).read_bytes()
        gz = (cdn / (entry["key"] + ".gz")).read_bytes()
        assert brotli.decompress(br) == gzip.decompress(gz) == FILES[logical]
        assert entry["encodings"] == {"br": {"key": entry["key"] + ".br", "size": len(br)},
                                      "gzip": {"key": entry["key"] + ".gz", "size": len(gz)}}
    png, tiny = document["files"]["img/pixel.png"], document["files"]["tiny.css"]
    assert "encodings" not in png                     # images are never compressed
    assert tiny["encodings"] == {}                    # compressed once, nothing worth keeping
    assert not list(cdn.rglob("*.png.*")) and not list(cdn.rglob("tiny.*.css.*"))
    assert summary["compressed"] == 4 and summary["sibling_uploads"] == 6


def test_a_redeploy_and_a_fresh_checkout_compress_nothing(capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    out = tmp_path / "out"
    _deploy(capsys, static, out)
    assert _deploy(capsys, static, out)["compressed"] == 0
    # A fresh checkout: no hash cache, no local manifest; the bucket has the siblings.
    (out / "hashes.json").unlink()
    (out / "manifest.json").unlink()
    again = _deploy(capsys, static, out)
    assert (again["compressed"], again["uploaded"]) == (0, 0)
    # One file changes: only it is compressed; the tiny file's "not worth it" is remembered.
    (static / "js" / "app.js").write_bytes(JS + b"// v2\n")
    (static / "new.txt").write_bytes(b"hello " * 100)
    changed = _deploy(capsys, static, out)
    assert (changed["compressed"], changed["sibling_uploads"]) == (2, 4)


def test_a_checkout_whose_bucket_has_the_siblings_but_not_the_release_compresses_nothing(
        capsys: Any, tmp_path: Path) -> None:
    """Siblings listed in the bucket are recorded with their listed size, not made again."""
    static = write_tree(tmp_path / "static", FILES)
    out = tmp_path / "out"
    _deploy(capsys, static, out)
    first = _manifest(out)
    (static / "other.txt").write_bytes(b"x" * 10)       # a new release that must list
    (out / "hashes.json").unlink()
    (out / "cdn" / "static" / "manifest.json").unlink()  # the bucket has no current release
    summary = _deploy(capsys, static, out)
    assert summary["compressed"] == 2  # other.txt (not kept) and tiny.css (no record left)
    assert _manifest(out)["files"]["app.css"] == first["files"]["app.css"]


def test_no_precompress_stores_no_sibling_and_writes_the_old_format(
        capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    summary = _deploy(capsys, static, tmp_path / "out", "--no-precompress")
    assert summary["compressed"] == 0
    assert _manifest(tmp_path / "out")["version"] == 1  # old readers keep reading it
    assert not [p for p in (tmp_path / "out" / "cdn").rglob("*") if p.suffix in {".br", ".gz"}]


def test_turning_precompression_off_publishes_a_release_without_siblings(
        capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    out = tmp_path / "out"
    _deploy(capsys, static, out)
    summary = _deploy(capsys, static, out, "--no-precompress")
    assert summary["new_release"] is True
    assert all("encodings" not in e for e in _manifest(out)["files"].values())


def test_the_setting_is_shown_with_its_source(capsys: Any, tmp_path: Path) -> None:
    from pipeline.cli.main import main

    capsys.readouterr()
    assert main(["--show-config", "--json", "--no-precompress", "--no-assets"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]["precompress"]
    assert shown == {"value": False, "source": "--no-precompress"}


def test_without_brotli_siblings_are_gzip_only_and_it_is_said_once(tmp_path: Path) -> None:
    """The ``[compress]`` extra missing (its import fails in a fresh interpreter)."""
    static = write_tree(tmp_path / "static", FILES)
    out = tmp_path / "out"
    code = ("import sys\nfrom pipeline.cli.main import main\n"
            f"sys.exit(main(['--static-dir', {str(static)!r}, '--target-dir', "
            f"{str(out / 'cdn')!r}, '--manifest', {str(out / 'manifest.json')!r}, "
            "'--no-assets']))\n")
    result = run_python(["-c", code], cwd=tmp_path, blocked=("brotli",), shim=tmp_path / "shim")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("brotli is not installed") == 1
    assert "flask-cdn-pipeline[compress]" in result.stderr
    entry = _manifest(out)["files"]["app.css"]
    assert set(entry["encodings"]) == {"gzip"}
    assert gzip.decompress((out / "cdn" / (entry["key"] + ".gz")).read_bytes()) == CSS


@pytest.mark.slow
def test_s3_siblings_carry_encoding_type_and_cache_policy(
        s3: S3Env, capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    code, summary = run_json(capsys, [*target_args(s3, tmp_path, static), "--no-assets"])
    assert code == 0 and summary["compressed"] == 4
    entry = _manifest(tmp_path / "out")["files"]["app.css"]
    for encoding, suffix, decode in (("br", ".br", brotli.decompress),
                                     ("gzip", ".gz", gzip.decompress)):
        stored = s3.client.get_object(Bucket=s3.bucket, Key=entry["key"] + suffix)
        assert stored["ContentEncoding"] == encoding
        assert stored["ContentType"] == "text/css; charset=utf-8"
        assert stored["CacheControl"] == IMMUTABLE_CACHE_CONTROL
        # botocore hands over the stored bytes as they are (it never decodes a body)
        assert decode(stored["Body"].read()) == CSS
    identity = s3.client.get_object(Bucket=s3.bucket, Key=entry["key"])
    assert "ContentEncoding" not in identity and identity["Body"].read() == CSS
    shutil.rmtree(tmp_path / "out")  # a fresh checkout against this bucket
    code, again = run_json(capsys, [*target_args(s3, tmp_path, static), "--no-assets"])
    assert (code, again["compressed"], again["uploaded"]) == (0, 0, 0)


def test_prune_keeps_the_siblings_of_kept_entries_and_deletes_the_others(
        capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --grace 0 for the test (the floor itself is tested in tests/test_prune_race.py)
    monkeypatch.setattr("pipeline.release.prune.MIN_GRACE", timedelta(0))
    static = write_tree(tmp_path / "static", FILES)
    out = tmp_path / "out"
    args = ["--static-dir", str(static), "--target-dir", str(out / "cdn"),
            "--manifest", str(out / "manifest.json")]
    _deploy(capsys, static, out)
    old = _manifest(out)["files"]["app.css"]["key"]
    (static / "app.css").write_bytes(CSS + b".v2 {}\n")
    _deploy(capsys, static, out)
    kept = _manifest(out)["files"]["app.css"]["key"]
    cdn = out / "cdn"
    # A sibling whose object is gone (a prune of another tool, a torn deploy): an orphan.
    orphan = cdn / "static" / "gone.0123456789ab.css.gz"
    orphan.write_bytes(gzip.compress(b"x" * 100))
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0",
                                      "--max-deletes", "10", *args])
    assert code == 0, result
    assert not (cdn / old).exists() and not (cdn / (old + ".br")).exists()
    assert not (cdn / (old + ".gz")).exists() and not orphan.exists()
    assert all((cdn / (kept + suffix)).exists() for suffix in ("", ".br", ".gz"))
    assert result["deleted"] == 5  # the old release, its css and two siblings, the orphan
    assert run_json(capsys, ["verify", *args])[0] == 0


@pytest.mark.slow
def test_verify_finds_a_missing_and_a_mislabelled_sibling_and_repair_fixes_both(
        s3: S3Env, capsys: Any, tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    args = target_args(s3, tmp_path, static)
    assert run_json(capsys, [*args, "--no-assets"])[0] == 0
    key = _manifest(tmp_path / "out")["files"]["js/app.js"]["key"]
    s3.client.delete_object(Bucket=s3.bucket, Key=key + ".br")
    # The right bytes stored without their Content-Encoding: a browser would get gzip bytes
    # it does not know to decode.
    gz = s3.client.get_object(Bucket=s3.bucket, Key=key + ".gz")["Body"].read()
    s3.client.put_object(Bucket=s3.bucket, Key=key + ".gz", Body=gz,
                         ContentType="text/javascript; charset=utf-8",
                         CacheControl=IMMUTABLE_CACHE_CONTROL)
    code, report = run_json(capsys, ["verify", *args])
    assert code == 1
    assert {(p["key"], p["problem"]) for p in report["problems"]} == {
        (key + ".br", "br sibling missing (verify --repair or deploy --relist makes it again)"),
        (key + ".gz", "wrong Content-Encoding")}
    code, report = run_json(capsys, ["verify", "--repair", *args])
    assert code == 0 and sorted(report["repaired"]) == [key + ".br", key + ".gz"]
    assert run_json(capsys, ["verify", *args])[0] == 0
    stored = s3.client.get_object(Bucket=s3.bucket, Key=key + ".gz")
    assert stored["ContentEncoding"] == "gzip" and gzip.decompress(stored["Body"].read()) == JS
