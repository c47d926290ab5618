"""Several folders in one deploy (pipeline.build.mounts): where URLs land, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build.css import MissingReferenceError, build_css
from pipeline.build.mounts import Mount, Mounts
from pipeline.errors import ConfigError
from tests.helpers import write_tree


def two_folders(tmp_path: Path) -> Mounts:
    app = write_tree(tmp_path / "static", {"img/cat.png": b"cat"})
    admin = write_tree(tmp_path / "admin", {"css/a.css": b"", "img/x.png": b"x"})
    return Mounts.of(Mount(app, "/static", "", "the app's static folder"),
                     [Mount.blueprint("admin", admin, "/admin/static")])


def css_build(mounts: Mounts, css: bytes, *, strict: bool = True) -> bytes:
    files = {item.logical_path for item in mounts.scan().files}
    built = build_css(files, read=lambda _: css, hashes={p: "0" * 64 for p in files},
                      strict=strict, static_url_path=mounts.url_roots)
    return built.files["admin/static/css/a.css"].content


def test_css_references_resolve_through_the_folders(tmp_path: Path) -> None:
    mounts = two_folders(tmp_path)
    out = css_build(mounts, b"a{background:url(../img/x.png)} "
                            b"b{background:url(/static/img/cat.png)} "
                            b"c{background:url(/admin/static/img/x.png)}")
    assert out == (b"a{background:url(../img/x.000000000000.png)} "
                   b"b{background:url(../../../img/cat.000000000000.png)} "
                   b"c{background:url(../img/x.000000000000.png)}")


def test_a_relative_reference_cannot_climb_out_of_its_folder(tmp_path: Path) -> None:
    mounts = two_folders(tmp_path)
    with pytest.raises(MissingReferenceError, match="points outside the static folder"):
        css_build(mounts, b"a{background:url(../../../img/cat.png)}")


def test_a_folder_whose_files_fall_under_another_folders_path_is_refused(
        tmp_path: Path) -> None:
    app = write_tree(tmp_path / "static", {"admin/static/img/x.png": b"app's own"})
    admin = write_tree(tmp_path / "admin", {"img/x.png": b"x"})
    mounts = Mounts.of(Mount(app, "/static", "", "the app's static folder"),
                       [Mount.blueprint("admin", admin, "/admin/static")])
    with pytest.raises(ConfigError, match=r"the app's static folder.*blueprint 'admin'"):
        mounts.scan()


def test_a_blueprint_folder_inside_the_apps_is_deployed_with_it(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "static", {"shop/a.png": b"a"})
    mounts = Mounts.of(Mount(app, "/static"), [Mount.blueprint("shop", app / "shop", "/shop")])
    assert [item.logical_path for item in mounts.scan().files] == ["shop/a.png"]


def test_a_blueprint_folder_inside_another_blueprints_is_its_own_mount(tmp_path: Path) -> None:
    """Only the app's folder takes blueprint folders in (as url_for looks them up)."""
    app = write_tree(tmp_path / "static", {"a.png": b"a"})
    outer = write_tree(tmp_path / "outer", {"inner/x.png": b"x"})
    mounts = Mounts.of(Mount(app, "/static"), [Mount.blueprint("outer", outer, "/outer/static"),
                                               Mount.blueprint("inner", outer / "inner", "/in")])
    assert [item.logical_path for item in mounts.scan().files] == [
        "a.png", "in/x.png", "outer/static/inner/x.png"]
