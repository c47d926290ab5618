"""``verify --repair`` of an app deploy: objects of every folder the deploy took (the app's,
a blueprint's beside it, Flask-Admin's in its installed package) are restored from that
folder, and a file the deploy excluded is never read or uploaded. The repair resolves the
folders and filters as the deploy does, so what it rebuilds names the same objects."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from pipeline.manifest import Manifest
from pipeline.media_types import IMMUTABLE_CACHE_CONTROL
from tests.app_project import write_blog_project
from tests.helpers import S3Env, run_json, write_tree
from tests.installed import InstalledTool

#: Each test deploys Flask-Admin's 21 MB folder and repairs it (about 4 s of CPU): the full
#: suite runs them, the quick inner loop (-m "not slow") does not.
pytestmark = pytest.mark.slow

#: The deploy's settings live in the project's table, so deploy and verify read the same.
#: No precompression: brotli 11 over Flask-Admin's 21 MB was 15 s of each test, and the
#: siblings' repair is tested in tests/test_precompress_deploy.py.
TABLE = ('[tool.flask-cdn-pipeline]\napp = "blog:create_app"\nexclude = ["drafts/"]\n'
         'precompress = false\n')
#: Excluded drafts in the app's folder and the blueprint's: a strict build of either fails
#: (their url() names no file), so a repair that reads them cannot succeed.
DRAFTS = {"static/drafts/wip.css": b".x { background: url(nowhere.png); }\n",
          "gallery_assets/drafts/wip.css": b".y { background: url(nowhere.png); }\n"}
#: One file of each kind of folder: the app's, a blueprint's beside it, an extension's.
BROKEN = ("img/cat.png", "gallery/gallery-static/gallery.css",
          "gallery/gallery-static/img/frame.png", "admin/static/admin/css/bootstrap4/admin.css")


@pytest.fixture
def blog(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The blog project with excluded drafts, as the working directory, importable."""
    write_blog_project(project)
    write_tree(project, DRAFTS)
    (project / "pyproject.toml").write_text(TABLE)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    yield project
    sys.modules.pop("blog", None)


def break_and_repair(capsys: pytest.CaptureFixture[str], args: list[str],
                     read: Callable[[str], bytes], delete: Callable[[str], None],
                     ) -> Manifest:
    """Deploy, delete one object of each folder, ``verify --repair``: each comes back with
    the bytes the deploy stored; returns the deploy's manifest."""
    code, summary = run_json(capsys, args)
    assert code == 0, summary
    manifest = Manifest.load(Path(args[args.index("--manifest") + 1]))
    assert not [name for name in manifest.files if "drafts/" in name]
    keys = sorted(manifest.files[name].key for name in BROKEN)
    stored = {key: read(key) for key in keys}
    for key in keys:
        delete(key)

    code, report = run_json(capsys, ["verify", "--repair", *args])

    assert code == 0 and report["ok"], report
    assert sorted(report["repaired"]) == keys
    assert {key: read(key) for key in keys} == stored
    return manifest


def test_folder_target_repairs_every_folders_objects(
        blog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdn = blog / "cdn"
    args = ["--target-dir", str(cdn), "--manifest", str(blog / "out" / "m.json")]

    break_and_repair(capsys, args, lambda key: (cdn / key).read_bytes(),
                     lambda key: (cdn / key).unlink())

    assert not [path for path in cdn.rglob("*") if "drafts" in path.parts]


def test_s3_repairs_every_folders_objects_with_their_headers(
        s3: S3Env, blog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
            "--manifest", str(blog / "out" / "m.json")]

    manifest = break_and_repair(
        capsys, args, lambda key: s3.get(key)["Body"].read(),
        lambda key: s3.client.delete_object(Bucket=s3.bucket, Key=key))

    for name in BROKEN:
        obj = s3.get(manifest.files[name].key)
        assert obj["ContentType"] == manifest.files[name].content_type
        assert obj["CacheControl"] == IMMUTABLE_CACHE_CONTROL
    assert not [key for key in s3.keys() if "/drafts/" in key]


def test_flask_cdn_verify_repair_restores_a_blueprint_object(blog: Path) -> None:
    import blog as module  # the project's app module (the fixture put it on the path)

    app: Flask = module.create_app()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["cdn", "deploy", "-q"]).exit_code == 0
    manifest = Manifest.load(blog / "build" / "cdn-manifest.json")
    stored = blog / "build" / "cdn" / manifest.files[BROKEN[1]].key
    before = stored.read_bytes()
    stored.unlink()

    result = runner.invoke(args=["cdn", "verify", "--repair", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["repaired"] == [manifest.files[BROKEN[1]].key]
    assert stored.read_bytes() == before


def test_installed_verify_repair_restores_blueprint_and_extension_objects(
        installed: InstalledTool, project: Path) -> None:
    write_blog_project(project)
    write_tree(project, DRAFTS)
    deployed = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "deploy",
                             "--exclude", "drafts/", "-q", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    manifest = Manifest.load(project / "build" / "cdn-manifest.json")
    paths = [project / "build" / "cdn" / manifest.files[name].key for name in BROKEN[1:]]
    before = [path.read_bytes() for path in paths]
    for path in paths:
        path.unlink()

    flask = installed.run("python", "-m", "flask", "--app", "blog", "cdn", "verify",
                          "--repair", "--exclude", "drafts/", "--json", cwd=project)
    assert flask.returncode == 0, flask.stderr
    assert [path.read_bytes() for path in paths] == before
    paths[0].unlink()
    cli = installed.run("cdn-deploy", "verify", "--repair", "--app", "blog:create_app",
                        "--exclude", "drafts/", "--json", cwd=project)

    assert cli.returncode == 0, cli.stderr
    assert "Traceback" not in flask.stderr + cli.stderr
    assert json.loads(cli.stdout)["repaired"] == [manifest.files[BROKEN[1]].key]
    assert [path.read_bytes() for path in paths] == before
    assert not [path for path in (project / "build" / "cdn").rglob("*")
                if "drafts" in path.parts]
