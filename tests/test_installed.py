"""The installed tool, from a foreign project folder: what a user has after ``pip install``."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from tests.installed import InstalledTool


def test_the_installed_console_script_deploys_a_foreign_project(
        installed: InstalledTool, project: Path) -> None:
    result = installed.run("cdn-deploy", "--json", cwd=project)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["uploaded"] >= 1
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    css_key = manifest["files"]["css/site.css"]["key"]
    css = (project / "build" / "cdn" / css_key).read_text()
    cat_key = manifest["files"]["img/cat.png"]["key"]
    assert Path(cat_key).name in css  # the CSS names the fingerprinted image


def test_the_installed_version_is_this_checkouts(installed: InstalledTool, project: Path) -> None:
    result = installed.run("cdn-deploy", "--version", cwd=project)

    assert result.returncode == 0, result.stderr
    assert version("flask-cdn-pipeline") in result.stdout


def test_a_deploy_of_one_file_says_file_not_files(installed: InstalledTool, tmp_path: Path) -> None:
    project = tmp_path / "one"
    (project / "static").mkdir(parents=True)
    (project / "static" / "robots.txt").write_bytes(b"User-agent: *\n")
    result = installed.run("cdn-deploy", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Deployed 1 file to local folder 'build/cdn': 1 uploaded (14 B), 0 unchanged" in (
        result.stdout)
    assert "1 file: 1 to upload (14 B), 0 unchanged" in result.stderr
