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


def test_help_and_version_name_the_program_that_was_invoked(
        installed: InstalledTool, project: Path) -> None:
    expected = version("flask-cdn-pipeline")
    for program, args in (("cdn-deploy", ()), ("python -m pipeline", ("python", "-m", "pipeline"))):
        command = args or (program,)
        result = installed.run(*command, "--version", cwd=project)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{program} (flask-cdn-pipeline) {expected}\n"
        usage = installed.run(*command, "--help", cwd=project).stdout.splitlines()
        assert usage[:2] == [f"Usage: {program} [OPTIONS]",
                             f"   or: {program} [COMMAND] [OPTIONS]"]
        assert f"({program} COMMAND --help)" in " ".join(
            installed.run(*command, "--help", cwd=project).stdout.split())


def test_python_dash_m_pipeline_deploys_a_foreign_project(
        installed: InstalledTool, project: Path) -> None:
    result = installed.run("python", "-m", "pipeline", "--json", cwd=project)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == 4 and report["uploaded"] == 4
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    key = manifest["files"]["img/cat.png"]["key"]
    assert (project / "build" / "cdn" / key).read_bytes() == (
        project / "static" / "img" / "cat.png").read_bytes()


APP = """\
from flask import Flask
from pipeline import CDN

app = Flask(__name__)
app.config["CDN_URL"] = "https://cdn.example.com"
CDN(app)
"""


def test_flask_cdn_lists_rolls_back_verifies_and_prunes_with_the_apps_settings(
        installed: InstalledTool, project: Path) -> None:
    (project / "app.py").write_text(APP)

    def flask(*args: str) -> dict[str, object]:
        result = installed.run("python", "-m", "flask", "--app", "app", "cdn", *args, "--json",
                               cwd=project)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    first = flask("deploy")["release"]
    (project / "static" / "js" / "app.js").write_text("console.log('second');\n")
    second = flask("deploy")["release"]
    listed = flask("releases")
    assert [r["id"] for r in listed["releases"]] == [first, second]  # type: ignore[index]
    assert listed["current"] == second

    rolled = flask("rollback")
    assert (rolled["release"], rolled["previous"]) == (first, second)
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    assert manifest["release"] == first  # the manifest the app reads
    assert flask("verify")["ok"] is True
    assert first in flask("prune", "--keep", "1", "--dry-run")["kept_releases"]  # type: ignore[operator]

    help_text = installed.run("python", "-m", "flask", "--app", "app", "cdn", "--help",
                              cwd=project).stdout
    for command in ("deploy", "releases", "verify", "rollback", "prune"):
        assert f"  {command} " in help_text
    epilog = " ".join(installed.run("python", "-m", "flask", "--app", "app", "cdn", "deploy",
                                    "--help", cwd=project).stdout.split())
    assert "flask cdn COMMAND --help)" in epilog and "releases" in epilog
    assert "(the default)" not in epilog  # flask cdn needs a command
