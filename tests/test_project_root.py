"""Which ``pyproject.toml`` a run uses, and where its default ``build/`` paths go.

Run as a user does: the installed ``cdn-deploy`` from a folder of a foreign project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import FOREIGN_FILES, write_tree
from tests.installed import InstalledTool

#: An ``assets`` file that leaves a mark when it is run (a planted table's payload).
PAYLOAD = ("from pathlib import Path\n"
           "Path(__file__).with_name('RAN').write_text('x')\nBUNDLES = {}\n")


def plant(folder: Path) -> Path:
    """A ``pyproject.toml`` whose table runs :data:`PAYLOAD` and sends files elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payload.py").write_text(PAYLOAD)
    path = folder / "pyproject.toml"
    path.write_text('[tool.flask-cdn-pipeline]\nassets = "payload.py"\nprefix = "planted"\n')
    return path


def test_a_pyproject_above_the_repository_root_is_not_read(
        installed: InstalledTool, tmp_path: Path) -> None:
    plant(tmp_path)
    repo = tmp_path / "their-repo"
    write_tree(repo / "static", FOREIGN_FILES)
    (repo / ".git").mkdir()

    result = installed.run("cdn-deploy", "--json", cwd=repo)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "RAN").exists()
    assert json.loads(result.stdout)["manifest_key"] == "static/manifest.json"
    assert "pyproject.toml" not in result.stderr
    shown = installed.run("cdn-deploy", "--show-config", "--json", cwd=repo)
    assert json.loads(shown.stdout)["config_file"] is None


def test_a_pyproject_owned_by_another_user_is_ignored_with_a_warning(
        installed: InstalledTool, tmp_path: Path) -> None:
    planted = plant(tmp_path / "shared")
    os.chown(planted, 12345, 12345)
    project = tmp_path / "shared" / "their-project"
    write_tree(project / "static", FOREIGN_FILES)

    result = installed.run("cdn-deploy", cwd=project)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "shared" / "RAN").exists()
    assert (f"warning: ignored {str(planted)!r}: it is owned by uid 12345, not by you or root"
            in result.stderr)
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    assert manifest["files"]["img/cat.png"]["key"].startswith("static/")


def test_the_first_line_names_the_pyproject_in_use(installed: InstalledTool,
                                                   project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_text('[tool.flask-cdn-pipeline]\ntarget-dir = "out"\n')
    (project / "docs").mkdir()

    result = installed.run("cdn-deploy", cwd=project / "docs")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"pyproject.toml: {path}"


APP = """\
from flask import Flask, url_for
from pipeline import CDN

app = Flask(__name__)
app.config["CDN_URL"] = "https://cdn.example.com"
CDN(app)
with app.test_request_context():
    print(url_for("static", filename="js/app.js"))
"""


def test_a_run_from_a_subfolder_writes_build_at_the_project_root(
        installed: InstalledTool, project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "theirs"\n\n[tool.flask-cdn-pipeline]\nstatic-dir = "static"\n')
    (project / "app.py").write_text(APP)
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)

    first = installed.run("cdn-deploy", "--json", cwd=deep)
    assert first.returncode == 0, first.stderr
    (project / "static" / "js" / "app.js").write_text("console.log('changed');\n")
    second = installed.run("cdn-deploy", "--json", cwd=deep)
    assert second.returncode == 0, second.stderr

    assert not (deep / "build").exists() and not (project / "src" / "build").exists()
    build = project / "build"
    assert {p.name for p in build.iterdir()} >= {"cdn", "cdn-manifest.json",
                                                 ".cdn-hash-cache.json"}
    manifest = json.loads((build / "cdn-manifest.json").read_text())
    key = manifest["files"]["js/app.js"]["key"]
    assert (build / "cdn" / key).read_text() == "console.log('changed');\n"
    # The app, run from the project root, reads the manifest the subfolder run wrote.
    served = installed.run("python", "app.py", cwd=project)
    assert served.stdout.strip() == f"https://cdn.example.com/{key}", served.stderr
