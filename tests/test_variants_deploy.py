"""Variants in the deploy: planned before encoding, decided per key by the one listing, uploaded
and confirmed with everything else; read back from the bucket and decoded."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import S3Env, run_json, target_args
from tests.test_foreign_project import DEPLOY, deploy_py, user_env

WIDTHS = ["--variants", "--variant-widths", "320,640"]
PIL_TYPES = {"image/avif": "AVIF", "image/webp": "WEBP", "image/jpeg": "JPEG", "image/png": "PNG"}


def make_static(root: Path) -> Path:
    static = root / "static"
    (static / "img").mkdir(parents=True)
    photo = Image.linear_gradient("L").resize((700, 450)).convert("RGB")
    photo.paste((200, 40, 40), (100, 100, 300, 250))
    photo.save(static / "img" / "photo.jpg", quality=92)
    alpha = photo.resize((400, 300)).convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize((400, 300)))
    alpha.save(static / "img" / "cut out.png")
    Image.new("RGB", (100, 80), (1, 2, 3)).save(static / "img" / "tiny.jpg")
    (static / "site.css").write_text("body{}")
    return static


def deploy(capsys: Any, s3: S3Env, tmp_path: Path, static: Path, manifest: Path,
           *extra: str) -> dict[str, Any]:
    """Deploy as a machine whose build folder holds ``manifest`` (its own variant cache)."""
    cache = ["--variant-cache", str(manifest.parent / "variants")]
    code, out = run_json(capsys, [*target_args(s3, tmp_path, static, manifest=manifest),
                                  *WIDTHS, *cache, *extra])
    assert code == 0, out
    return out


def test_variants_are_in_the_bucket_decoded_and_in_the_manifest(
        capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = make_static(tmp_path)
    manifest_path = tmp_path / "a" / "manifest.json"
    out = deploy(capsys, s3, tmp_path, static, manifest_path)
    # photo: 320, 640 x 3 formats; png: 320 and its own 400 (the top rung) x 3; tiny: its own
    # 100 (narrower than every rung: its width is the only rung) x 3
    assert out["encoded"] == 15 and out["variant_uploads"] == 15
    manifest = json.loads(manifest_path.read_text())
    assert manifest["version"] == 3  # the photo is opaque: it has a placeholder
    photo = manifest["files"]["img/photo.jpg"]
    assert (photo["width"], photo["height"]) == (700, 450)
    assert [(v["width"], v["content_type"]) for v in photo["variants"]] == [
        (320, "image/avif"), (320, "image/webp"), (320, "image/jpeg"),
        (640, "image/avif"), (640, "image/webp"), (640, "image/jpeg")]
    png = manifest["files"]["img/cut out.png"]
    assert {(v["width"], v["content_type"]) for v in png["variants"]} == {
        (w, t) for w in (320, 400) for t in ("image/avif", "image/webp", "image/png")}
    tiny = manifest["files"]["img/tiny.jpg"]
    assert (tiny["width"], tiny["height"]) == (100, 80)
    assert [(v["width"], v["height"], v["content_type"]) for v in tiny["variants"]] == [
        (100, 80, "image/avif"), (100, 80, "image/webp"), (100, 80, "image/jpeg")]
    assert "width" not in manifest["files"]["site.css"]
    listed = s3.keys("static/_v/")
    for variant in photo["variants"] + png["variants"] + tiny["variants"]:
        obj = s3.get(variant["key"])
        body = obj["Body"].read()
        assert listed[variant["key"]] == variant["size"] == len(body)
        assert obj["ContentType"] == variant["content_type"]
        assert obj["CacheControl"] == "public, max-age=31536000, immutable"
        image = Image.open(io.BytesIO(body))  # in memory: nothing to close
        assert image.format == PIL_TYPES[variant["content_type"]]
        assert image.size == (variant["width"], variant["height"])
        if variant["content_type"] != "image/jpeg" and variant in png["variants"]:
            assert "A" in image.mode  # alpha kept
    # the published manifest is the local one
    remote = json.loads(s3.get("static/manifest.json")["Body"].read())
    assert remote["files"] == manifest["files"]


def test_redeploy_and_fresh_checkout_encode_nothing(
        capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = make_static(tmp_path)
    first = deploy(capsys, s3, tmp_path, static, tmp_path / "a" / "manifest.json")
    assert first["encoded"] == 15
    again = deploy(capsys, s3, tmp_path, static, tmp_path / "a" / "manifest.json")
    assert (again["encoded"], again["uploaded"], again["new_release"]) == (0, 0, False)
    # a CI checkout: the same files elsewhere, no build/ folder (no cache, no probes)
    checkout = make_static(tmp_path / "ci")
    for name in ("img/photo.jpg", "img/cut out.png", "img/tiny.jpg"):
        shutil.copyfile(static / name, checkout / name)
    fresh = deploy(capsys, s3, tmp_path, checkout, tmp_path / "ci" / "build" / "manifest.json")
    assert (fresh["encoded"], fresh["uploaded"]) == (0, 0)
    assert not (tmp_path / "ci" / "build" / "variants" / "_v").exists()
    # even when the listing decides (--relist), every key is present: nothing to encode
    listed = deploy(capsys, s3, tmp_path, checkout, tmp_path / "ci" / "build" / "manifest.json",
                    "--relist")
    assert (listed["encoded"], listed["uploaded"]) == (0, 0)


def test_a_missing_variant_is_made_again_per_key(capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = make_static(tmp_path)
    manifest_path = tmp_path / "a" / "manifest.json"
    deploy(capsys, s3, tmp_path, static, manifest_path)
    variants = json.loads(manifest_path.read_text())["files"]["img/photo.jpg"]["variants"]
    avif = next(v["key"] for v in variants if v["content_type"] == "image/avif")
    s3.client.delete_object(Bucket=s3.bucket, Key=avif)
    # the local cache has it: uploaded again, not encoded
    out = deploy(capsys, s3, tmp_path, static, manifest_path, "--relist")
    assert (out["encoded"], out["uploaded"]) == (0, 1)
    s3.client.delete_object(Bucket=s3.bucket, Key=avif)
    # no cache (another machine): only that image is encoded, and the key is back
    out = deploy(capsys, s3, tmp_path, static, tmp_path / "b" / "manifest.json", "--relist")
    assert out["encoded"] == 1 and out["uploaded"] == 1
    assert avif in s3.keys("static/_v/")


def test_dry_run_counts_encodes_and_writes_nothing(capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    static = make_static(tmp_path)
    out = deploy(capsys, s3, tmp_path, static, tmp_path / "a" / "manifest.json", "--dry-run")
    assert (out["encoded"], out["uploaded"]) == (15, 0)
    assert s3.keys() == {}
    assert not (tmp_path / "a").exists()  # no variants and no probes.json: nothing written


def test_deploy_with_variants_from_a_foreign_project(tmp_path: Path) -> None:
    project = tmp_path / "their-project"
    make_static(project)
    (project / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nvariants = true\nvariant-widths = [320, 640]\n'
        'variant-exclude = ["img/tiny.*"]\n')
    run = [sys.executable, DEPLOY, "--target-dir", "out"]
    first = subprocess.run(run, cwd=project, env=user_env(), capture_output=True, text=True,
                           timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert "Image variants: 12 encoded, 12 uploaded" in first.stdout
    assert "encoded variants of img/photo.jpg" in first.stderr  # progress shows encodes
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    tiny = manifest["files"]["img/tiny.jpg"]  # excluded from variants, still measured
    assert (tiny["width"], tiny["height"], "variants" in tiny) == (100, 80, False)
    for variant in manifest["files"]["img/photo.jpg"]["variants"]:
        stored = project / "out" / variant["key"]
        assert stored.stat().st_size == variant["size"]
        with Image.open(stored) as image:
            assert image.size == (variant["width"], variant["height"])
    # The first run is the real process (spawned encoders re-import deploy.py as __main__);
    # the re-run, which encodes nothing, runs in this process.
    second = deploy_py("--target-dir", "out", cwd=project)
    assert second.returncode == 0 and "Image variants: 0 encoded, 0 uploaded" in second.stdout


def test_bad_variant_setting_exits_2_before_anything(tmp_path: Path) -> None:
    project = tmp_path / "p"
    make_static(project)
    result = deploy_py("--target-dir", "out", "--variants", "--variant-formats", "avif,gif",
                       cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "variant formats" in result.stderr and "--variant-formats" in result.stderr
    assert not (project / "out").exists()


@pytest.mark.parametrize("value", ['"640"', "[640, 320]", '["a"]'])
def test_bad_widths_in_pyproject_exit_2(tmp_path: Path, value: str) -> None:
    project = tmp_path / "p"
    make_static(project)
    (project / "pyproject.toml").write_text(
        f"[tool.flask-cdn-pipeline]\nvariants = true\nvariant-widths = {value}\n")
    result = deploy_py("--target-dir", "out", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "variant" in result.stderr


def test_verify_reports_a_missing_variant(capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    from pipeline.cli.main import main

    static = make_static(tmp_path)
    manifest_path = tmp_path / "a" / "manifest.json"
    deploy(capsys, s3, tmp_path, static, manifest_path)
    target = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint]
    assert main(["verify", *target]) == 0
    variants = json.loads(manifest_path.read_text())["files"]["img/photo.jpg"]["variants"]
    s3.client.delete_object(Bucket=s3.bucket, Key=variants[0]["key"])
    capsys.readouterr()
    assert main(["verify", *target]) == 1
    output = capsys.readouterr()
    assert (
        variants[0]["key"] in output.out + output.err
        and "variant missing" in output.out + output.err
    )


def test_summaries_count_files_and_variants_apart(capsys: Any, tmp_path: Path) -> None:
    static = make_static(tmp_path)  # 4 files, 15 variants of three of them
    common = ["--static-dir", str(static), "--no-assets", *WIDTHS,
              "--variant-cache", str(tmp_path / "variants")]
    code, out = run_json(capsys, [*common, "--target-dir", str(tmp_path / "a"),
                                  "--manifest", str(tmp_path / "a.json")])
    assert code == 0, out
    files = sum(path.stat().st_size for path in static.rglob("*") if path.is_file())
    assert (out["files"], out["files_uploaded"], out["file_bytes_uploaded"]) == (4, 4, files)
    assert (out["variant_uploads"], out["uploaded"]) == (15, 19)  # "uploaded": every object
    assert out["bytes_uploaded"] == files + out["variant_bytes_uploaded"]

    from pipeline.cli.main import main

    assert main([*common, "--target-dir", str(tmp_path / "b"),
                 "--manifest", str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    assert f"Deployed 4 files to local folder {str(tmp_path / 'b')!r}: 4 uploaded (" in text
    assert "Image variants: 0 encoded, 15 uploaded (" in text  # encoded once, by the first run


def test_verify_repair_restores_a_deleted_variant_from_the_local_cache(
        capsys: Any, s3: S3Env, tmp_path: Path) -> None:
    """The bytes are in the variant cache the deploy encoded into: repair uploads them."""
    from pipeline.cli.main import main

    static = make_static(tmp_path)
    manifest_path = tmp_path / "a" / "manifest.json"
    deploy(capsys, s3, tmp_path, static, manifest_path)
    variants = json.loads(manifest_path.read_text())["files"]["img/cut out.png"]["variants"]
    gone = variants[0]
    s3.client.delete_object(Bucket=s3.bucket, Key=gone["key"])
    target = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
              "--static-dir", str(static)]
    code, report = run_json(capsys, ["verify", "--repair", *target,
                                     "--variant-cache", str(tmp_path / "a" / "variants")])
    assert code == 0 and report["ok"], report
    assert report["repaired"] == [gone["key"]]
    obj = s3.get(gone["key"])
    cached = tmp_path / "a" / "variants" / gone["key"].removeprefix("static/")
    assert obj["Body"].read() == cached.read_bytes()
    assert obj["ContentType"] == gone["content_type"]
    assert obj["CacheControl"] == "public, max-age=31536000, immutable"
    assert main(["verify", *target]) == 0
