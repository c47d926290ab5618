"""A Vite build deployed and loaded: Vite's names kept, its chunks in our manifest, the tags.

The ``dist/`` here is written by hand in the shape Vite 8 writes (an entry importing a shared
chunk and importing another chunk dynamically, a second entry sharing that chunk, CSS with a
``url()`` to an asset, a source map, a ``public/`` file), so these tests run without npm;
the real templates, built by Vite and loaded in Chromium, are in
``tests/e2e/test_vite_browser.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from pipeline import CDN
from pipeline.errors import MissingAssetError
from pipeline.keys import identity_key
from pipeline.manifest import Manifest
from tests.helpers import S3Env, run_json, target_args, write_tree

CDN_BASE = "https://cdn.example.com"

#: Vite's manifest for :data:`DIST` (keys and fields as Vite writes them).
VITE_MANIFEST = {
    "_shared-B7PI925R.js": {"file": "assets/shared-B7PI925R.js", "name": "shared",
                            "css": ["assets/shared-ChJ_j-JJ.css"]},
    "_util-Dq1aB2cD.js": {"file": "assets/util-Dq1aB2cD.js", "name": "util",
                          "imports": ["_shared-B7PI925R.js"]},
    "src/lazy.ts": {"file": "assets/lazy-C0nTeNt1.js", "name": "lazy", "src": "src/lazy.ts",
                    "isDynamicEntry": True, "imports": ["_shared-B7PI925R.js"]},
    "src/main.ts": {"file": "assets/main-BRBmoGS9.js", "name": "main", "src": "src/main.ts",
                    "isEntry": True, "imports": ["_util-Dq1aB2cD.js", "_shared-B7PI925R.js"],
                    "dynamicImports": ["src/lazy.ts"], "css": ["assets/main-CsUDhMuy.css"],
                    "assets": ["assets/hero-CLDdwZDr.png"]},
    "src/second.ts": {"file": "assets/second-Xy12Ab34.js", "name": "second",
                      "src": "src/second.ts", "isEntry": True,
                      "imports": ["_shared-B7PI925R.js"]},
    "src/assets/hero.png": {"file": "assets/hero-CLDdwZDr.png", "src": "src/assets/hero.png"},
}

DIST: dict[str, bytes] = {
    ".vite/manifest.json": json.dumps(VITE_MANIFEST).encode(),
    "assets/main-BRBmoGS9.js": (b'import{s}from"./shared-B7PI925R.js";import"./util-Dq1aB2cD.js";'
                                b'const l=()=>import("./lazy-C0nTeNt1.js");s(l);\n'
                                b"//# sourceMappingURL=main-BRBmoGS9.js.map\n"),
    "assets/main-BRBmoGS9.js.map": b'{"version":3,"sources":["../../src/main.ts"],"mappings":""}',
    "assets/util-Dq1aB2cD.js": b'import{s}from"./shared-B7PI925R.js";export const u=s;\n',
    "assets/shared-B7PI925R.js": b"export function s(x){return x}\n",
    "assets/lazy-C0nTeNt1.js": b'import{s}from"./shared-B7PI925R.js";export default s;\n',
    "assets/second-Xy12Ab34.js": b'import{s}from"./shared-B7PI925R.js";s(2);\n',
    "assets/main-CsUDhMuy.css": b".hero{background:url(./hero-CLDdwZDr.png)}\n",
    "assets/shared-ChJ_j-JJ.css": b"body{margin:0}\n",
    "assets/hero-CLDdwZDr.png": b"\x89PNG\r\n\x1a\n hero",
    "favicon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
}
#: What Vite named by content: each keeps its name (and the map beside its file).
VITE_NAMED = sorted(p for p in DIST if p.startswith("assets/"))


def vite_project(tmp_path: Path, *, dist_in: str = "dist") -> Path:
    """A project whose static folder holds a Vite ``dist/`` plus files of its own."""
    static = tmp_path / "static"
    write_tree(static / dist_in, DIST)
    write_tree(static, {"css/site.css": b"h1{background:url(../img/logo.png)}\n",
                        "img/logo.png": b"\x89PNG\r\n\x1a\n logo"})
    return static


def deploy(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, Any]:
    code, summary = run_json(capsys, [*args, "-q", "--no-assets"])
    assert code == 0, summary
    return summary


def folder_args(tmp_path: Path, static: Path) -> list[str]:
    return ["--static-dir", str(static), "--target-dir", str(tmp_path / "cdn"),
            "--manifest", str(tmp_path / "out" / "manifest.json"),
            "--hash-cache", str(tmp_path / "hash-cache.json"),
            "--prefix", "static"]


def test_vite_files_keep_their_names_and_bytes_others_are_fingerprinted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = vite_project(tmp_path)
    deploy(capsys, folder_args(tmp_path, static))
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    bucket = tmp_path / "cdn"
    for name in VITE_NAMED:
        entry = manifest.files[f"dist/{name}"]
        assert entry.key == f"static/dist/{name}"  # no second fingerprint
        stored = (bucket / entry.key).read_bytes()
        assert stored == DIST[name]  # byte for byte: no url() or import rewritten
        assert entry.hash == hashlib.sha256(stored).hexdigest()
    assert manifest.files["dist/assets/main-BRBmoGS9.js"].integrity
    # Not Vite's: fingerprinted as always, and our own CSS still rewritten.
    assert manifest.files["dist/favicon.svg"].key.startswith("static/dist/favicon.")
    site = manifest.files["css/site.css"]
    logo = manifest.files["img/logo.png"].key.removeprefix("static/")
    assert (bucket / site.key).read_bytes() == f"h1{{background:url(../{logo})}}\n".encode()
    # Every stored object is named once (no copy under a fingerprinted name), and Vite's
    # manifest, which lists source paths, is not uploaded.
    objects = {p.relative_to(bucket).as_posix() for p in bucket.rglob("*") if p.is_file()}
    assert {o for o in objects if o.startswith("static/dist/")} == {
        key for p, e in manifest.files.items() if p.startswith("dist/")
        for key in (e.key, *(s.key for s in e.encodings or ()))}  # and their .br/.gz
    assert not any(".vite" in o for o in objects)
    # The chunks are recorded with logical paths; an entry's closure is its static imports.
    assert manifest.vite is not None
    closure = manifest.vite.closure("src/main.ts")
    assert closure is not None
    assert closure.script == "dist/assets/main-BRBmoGS9.js"
    assert closure.preloads == ("dist/assets/shared-B7PI925R.js", "dist/assets/util-Dq1aB2cD.js")
    assert closure.css == ("dist/assets/main-CsUDhMuy.css", "dist/assets/shared-ChJ_j-JJ.css")


def test_verify_checks_vite_files_and_repair_restores_them_under_vite_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cli.main import main

    static = vite_project(tmp_path)
    args = folder_args(tmp_path, static)
    deploy(capsys, args)
    chunk = tmp_path / "cdn" / "static/dist/assets/shared-B7PI925R.js"
    chunk.write_bytes(b"export function s(x){return 'altered'}\n")
    assert main(["verify", *args, "--full", "-q"]) == 1
    assert main(["verify", *args, "--full", "--repair", "-q"]) == 0
    assert chunk.read_bytes() == DIST["assets/shared-B7PI925R.js"]


def make_app(tmp_path: Path, static: Path, **config: Any) -> Flask:
    app = Flask(__name__, static_folder=str(static))
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=str(tmp_path / "out" / "manifest.json"))
    app.config.update(config)
    CDN(app)
    return app


def tags_of(app: Flask, entry: str = "src/main.ts") -> str:
    with app.test_request_context():
        return render_template_string("{{ vite_tags(entry) }}", entry=entry)


def test_vite_tags_on_the_cdn_name_the_entry_its_static_closure_and_css(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = vite_project(tmp_path)
    deploy(capsys, folder_args(tmp_path, static))
    app = make_app(tmp_path, static, CDN_ENABLED=True)
    files = Manifest.load(tmp_path / "out" / "manifest.json").files

    def attrs(name: str) -> str:
        entry = files[f"dist/assets/{name}"]
        return (f'="{CDN_BASE}/{entry.key}" integrity="{entry.integrity}" '
                'crossorigin="anonymous"')

    assert tags_of(app).splitlines() == [
        f'<link rel="stylesheet" href{attrs("main-CsUDhMuy.css")}>',
        f'<link rel="stylesheet" href{attrs("shared-ChJ_j-JJ.css")}>',
        f'<link rel="modulepreload" href{attrs("shared-B7PI925R.js")}>',
        f'<link rel="modulepreload" href{attrs("util-Dq1aB2cD.js")}>',
        f'<script type="module" src{attrs("main-BRBmoGS9.js")}></script>',
    ]  # the dynamic import (lazy) is not preloaded
    assert "lazy" not in tags_of(app) and "second" not in tags_of(app)
    assert tags_of(app, "src/second.ts").count("modulepreload") == 1


def test_an_unknown_entry_raises_in_strict_mode_and_is_a_comment_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    static = vite_project(tmp_path)
    deploy(capsys, folder_args(tmp_path, static))
    strict = make_app(tmp_path, static, CDN_ENABLED=True, CDN_STRICT=True)
    with pytest.raises(MissingAssetError, match="src/nope"):
        tags_of(strict, "src/nope.ts")
    lenient = make_app(tmp_path, static, CDN_ENABLED=True)
    with caplog.at_level(logging.WARNING):
        out = tags_of(lenient, "src/--><script>x.ts")
    assert out.startswith("<!-- vite_tags: entry ") and out.endswith("-->")
    assert "<script" not in out and out.count("--") == 2  # the name cannot end the comment
    assert "is not in the manifest" in caplog.text


def test_dev_server_tags_and_the_react_preamble(tmp_path: Path) -> None:
    app = make_app(tmp_path, tmp_path, CDN_VITE_DEV_SERVER="http://127.0.0.1:5173/")
    assert tags_of(app).splitlines() == [
        '<script type="module" src="http://127.0.0.1:5173/@vite/client"></script>',
        '<script type="module" src="http://127.0.0.1:5173/src/main.ts"></script>']
    with app.test_request_context():
        preamble = render_template_string("{{ vite_react_refresh() }}")
    assert 'from "http://127.0.0.1:5173/@react-refresh"' in preamble
    assert "__vite_plugin_react_preamble_installed__ = true" in preamble
    off = make_app(tmp_path, tmp_path)
    with off.test_request_context():
        assert render_template_string("{{ vite_react_refresh() }}") == ""


def test_a_bad_dev_server_setting_is_a_config_error(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="CDN_VITE_DEV_SERVER"):
        make_app(tmp_path, tmp_path, CDN_VITE_DEV_SERVER="localhost:5173")


def test_cdn_off_tags_name_the_local_build(tmp_path: Path) -> None:
    static = vite_project(tmp_path)
    app = make_app(tmp_path, static, CDN_ENABLED=False)
    assert tags_of(app).splitlines()[-1] == \
        '<script type="module" src="/static/dist/assets/main-BRBmoGS9.js" ' \
        'crossorigin="anonymous"></script>'


@pytest.mark.parametrize(("case", "message"), [
    ("not a file", "--vite-manifest"),
    ("malformed", "chunk 'src/main.ts' is malformed"),
    ("escapes", "chunk 'src/main.ts' is malformed"),
    ("unhashed", "has no content hash"),
    ("two builds", "found 2 Vite manifests"),
])
def test_bad_vite_output_is_refused_before_anything_is_uploaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str,
) -> None:
    from pipeline.cli.main import main

    static = vite_project(tmp_path)
    manifest = static / "dist/.vite/manifest.json"
    extra: list[str] = []
    broken = dict(VITE_MANIFEST)
    if case == "not a file":
        extra = ["--vite-manifest", str(static / "nowhere.json")]
    elif case == "malformed":
        broken["src/main.ts"] = {"file": 3}
    elif case == "escapes":
        broken["src/main.ts"] = {"file": "../../secret.js"}
    elif case == "unhashed":
        write_tree(static / "dist", {"assets/main.js": b"x"})
        broken["src/main.ts"] = {"file": "assets/main.js", "isEntry": True}
    else:
        write_tree(static / "other", {".vite/manifest.json": b"{}"})
    manifest.write_text(json.dumps(broken))
    capsys.readouterr()
    assert main([*folder_args(tmp_path, static), *extra, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "cdn" / "static").exists()


def test_a_vite_manifest_named_by_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Two levels down is not found by itself; the setting names it (and its folder)."""
    static = vite_project(tmp_path, dist_in="build/web")
    args = folder_args(tmp_path, static)
    deploy(capsys, args)
    assert Manifest.load(tmp_path / "out" / "manifest.json").vite is None
    deploy(capsys, [*args, "--vite-manifest", str(static / "build/web/.vite/manifest.json")])
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    assert manifest.files["build/web/assets/main-BRBmoGS9.js"].key == \
        "static/build/web/assets/main-BRBmoGS9.js"
    assert manifest.vite is not None and "src/main.ts" in manifest.vite.chunks


@pytest.mark.parametrize("mode", ["pinned", "follow"])
def test_vite_tags_from_the_bucket_in_pinned_and_follow_modes(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str,
) -> None:
    static = vite_project(tmp_path, dist_in=".")
    release = deploy(capsys, target_args(s3, tmp_path, static))["release"]
    pinned = {"CDN_RELEASE": release} if mode == "pinned" else {}
    app = make_app(tmp_path, static, CDN_MANIFEST=f"s3://{s3.bucket}/static",
                   CDN_ENDPOINT_URL=s3.endpoint,
                   CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"), **pinned)
    try:
        tags = tags_of(app)
    finally:
        if (refresher := CDN.state(app).refresher) is not None:
            refresher.stop()
    assert f'src="{CDN_BASE}/static/assets/main-BRBmoGS9.js" integrity="sha384-' in tags
    assert tags.count('rel="modulepreload"') == 2
    # Early uploads (the bucket is listed first on a first deploy) used Vite's names too.
    keys = {o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    head = s3.client.head_object(Bucket=s3.bucket, Key="static/assets/main-BRBmoGS9.js")
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    # (their precompressed siblings beside them, under the same names plus .br/.gz)
    assert {identity_key(k) for k in keys if k.startswith("static/assets/")} == {
        f"static/{name}" for name in VITE_NAMED}


def test_vite_next_to_flask_assets_bundles_and_plain_files_in_one_deploy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's static folder (bundles built by flask-assets, CSS naming fonts and images)
    plus a Vite ``dist/``: one deploy, one page with both kinds of tags."""
    import shutil

    from pipeline.build.bundles import build_bundles, load_bundles
    from pipeline.flaskext.bundles import init_bundles

    root = Path(__file__).resolve().parent.parent
    static = tmp_path / "static"
    shutil.copytree(root / "static", static,
                    ignore=shutil.ignore_patterns("gen", ".webassets-cache"))
    bundles = load_bundles(root / "site" / "assets.py")
    build_bundles(bundles, static_dir=static)
    write_tree(static / "dist", DIST)
    deploy(capsys, folder_args(tmp_path, static))
    files = Manifest.load(tmp_path / "out" / "manifest.json").files
    app = make_app(tmp_path, static, CDN_ENABLED=True, CDN_STRICT=True)
    init_bundles(app, bundles)
    with app.test_request_context():
        page = render_template_string("{{ asset_tags('css_all') }}\n{{ vite_tags('src/main.ts') }}")
    site_css = files["gen/site.css"]
    assert f'href="{CDN_BASE}/{site_css.key}" integrity="{site_css.integrity}"' in page
    assert f'src="{CDN_BASE}/static/dist/assets/main-BRBmoGS9.js"' in page
    # The bundle's CSS was rewritten to fingerprinted names; Vite's CSS was not touched.
    stored = (tmp_path / "cdn" / site_css.key).read_text()
    assert re.search(r"url\([^)]*\.[0-9a-f]{12}\.", stored)
    assert (tmp_path / "cdn/static/dist/assets/main-CsUDhMuy.css").read_bytes() == \
        DIST["assets/main-CsUDhMuy.css"]


def test_the_closure_survives_cycles_and_long_chains() -> None:
    """Import cycles end at a chunk seen before; a forged 10,000-link chain is walked without
    recursion (a request must not die of a RecursionError)."""
    from pipeline.vitemanifest import ViteManifest

    cyclic = ViteManifest.from_document({
        "a.ts": {"file": "assets/a-AAAAAAAA.js", "isEntry": True, "imports": ["_b"]},
        "_b": {"file": "assets/b-BBBBBBBB.js", "imports": ["_c"]},
        "_c": {"file": "assets/c-CCCCCCCC.js", "imports": ["_b", "a.ts"]},
    }, source="test")
    closure = cyclic.closure("a.ts")
    assert closure is not None and closure.preloads == ("assets/c-CCCCCCCC.js",
                                                        "assets/b-BBBBBBBB.js")
    chain = {f"_{i}": {"file": f"assets/c{i}-ABCDEFGH.js", "imports": [f"_{i + 1}"]}
             for i in range(10_000)}
    chain["_10000"] = {"file": "assets/end-ABCDEFGH.js"}
    long = ViteManifest.from_document(chain, source="test").closure("_0")
    assert long is not None and len(long.preloads) == 10_000
    assert long.preloads[0] == "assets/end-ABCDEFGH.js"
