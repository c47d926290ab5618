"""The bucket key layout (pipeline.keys) and the import direction it allows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.keys import (
    manifest_key,
    object_key,
    release_id_of,
    release_key,
    releases_prefix,
)

RID = "20261124T161500.123Z-3f9a1c"


@pytest.mark.parametrize(("prefix", "expected"), [("static", "static/"), ("a/b", "a/b/"), ("", "")])
def test_every_key_sits_under_the_prefix(prefix: str, expected: str) -> None:
    assert object_key(prefix, "img/cat.0123456789ab.jpg") == f"{expected}img/cat.0123456789ab.jpg"
    assert manifest_key(prefix) == f"{expected}manifest.json"
    assert releases_prefix(prefix) == f"{expected}releases"
    assert release_key(prefix, RID) == f"{expected}releases/{RID}.json"


def test_release_id_of_reads_back_only_release_objects_of_that_prefix() -> None:
    assert release_id_of(release_key("static", RID), "static") == RID
    assert release_id_of(release_key("other", RID), "static") is None
    assert release_id_of("static/releases/notes.json", "static") is None
    assert release_id_of(f"static/releases/{RID}.txt", "static") is None
    assert release_id_of(f"static/releases/x/{RID}.json", "static") is None


def _packages(*names: str) -> tuple[str, ...]:
    """``names``, each checked to exist: after a rename, a check that a module is *not*
    loaded would otherwise pass for a name that no longer means anything."""
    import importlib.util

    for name in names:
        assert importlib.util.find_spec(name) is not None, f"{name} no longer exists"
    return names


def _loaded_by(module: str) -> set[str]:
    code = (f"import json, sys; import {module}; "
            "print(json.dumps(sorted(m for m in sys.modules)))")
    # This checkout's pipeline, not whichever one is installed (an editable install elsewhere).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env)
    return set(json.loads(out.stdout))


def test_reading_a_manifest_loads_no_build_release_or_storage() -> None:
    """The key layout (a leaf of string functions) it may load: a manifest checks each
    precompressed sibling's key against it."""
    loaded = _loaded_by("pipeline.manifest")
    assert not {m for m in loaded if m.startswith(_packages("pipeline.build", "pipeline.release",
                                                            "pipeline.storage"))}


def test_storage_does_not_import_release() -> None:
    loaded = _loaded_by("pipeline.storage.base")
    assert not {m for m in loaded if m.startswith(_packages("pipeline.release", "pipeline.build"))}


@pytest.mark.parametrize("key", ["static/app.0123456789ab.js", "a/b c+d#e?f%g.png", "café/ü.svg",
                                 "x/~_.-/y", "", "a\\b", "a;b=c&d@e:f!g$h'i(j)k*l,m.txt"])
def test_urls_quote_keys_like_urllib(key: str) -> None:
    """The fast path for plain keys gives exactly ``quote(key, safe="/")``."""
    from urllib.parse import quote

    from pipeline.urls import cdn_url, quote_key

    assert quote_key(key) == quote(key, safe="/")
    assert cdn_url("https://cdn.example.com//", key) == "https://cdn.example.com/" + quote(
        key, safe="/")
