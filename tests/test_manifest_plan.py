"""Manifest format and upload planning: pure functions, no server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.build.assemble import build_manifest
from pipeline.build.fingerprint import HashCache, hashed_name
from pipeline.errors import ManifestError
from pipeline.keys import manifest_key, object_key
from pipeline.localfs import collect_files
from pipeline.manifest import Entry, Manifest
from pipeline.release.plan import Reason, missing_keys, plan_deploy
from pipeline.storage.base import RemoteObject


def build(root: Path, prefix: str = "static", cache: HashCache | None = None) -> Manifest:
    return build_manifest(collect_files(root), prefix=prefix, cache=cache or HashCache(None))


def test_entries_have_key_hash_size_and_type(static_tree: Path) -> None:
    manifest = build(static_tree)
    data = (static_tree / "img/cat.jpg").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert manifest.files["img/cat.jpg"] == Entry(
        key=f"static/img/cat.{digest[:12]}.jpg", hash=digest, size=len(data),
        content_type="image/jpeg",
    )
    assert manifest.files["img/icons/arrow.svg"].content_type == "image/svg+xml"
    assert manifest.files["img/photos/sunset beach.webp"].content_type == "image/webp"
    assert manifest.files["LICENSE"].key.startswith("static/LICENSE.")


def test_json_is_deterministic_and_round_trips(static_tree: Path, tmp_path: Path) -> None:
    first = build(static_tree).to_json()
    second = build(static_tree).to_json()
    assert first == second
    document = json.loads(first)
    assert document["version"] == 1
    assert list(document["files"]) == sorted(document["files"])
    path = tmp_path / "out" / "manifest.json"
    Manifest.from_json(first).save(path)
    assert Manifest.load(path) == Manifest.from_json(first)
    assert path.read_bytes() == first


def test_same_bytes_same_hash_under_any_prefix(static_tree: Path) -> None:
    a = build(static_tree, prefix="static")
    b = build(static_tree, prefix="")
    assert a.files["img/cat.jpg"].hash == b.files["img/cat.jpg"].hash
    assert b.files["img/cat.jpg"].key == a.files["img/cat.jpg"].key.removeprefix("static/")
    assert manifest_key("") == "manifest.json" and manifest_key("a/b") == "a/b/manifest.json"


def test_hash_cache_skips_rereading_unchanged_files(static_tree: Path, tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.json"
    cold = HashCache(cache_path)
    build(static_tree, cache=cold)
    cold.save()
    warm = HashCache(cache_path)
    assert build(static_tree, cache=warm) == build(static_tree)
    assert warm.misses == 0 and warm.hits == len(collect_files(static_tree))


@pytest.mark.parametrize(
    "content",
    ["", "{", "[]", '{"version": 4, "files": {}}', '{"version": 1}',
     '{"version": 1, "files": {"a.png": {"key": "k"}}}'],
)
def test_bad_manifest_is_a_manifest_error(content: str, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ManifestError, match=r"m.json"):
        Manifest.load(path)


def test_missing_manifest_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        Manifest.load(tmp_path / "nope.json")


def entry(key: str, size: int = 3) -> Entry:
    return Entry(key=key, hash="h" * 64, size=size, content_type="image/png")


def test_plan_marks_new_unchanged_and_damaged() -> None:
    manifest = Manifest({"a.png": entry("s/a.1.png"), "b.png": entry("s/b.1.png"),
                         "c.png": entry("s/c.1.png")})
    sources = {name: Path(name) for name in manifest.files}
    existing = {"s/a.1.png": RemoteObject(3), "s/c.1.png": RemoteObject(1)}
    plan = plan_deploy(manifest, sources, existing)
    assert {p.logical_path: p.reason for p in plan.files} == {
        "a.png": Reason.UNCHANGED, "b.png": Reason.NEW, "c.png": Reason.DAMAGED,
    }
    assert [p.logical_path for p in plan.uploads] == ["b.png", "c.png"]
    assert plan.bytes_to_upload == 6 and plan.skipped == 1


def test_plan_uploads_a_shared_key_once() -> None:
    manifest = Manifest({"a.png": entry("s/same.png"), "b.png": entry("s/same.png")})
    plan = plan_deploy(manifest, {"a.png": Path("a"), "b.png": Path("b")}, {})
    assert len(plan.uploads) == 1


def test_missing_keys_requires_presence_with_right_size() -> None:
    manifest = Manifest({"a.png": entry("k/a"), "b.png": entry("k/b"), "c.png": entry("k/c")})
    confirmed = {"k/a": RemoteObject(3), "k/b": RemoteObject(2)}
    assert missing_keys(manifest, confirmed) == ["k/b", "k/c"]


def test_object_key_without_prefix() -> None:
    assert object_key("", hashed_name("x/y.png", "a" * 64)) == "x/y.aaaaaaaaaaaa.png"
