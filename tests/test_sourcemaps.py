"""Source maps on the CDN: comments point at the fingerprinted map, or go with a warning."""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

from pipeline.build.assemble import Build, build
from pipeline.build.fingerprint import HashCache
from pipeline.localfs import collect_files
from tests.helpers import write_tree

ROOT = Path(__file__).resolve().parent.parent

MAP = json.dumps({"version": 3, "file": "site.css", "sources": ["../scss/site.scss"],
                  "names": [], "mappings": "AAAA"}).encode()


def build_tree(tmp_path: Path, files: dict[str, bytes]) -> Build:
    root = write_tree(tmp_path / "static", files)
    return build(collect_files(root), prefix="static", cache=HashCache(None))


def body(result: Build, path: str, tmp_path: Path) -> str:
    data = result.bodies.get(path)
    if data is None:
        data = (tmp_path / "static" / path).read_bytes()
    return data.decode()


def key_name(result: Build, path: str) -> str:
    """The fingerprinted logical name (the key without the prefix)."""
    return result.manifest.files[path].key.removeprefix("static/")


def test_css_comment_points_at_the_fingerprinted_map(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {
        "css/site.css": b"body{color:red}\n/*# sourceMappingURL=site.css.map */\n",
        "css/site.css.map": MAP,
        "scss/site.scss": b"body { color: red; }",
    })
    css = body(result, "css/site.css", tmp_path)
    map_name = key_name(result, "css/site.css.map")
    assert re.fullmatch(r"css/site\.css\.[0-9a-f]{12}\.map", map_name)
    assert f"/*# sourceMappingURL={posixpath.basename(map_name)} */" in css
    # The map's sources name the fingerprinted source, relative to the map's folder.
    document = json.loads(body(result, "css/site.css.map", tmp_path))
    assert document["sources"] == ["../" + key_name(result, "scss/site.scss")]
    assert result.manifest.files["css/site.css"].size == len(css.encode())
    assert not result.warnings


def test_js_comment_is_rewritten_and_integrity_covers_the_new_bytes(tmp_path: Path) -> None:
    from pipeline.build.css import sri_hash

    result = build_tree(tmp_path, {
        "js/app.min.js": b"console.log(1);\n//# sourceMappingURL=app.min.js.map\n",
        "js/app.min.js.map": b'{"version":3,"sources":["app.js"],"mappings":"AAAA"}',
        "js/app.js": b"console.log(1)\n",
    })
    js = body(result, "js/app.min.js", tmp_path)
    map_name = posixpath.basename(key_name(result, "js/app.min.js.map"))
    assert js == f"console.log(1);\n//# sourceMappingURL={map_name}\n"
    entry = result.manifest.files["js/app.min.js"]
    assert entry.integrity == sri_hash(js.encode())
    assert json.loads(body(result, "js/app.min.js.map", tmp_path))["sources"] == [
        posixpath.basename(key_name(result, "js/app.js"))]


def test_a_changed_map_renames_the_file_that_points_at_it(tmp_path: Path) -> None:
    files = {"app.js": b"x()\n//# sourceMappingURL=app.js.map\n",
             "app.js.map": b'{"version":3,"sources":[],"mappings":"AAAA"}',
             "site.css": b"a{}\n/*# sourceMappingURL=site.css.map */",
             "site.css.map": b'{"version":3,"sources":[],"mappings":"AAAA"}'}
    first = build_tree(tmp_path / "one", files)
    files["app.js.map"] = files["site.css.map"] = b'{"version":3,"sources":[],"mappings":"AACA"}'
    second = build_tree(tmp_path / "two", files)
    for path in files:
        assert first.manifest.files[path].key != second.manifest.files[path].key, path


def test_comment_to_a_map_that_is_not_deployed_is_removed_with_a_warning(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {
        "js/app.js": b"run();\n//# sourceMappingURL=app.js.map\n// trailing note\n",
        "css/a.css": b"a{}\n/*# sourceMappingURL=a.css.map */\n",
    })
    js = body(result, "js/app.js", tmp_path)
    css = body(result, "css/a.css", tmp_path)
    assert "sourceMappingURL" not in js and "sourceMappingURL" not in css
    assert js == "run();\n\n// trailing note\n"  # line numbers of the code unchanged
    assert result.warnings == (  # by path
        "css/a.css: source map 'a.css.map' is not deployed: sourceMappingURL comment removed",
        "js/app.js: source map 'app.js.map' is not deployed: sourceMappingURL comment removed",
    )


def test_inline_and_foreign_maps_are_left_alone(tmp_path: Path) -> None:
    js = b"x();\n//# sourceMappingURL=data:application/json;base64,e30=\n"
    css = b"a{}\n/*# sourceMappingURL=https://maps.example.com/a.css.map */"
    result = build_tree(tmp_path, {"a.js": js, "a.css": css})
    assert body(result, "a.js", tmp_path).encode() == js
    assert body(result, "a.css", tmp_path).encode() == css
    assert not result.warnings


def test_deploy_serves_maps_at_the_urls_the_files_name(tmp_path: Path) -> None:
    """The real command from a foreign project: every map URL and source is a deployed object."""
    project = tmp_path / "project"
    write_tree(project / "static", {
        "css/site.css": b"body{color:red}\n/*# sourceMappingURL=site.css.map */\n",
        "css/site.css.map": MAP,
        "scss/site.scss": b"body { color: red; }",
        "js/app.js": b"go();\n//# sourceMappingURL=app.js.map\n",
        "js/app.js.map": b'{"version":3,"sources":["../src/app.ts"],"mappings":"AAAA"}',
        "js/old.js": b"old();\n//# sourceMappingURL=old.js.map\n",
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, str(ROOT / "deploy.py"), "--no-assets"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "js/old.js: source map 'old.js.map' is not deployed" in result.stderr
    cdn = project / "build" / "cdn"
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())["files"]
    followed = 0
    for logical in ("css/site.css", "js/app.js"):
        deployed = cdn / manifest[logical]["key"]
        url = re.search(r"sourceMappingURL=(\S+?)(?: \*/)?$", deployed.read_text().strip())
        assert url is not None
        map_file = deployed.parent / url[1]
        assert map_file.is_file(), url[1]
        for source in json.loads(map_file.read_text())["sources"]:
            if not source.startswith("../src/"):  # not deployed: sourcesContent's job
                assert (map_file.parent / source).is_file(), source
                followed += 1
    assert followed == 1
    old = (cdn / manifest["js/old.js"]["key"]).read_text()
    assert "sourceMappingURL" not in old
