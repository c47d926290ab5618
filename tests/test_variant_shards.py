"""``cdn-deploy variants --shard i/N``: every shard computes the same split without talking to the
others, encodes and uploads only its part, publishes nothing; the deploy afterwards encodes 0."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.build.shards import Shard, assign, loads, parse_shard
from pipeline.cli.main import main
from pipeline.errors import ConfigError
from tests.helpers import S3Env, run_json
from tests.installed import InstalledTool

# Small photos and rungs: the split, not the encoder, is under test (each photo is wider than
# both rungs, so each gets 2 widths x 3 formats, as the 320/640 rungs gave photos 4x the size).
WIDTHS = ["--variant-widths", "80,160"]
SIZES = [(225, 150), (175, 112), (160, 160), (125, 75), (300, 200), (100, 62)]


def photos(static: Path) -> list[str]:
    """Six photos of different sizes, and the same bytes again under another name (one set of
    variant objects, which only one shard may encode)."""
    names = []
    for number, size in enumerate(SIZES):
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        image.paste((40 * number, 90, 200), (size[0] // 5, size[1] // 5, size[0] // 2,
                                              size[1] // 2))
        path = static / "img" / f"p{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
        names.append(f"img/p{number}.jpg")
    shutil.copyfile(static / "img" / "p0.jpg", static / "img" / "copy of p0.jpg")
    return [*names, "img/copy of p0.jpg"]


# -- the split itself ---------------------------------------------------------------------------


def test_parse_shard_accepts_i_of_n_and_refuses_the_rest() -> None:
    assert parse_shard("2/4") == Shard(2, 4) and str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad in ("0/4", "5/4", "x/y", "1/0", "3", "", "1/1001", "-1/4"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_assignment_is_balanced_and_the_same_whatever_the_order() -> None:
    weights = {name: weight for name, weight in zip("abcdefg", (7, 6, 5, 4, 3, 2, 1), strict=True)}
    assigned = assign(weights, 2)
    assert loads(weights, assigned, 2) == [14, 14]
    shuffled = list(weights.items())
    random.Random(4).shuffle(shuffled)
    assert assign(dict(shuffled), 2) == assigned
    assert set(assign(weights, 3).values()) == {1, 2, 3}


# -- the command, in-process against a folder --------------------------------------------------


def shard_args(tmp_path: Path, shard: str, cache: str) -> list[str]:
    return ["variants", "--shard", shard, "--target-dir", str(tmp_path / "out"), "--static-dir",
            str(tmp_path / "static"), *WIDTHS, "--variant-cache", str(tmp_path / cache),
            "--hash-cache", str(tmp_path / cache / "hashes.json")]


@pytest.mark.parametrize("value", ["0/4", "5/4", "x/y"])
def test_a_bad_shard_exits_2_before_anything(capsys: Any, tmp_path: Path, value: str) -> None:
    photos(tmp_path / "static")
    code = main(shard_args(tmp_path, value, "c"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --shard") and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "c").exists()


def test_a_shard_run_after_another_finished_takes_the_rest_and_publishes_nothing(
        capsys: Any, tmp_path: Path) -> None:
    """The split must not depend on the listing: here shard 2 lists after shard 1 uploaded."""
    names = photos(tmp_path / "static")
    code, first = run_json(capsys, shard_args(tmp_path, "1/2", "c1"))
    assert code == 0, first
    capsys.readouterr()
    assert main([*shard_args(tmp_path, "2/2", "c2"), "--json"]) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out)
    # Progress counts the variant uploads against their own total (no files were planned).
    assert f"uploaded {second['uploaded']}/{second['uploaded']} objects" in captured.err
    assert "while hashing" not in captured.err
    assert set(first["assigned"]).isdisjoint(second["assigned"])
    assert sorted(first["assigned"] + second["assigned"]) == sorted(names)
    keys = first["uploaded_keys"] + second["uploaded_keys"]
    assert len(keys) == len(set(keys)) == 6 * 6  # six distinct photos: the copy shares p0's
    assert first["encoded"] + second["encoded"] == 36
    out = tmp_path / "out"
    assert not (out / "static" / "manifest.json").exists()  # nothing published
    assert not (out / "static" / "releases").exists()
    assert not (tmp_path / "build" / "cdn-manifest.json").exists()
    code, deployed = run_json(capsys, ["--target-dir", str(out), "--static-dir",
                                       str(tmp_path / "static"), "--variants", *WIDTHS,
                                       "--variant-cache", str(tmp_path / "c3")])
    assert code == 0, deployed
    assert (deployed["encoded"], deployed["variant_uploads"], deployed["images_left"]) == (0, 0, 0)
    files = json.loads(Path(deployed["manifest"]).read_text())["files"]
    assert {v["key"] for name in names for v in files[name]["variants"]} == set(keys)


# -- N shards at once against a real S3 server, then the publish -------------------------------


def test_concurrent_shards_then_the_deploy_encodes_nothing(
        installed: InstalledTool, s3: S3Env, tmp_path: Path) -> None:
    project = tmp_path / "their-project"
    names = photos(project / "static")
    (project / "pyproject.toml").write_text(
        f'[tool.flask-cdn-pipeline]\nbucket = "{s3.bucket}"\nvariants = true\n'
        'variant-widths = [80, 160]\n')
    env = {**s3.server.credentials.env(), "AWS_ENDPOINT_URL": s3.endpoint}
    count = 3
    # Each job on its own machine: its own cache folders, so nothing is shared but the bucket.
    running = [installed.popen("cdn-deploy", "variants", "--shard", f"{i}/{count}", "--json",
                               "--variant-cache", f"build/job{i}",
                               "--hash-cache", f"build/job{i}.json", cwd=project, **env)
               for i in range(1, count + 1)]
    results = []
    for process in running:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0 and "Traceback" not in stderr, stderr
        results.append(json.loads(stdout))
    assigned = [name for result in results for name in result["assigned"]]
    assert sorted(assigned) == sorted(names)  # disjoint and covering
    uploaded = [key for result in results for key in result["uploaded_keys"]]
    assert len(uploaded) == len(set(uploaded)) == 36  # no key uploaded twice
    assert all(result["uploaded"] for result in results)  # every shard had work
    assert "static/manifest.json" not in s3.keys("static/")  # nothing published
    assert s3.keys("static/releases/") == {}

    deployed = installed.run("cdn-deploy", "--json", cwd=project, **env)
    assert deployed.returncode == 0, deployed.stderr
    out = json.loads(deployed.stdout)
    assert (out["encoded"], out["variant_uploads"], out["images_left"]) == (0, 0, 0)
    files = json.loads((project / "build" / "cdn-manifest.json").read_text())["files"]
    published = {v["key"] for name in names for v in files[name]["variants"]}
    assert published == set(uploaded) == set(s3.keys("static/_v/"))  # each present once


def test_a_dry_run_shard_counts_its_encodes_and_uploads_nothing(capsys: Any,
                                                                tmp_path: Path) -> None:
    photos(tmp_path / "static")
    code, planned = run_json(capsys, [*shard_args(tmp_path, "2/2", "c"), "--dry-run"])
    assert code == 0, planned
    assert planned["dry_run"] and planned["uploaded"] == 0
    assert 0 < planned["encoded"] < 36 and planned["assigned"]
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "c").rglob("*.avif"))
