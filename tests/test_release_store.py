"""ReleaseStore: the key layout with the prefix bound, and the documents it reads and writes."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import make_release
from pipeline.release.prune import prune
from pipeline.release.store import ReleaseStore
from pipeline.releasedoc import ReleaseDoc, files_digest
from pipeline.storage.folder import FolderStorage

RID = "20261124T161500.123Z-3f9a1c"
ONE = Manifest({"a.png": Entry("a/b/a.0123456789ab.png", "h" * 64, 1, "image/png")})


def test_the_store_names_every_key_under_its_prefix(tmp_path: Path) -> None:
    store = ReleaseStore(FolderStorage(tmp_path), "a/b")
    assert store.manifest_key == "a/b/manifest.json"
    assert store.releases_prefix == "a/b/releases"
    assert store.release_key(RID) == f"a/b/releases/{RID}.json"
    assert store.object_key("img/cat.0123456789ab.jpg") == "a/b/img/cat.0123456789ab.jpg"


def test_release_ids_are_the_release_objects_of_this_prefix_oldest_first(tmp_path: Path) -> None:
    store = ReleaseStore(FolderStorage(tmp_path), "static")
    older = "20251124T161500.123Z-000000"
    listing = [f"static/releases/{RID}.json", f"static/releases/{older}.json",
               "static/releases/pruning-x.json", f"other/releases/{RID}.json",
               "static/manifest.json", "static/a.0123456789ab.png"]
    assert store.release_ids(listing) == [older, RID]


def test_a_stored_release_made_current_is_read_back_byte_for_byte(tmp_path: Path) -> None:
    store = ReleaseStore(FolderStorage(tmp_path / "cdn"), "a/b")
    doc = store.store_release(make_release(ONE, {}))
    assert doc.release_id is not None
    assert store.point_current(doc, expected=store.read_current(), retry=False) == 0
    stored = tmp_path / "cdn" / "a" / "b"
    assert (stored / "manifest.json").read_bytes() == doc.to_json()
    assert (stored / "releases" / f"{doc.release_id}.json").read_bytes() == doc.to_json()
    assert store.read_current().release_id == doc.release_id
    assert store.read_release(doc.release_id).manifest == ONE
    assert store.read_releases([doc.release_id, doc.release_id]) == {doc.release_id: doc}
    assert store.release_ids(store.list()) == [doc.release_id]


def test_a_release_document_has_one_canonical_layout_and_digest() -> None:
    """Encoded piece by piece (never holding every entry as a dict): sorted keys, one member
    per line, and the id's digest is the SHA-256 of the files' own canonical bytes."""
    files = {f"d/{i}.png": Entry(f"s/d/{i}.0123456789ab.png", f"{i:064x}", i, "image/png")
             for i in range(3)}
    files["app.js"] = Entry("s/app.0123456789ab.js", "e" * 64, 9, "text/javascript",
                            integrity="sha384-x")
    doc = make_release(Manifest(files), {"s/app.0123456789ab.js": "etag1"}, {"d/1.png": "b1"})
    data = doc.to_json()
    parsed = json.loads(data)
    assert parsed["files"] == Manifest(files).document()["files"] and parsed["version"] == 1
    assert parsed["etags"] == {"s/app.0123456789ab.js": "etag1"}
    assert parsed["git_blobs"] == {"d/1.png": "b1"}
    lines = data.decode().splitlines()
    assert lines[:3] == ["{", '  "created": ' + json.dumps(doc.created) + ",", '  "etags": {']
    assert lines[6] == '    "app.js": {"content_type": "text/javascript", "hash": "' + "e" * 64 \
        + '", "integrity": "sha384-x", "key": "s/app.0123456789ab.js", "size": 9},'
    assert data.endswith(b'  "version": 1\n}\n')
    assert ReleaseDoc.from_json(data, source="t").to_json() == data
    digest = hashlib.sha256(Manifest(files).to_json()).hexdigest()
    assert files_digest(Manifest(files)) == digest and doc.release_id.endswith(digest[:6])
    assert Manifest({}).to_json() == b'{\n  "files": {},\n  "version": 1\n}\n'


def test_reading_a_missing_release_is_a_usage_error(tmp_path: Path) -> None:
    store = ReleaseStore(FolderStorage(tmp_path), "static")
    with pytest.raises(ConfigError, match=f"release '{RID}' does not exist"):
        store.read_release(RID)
    with pytest.raises(ConfigError, match="is not valid"):
        store.read_release("../manifest")


@pytest.mark.parametrize("keep", [0, -1])
def test_prune_refuses_to_keep_no_release_before_touching_storage(tmp_path: Path,
                                                                  keep: int) -> None:
    store = ReleaseStore(FolderStorage(tmp_path / "cdn"), "static")
    with pytest.raises(ConfigError, match="keep >= 1"):
        prune(store, keep=keep, grace=timedelta(days=7))
    assert not (tmp_path / "cdn").exists() or not any((tmp_path / "cdn").rglob("*"))
