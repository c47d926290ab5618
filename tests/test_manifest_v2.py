"""Manifest version 2: image dimensions and variants, while version 1 files keep loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest import Entry, Manifest, Variant

V1 = {"version": 1, "files": {"img/a.jpg": {"key": "static/img/a.0123456789ab.jpg",
                                            "hash": "ab" * 32, "size": 10,
                                            "content_type": "image/jpeg"}}}


def _v2_manifest() -> Manifest:
    variants = (
        Variant("static/_v/ab/abababababababab.320w.0000000000.avif", 320, 213, "image/avif", 900),
        Variant("static/_v/ab/abababababababab.320w.1111111111.jpg", 320, 213, "image/jpeg", 2000),
    )
    entry = Entry(key="static/img/a.0123456789ab.jpg", hash="ab" * 32, size=10,
                  content_type="image/jpeg", width=3000, height=2000, variants=variants)
    return Manifest({"img/a.jpg": entry})


def test_version_1_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(V1))
    manifest = Manifest.load(path)
    entry = manifest.files["img/a.jpg"]
    assert (entry.width, entry.height, entry.variants) == (None, None, ())


def test_manifest_without_images_is_written_as_version_1() -> None:
    manifest = Manifest.from_document(V1)
    assert json.loads(manifest.to_json())["version"] == 1


def test_version_2_round_trips_dimensions_and_variants(tmp_path: Path) -> None:
    manifest = _v2_manifest()
    path = tmp_path / "m.json"
    manifest.save(path)
    document = json.loads(path.read_text())
    assert document["version"] == 2
    raw = document["files"]["img/a.jpg"]
    assert (raw["width"], raw["height"]) == (3000, 2000)
    assert raw["variants"][0] == {"key": "static/_v/ab/abababababababab.320w.0000000000.avif",
                                  "width": 320, "height": 213, "content_type": "image/avif",
                                  "size": 900}
    assert Manifest.load(path) == manifest
    assert "static/_v/ab/abababababababab.320w.1111111111.jpg" in manifest.object_keys()


@pytest.mark.parametrize("version", [0, 4, "2", None])
def test_unknown_versions_are_refused(version: object) -> None:
    with pytest.raises(ManifestError, match="version 1, 2 or 3"):
        Manifest.from_document({**V1, "version": version})


def test_unsafe_variant_key_is_refused() -> None:
    document = json.loads(_v2_manifest().to_json())
    document["files"]["img/a.jpg"]["variants"][0]["key"] = "static/../secret.avif"
    with pytest.raises(ManifestError, match="unsafe key"):
        Manifest.from_document(document)


def test_malformed_variant_is_refused() -> None:
    document = json.loads(_v2_manifest().to_json())
    document["files"]["img/a.jpg"]["variants"][0]["width"] = "320"
    with pytest.raises(ManifestError, match="malformed"):
        Manifest.from_document(document)
