"""flask-assets bundles through the pipeline: built, rewritten, uploaded, served with SRI."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from pipeline import CDN
from pipeline.build.bundles import build_bundles, load_bundles
from pipeline.build.css import find_references
from pipeline.build.mounts import Mounts
from pipeline.errors import ConfigError
from pipeline.flaskext.bundles import init_bundles
from pipeline.manifest import Manifest
from pipeline.release.publish import deploy
from pipeline.release.store import ReleaseStore
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.helpers import S3Env
from tests.installed import InstalledTool

ROOT = Path(__file__).resolve().parent.parent
ASSETS_FILE = ROOT / "site" / "assets.py"


@pytest.fixture
def site_static(tmp_path: Path) -> Path:
    """A copy of the demo's static folder with its bundles built."""
    static = tmp_path / "static"
    shutil.copytree(
        ROOT / "static", static, ignore=shutil.ignore_patterns("gen", ".webassets-cache")
    )
    assert build_bundles(load_bundles(ASSETS_FILE), static_dir=static) == [
        "gen/site.css",
        "gen/app.js",
    ]
    return static


@pytest.fixture
def deployed(s3: S3Env, site_static: Path, tmp_path: Path) -> tuple[Manifest, Path]:
    s3.allow_public_read("static/")
    storage = S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint))
    manifest_path = tmp_path / "manifest.json"
    deploy(folders=Mounts.single(site_static), store=ReleaseStore(storage, "static"),
           manifest_path=manifest_path)
    return Manifest.load(manifest_path), manifest_path


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_bundles_are_built_from_their_sources(site_static: Path) -> None:
    css = (site_static / "gen" / "site.css").read_text()
    assert "@font-face" in css and ".grid figure" in css  # both sources, joined
    js = (site_static / "gen" / "app.js").read_text()
    assert "window.demo.onReady = function" in js and "galleryReady" in js


def test_rebuilding_unchanged_bundles_leaves_their_files_untouched(site_static: Path) -> None:
    # A deploy or app reading static/ while another deploy builds must never see the
    # output rewritten under it (CI once refused a deploy: "gen/app.js was modified").
    output = site_static / "gen" / "app.js"
    before = output.stat()
    build_bundles(load_bundles(ASSETS_FILE), static_dir=site_static)
    after = output.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    source = site_static / "js" / "util.js"
    source.write_text(source.read_text() + "\nwindow.edited = true;\n")
    build_bundles(load_bundles(ASSETS_FILE), static_dir=site_static)
    assert "window.edited = true;" in output.read_text()
    assert output.stat().st_ino != before.st_ino  # replaced whole, never rewritten in place


def test_concurrent_installed_deploys_with_bundles_both_succeed(
    installed: InstalledTool, project: Path
) -> None:
    (project / "assets.py").write_text(
        "from webassets import Bundle\n"
        "BUNDLES = {'js_all': Bundle('js/app.js', 'js/big.js', output='gen/all.js')}\n"
    )
    # Big enough that one deploy's rebuild overlaps the other's read when both rewrote it.
    (project / "static" / "js" / "big.js").write_text("var x = 1;\n" * 200_000)
    args = ("--static-dir", "static", "--assets", "assets.py", "--target-dir", "cdn", "--json")
    for _ in range(3):
        running = [installed.popen("cdn-deploy", *args, cwd=project) for _ in range(2)]
        # Both are waited for before either is judged: a failed first one must not leave
        # the second running into the next test.
        finished = [(process, process.communicate(timeout=120)[1]) for process in running]
        for process, errors in finished:
            assert process.returncode == 0, errors
    manifest = Manifest.load(project / "build" / "cdn-manifest.json")
    stored = project / "cdn" / manifest.files["gen/all.js"].key
    assert stored.read_bytes() == (project / "static" / "gen" / "all.js").read_bytes()


def test_builders_racing_on_a_new_output_write_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deploys building the same bundle at once: the file is created once, never
    replaced under the other's walk (CI saw "'gen/all.js' was replaced by another file")."""
    import threading
    import time

    from pipeline.build import bundles

    written: list[int] = []
    real_write = bundles.write_atomic

    def slow_write(path: Path, data: bytes, *, unique: bool = False) -> None:
        time.sleep(0.05)  # widen the window between "is it there?" and the replace
        real_write(path, data, unique=unique)
        written.append(path.stat().st_ino)

    monkeypatch.setattr(bundles, "write_atomic", slow_write)
    output = tmp_path / "gen" / "all.js"
    start = threading.Barrier(4)

    def build() -> None:
        start.wait()
        bundles._write_if_changed(output, b"var x = 1;\n")

    builders = [threading.Thread(target=build) for _ in range(4)]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(timeout=30)
    assert len(written) == 1
    assert output.read_bytes() == b"var x = 1;\n"


def test_every_css_reference_on_the_bucket_resolves_to_an_existing_object(
    s3: S3Env, deployed: tuple[Manifest, Path]
) -> None:
    manifest, _ = deployed
    base = f"{s3.endpoint}/{s3.bucket}/"
    css_entry = manifest.files["gen/site.css"]
    css_url = base + urllib.parse.quote(css_entry.key)
    css = fetch(css_url).decode()
    references = [ref.url for ref in find_references(css)]
    local = [url for url in references if not url.startswith(("data:", "http:", "https:", "//"))]
    assert len(local) >= 6, references  # fonts x2, hero, logo x3, arrow
    keys = {entry.key for entry in manifest.files.values()}
    for url in local:
        assert re.search(r"\.[0-9a-f]{12}\.\w+", url), f"{url} is not fingerprinted"
        target = urllib.parse.urljoin(css_url, url)
        key = urllib.parse.unquote(urllib.parse.urlsplit(target).path)[len(f"/{s3.bucket}/"):]
        assert key in keys, f"{url} -> {key} is not a deployed object"
        assert fetch(target.split("#")[0]), f"{target} is empty"
    assert "?v=1#arrow" in css  # query and fragment survive the rewrite


def test_changing_an_image_renames_the_css_that_uses_it(site_static: Path) -> None:
    from pipeline.build.assemble import build
    from pipeline.build.fingerprint import HashCache
    from pipeline.localfs import collect_files

    before = build(collect_files(site_static), prefix="static", cache=HashCache(None)).manifest
    (site_static / "img" / "icons" / "arrow.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    after = build(collect_files(site_static), prefix="static", cache=HashCache(None)).manifest
    assert after.files["gen/site.css"].key != before.files["gen/site.css"].key
    assert after.files["css/gallery.css"].key != before.files["css/gallery.css"].key
    assert after.files["css/base.css"].key == before.files["css/base.css"].key
    assert after.files["gen/app.js"].key == before.files["gen/app.js"].key


def test_integrity_matches_the_uploaded_bytes(s3: S3Env, deployed: tuple[Manifest, Path]) -> None:
    manifest, _ = deployed
    for logical in ("gen/site.css", "gen/app.js", "css/base.css", "js/util.js"):
        entry = manifest.files[logical]
        data = s3.get(entry.key)["Body"].read()
        expected = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
        assert entry.integrity == expected
        assert entry.size == len(data)
    assert manifest.files["img/cat.jpg"].integrity is None


@pytest.mark.parametrize(("logical", "content_type"), [
    ("gen/site.css", "text/css; charset=utf-8"),
    ("gen/app.js", "text/javascript; charset=utf-8"),
    ("fonts/demo-bold.woff2", "font/woff2"),
    ("fonts/demo-bold.woff", "font/woff"),
])
def test_text_and_font_types_come_from_the_one_table(
    s3: S3Env, deployed: tuple[Manifest, Path], logical: str, content_type: str
) -> None:
    manifest, _ = deployed
    assert s3.get(manifest.files[logical].key)["ContentType"] == content_type


def make_app(static: Path, manifest_path: Path, **config: Any) -> Flask:
    app = Flask(__name__, static_folder=str(static))
    app.config.update({"CDN_URL": "https://cdn.example.com", "CDN_MANIFEST": manifest_path,
                       "ASSETS_DEBUG": False, **config})
    CDN(app)
    init_bundles(app, load_bundles(ASSETS_FILE))
    return app


def test_asset_tags_on_the_cdn_carry_integrity(deployed: tuple[Manifest, Path],
                                               site_static: Path) -> None:
    manifest, manifest_path = deployed
    app = make_app(site_static, manifest_path)
    with app.test_request_context():
        html = render_template_string('{{ asset_tags("css_all") }}\n{{ asset_tags("js_all") }}')
    css, js = manifest.files["gen/site.css"], manifest.files["gen/app.js"]
    assert (f'<link rel="stylesheet" href="https://cdn.example.com/{css.key}" '
            f'integrity="{css.integrity}" crossorigin="anonymous">') in html
    assert (f'<script src="https://cdn.example.com/{js.key}" integrity="{js.integrity}" '
            'crossorigin="anonymous" defer></script>') in html


def test_assets_block_yields_the_cdn_url_when_enabled(deployed: tuple[Manifest, Path],
                                                      site_static: Path) -> None:
    manifest, manifest_path = deployed
    app = make_app(site_static, manifest_path)
    with app.test_request_context():
        html = render_template_string('{% assets "css_all" %}{{ ASSET_URL }}{% endassets %}')
    assert html == f"https://cdn.example.com/{manifest.files['gen/site.css'].key}"


def test_development_serves_local_bundles_without_integrity(
    deployed: tuple[Manifest, Path], site_static: Path
) -> None:
    _, manifest_path = deployed
    app = make_app(site_static, manifest_path, CDN_ENABLED=False, ASSETS_DEBUG=True)
    with app.test_request_context():
        html = render_template_string('{{ asset_tags("css_all") }}')
    assert '<link rel="stylesheet" href="/static/css/base.css' in html
    assert '/static/css/gallery.css' in html and "integrity" not in html
    client = app.test_client()
    response = client.get("/static/css/base.css")
    assert response.status_code == 200 and b"@font-face" in response.data
    response.close()


def test_missing_assets_file_and_broken_bundle_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_bundles(tmp_path / "nope.py")
    bad = tmp_path / "assets.py"
    bad.write_text(
        "from webassets import Bundle\nBUNDLES = {'x': Bundle('missing.css', output='gen/x.css')}\n"
    )
    (tmp_path / "static").mkdir()
    with pytest.raises(ConfigError, match="bundle 'x'"):
        build_bundles(load_bundles(bad), static_dir=tmp_path / "static")


def test_the_deploy_command_builds_bundles_first(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    static = tmp_path / "static"
    shutil.copytree(
        ROOT / "static", static, ignore=shutil.ignore_patterns("gen", ".webassets-cache")
    )
    code = main(["--static-dir", str(static), "--assets", str(ASSETS_FILE), "--target-dir",
                 str(tmp_path / "cdn"), "--manifest", str(tmp_path / "m.json"), "--json"])
    assert code == 0, capsys.readouterr().err
    manifest = Manifest.load(tmp_path / "m.json")
    for output in ("gen/site.css", "gen/app.js"):
        stored = tmp_path / "cdn" / manifest.files[output].key
        assert stored.read_bytes() != (static / output).read_bytes() or output.endswith(".js")
    assert (
        b"../fonts/demo-bold."
        in (tmp_path / "cdn" / manifest.files["gen/site.css"].key).read_bytes()
    )


def test_a_broken_assets_file_stops_the_deploy_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli.main import main

    code = main(["--static-dir", str(ROOT / "static"), "--assets", str(tmp_path / "nope.py"),
                 "--target-dir", str(tmp_path / "cdn"), "--manifest", str(tmp_path / "m.json")])
    assert code == 2
    assert "nope.py" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_a_css_reference_to_a_missing_file_fails_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli.main import main

    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "a.css").write_text(
        "body {\n  color: red;\n  background: url(../img/gone.png);\n}\n"
    )
    args = ["--static-dir", str(static), "--no-assets", "--target-dir", str(tmp_path / "cdn"),
            "--manifest", str(tmp_path / "m.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "css/a.css:3" in err and "gone.png" in err
    assert not (tmp_path / "m.json").exists()

    assert main([*args, "--no-strict"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "css/a.css:3" in err
    stored = (tmp_path / "cdn" / Manifest.load(tmp_path / "m.json").files["css/a.css"].key)
    assert b"url(../img/gone.png)" in stored.read_bytes()  # left as written, not broken further
