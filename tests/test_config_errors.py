"""Configuration errors say which setting, where it came from, and the way out.

Run as a user does: the installed ``cdn-deploy`` (or this repository's ``deploy.py`` where
the scenario is this repository) from a project folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.installed import InstalledTool, user_env

ROOT = Path(__file__).resolve().parent.parent


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a clean exit 2."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_a_misspelled_key_gets_a_did_you_mean(installed: InstalledTool, project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_text('[tool.flask-cdn-pipeline]\nbucekt = "my-assets"\n')

    line = error_line(installed.run("cdn-deploy", cwd=project))

    assert "unknown key 'bucekt'" in line and "did you mean 'bucket'?" in line
    assert str(path) in line
    assert not (project / "build").exists()


def test_a_table_name_close_to_ours_is_warned_about(installed: InstalledTool,
                                                    project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_text('[tool.flask_cdn_pipeline]\ntarget-dir = "out"\n')

    result = installed.run("cdn-deploy", cwd=project)

    assert result.returncode == 0, result.stderr
    assert (f"warning: [tool.flask_cdn_pipeline] in {str(path)!r} is not read: did you mean "
            "[tool.flask-cdn-pipeline]?") in result.stderr.splitlines()
    shown = installed.run("cdn-deploy", "--show-config", cwd=project)
    assert "[tool.flask_cdn_pipeline]" in shown.stderr


def test_show_config_uses_the_tables_key_names(installed: InstalledTool, project: Path) -> None:
    result = installed.run("cdn-deploy", "--show-config", cwd=project)

    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert {"static-dir", "static-url-path", "hash-cache", "max-attempts",
            "variant-widths"} <= set(names)
    assert not [name for name in names if "_" in name]
    shown = json.loads(installed.run("cdn-deploy", "--show-config", "--json",
                                     cwd=project).stdout)
    assert shown["settings"]["static-dir"]["source"] == "default"


def test_a_duration_is_echoed_as_given(installed: InstalledTool, project: Path) -> None:
    assert installed.run("cdn-deploy", cwd=project).returncode == 0

    line = error_line(installed.run("cdn-deploy", "prune", "--grace", "1m", cwd=project))

    assert line.startswith("error: --grace 1m is shorter than the floor of 1h")


def test_a_missing_static_folder_names_the_setting_and_its_file(
        installed: InstalledTool, project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_text('[tool.flask-cdn-pipeline]\nstatic-dir = "public"\n')

    line = error_line(installed.run("cdn-deploy", cwd=project))

    assert f"static folder '{project / 'public'}' does not exist" in line
    assert f"static-dir from {path} [tool.flask-cdn-pipeline]" in line
    assert "--static-dir" in line
    path.write_text('[project]\nname = "theirs"\n')  # no table: the default applies
    (project / "static").rename(project / "public")
    default = error_line(installed.run("cdn-deploy", cwd=project / "public"))
    assert f"static folder '{project / 'static'}' does not exist" in default
    assert f"static-dir: the default, relative to the folder of {path}" in default


def test_our_bundles_with_another_static_dir_name_the_assets_setting(tmp_path: Path) -> None:
    # The scenario of the issue: this repository's root, its table's `assets`, another folder.
    other = tmp_path / "other"
    (other / "img").mkdir(parents=True)
    (other / "img" / "a.txt").write_text("a")

    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), "--static-dir", str(other),
         "--target-dir", str(tmp_path / "out"), "--manifest", str(tmp_path / "m.json")],
        cwd=ROOT, env=user_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=120, check=False)

    line = error_line(result)
    assert "cannot build bundle 'css_all'" in line and "base.css' does not exist" in line
    assert f"assets from {ROOT / 'pyproject.toml'} [tool.flask-cdn-pipeline]" in line
    assert "pass --no-assets" in line
    assert not (tmp_path / "out").exists()


def test_a_bad_value_names_its_source_and_the_way_out(installed: InstalledTool,
                                                      project: Path) -> None:
    from_env = error_line(installed.run("cdn-deploy", cwd=project, CDN_PREFIX="a/../b"))
    assert from_env.endswith("(from env CDN_PREFIX): fix CDN_PREFIX, or give --prefix, which "
                             "wins")
    path = project / "pyproject.toml"
    path.write_text('[tool.flask-cdn-pipeline]\nworkers = 500\n')
    from_table = error_line(installed.run("cdn-deploy", cwd=project))
    assert from_table.startswith("error: workers must be between 1 and 64, not 500")
    assert from_table.endswith(f"(from {path} [tool.flask-cdn-pipeline]): fix it there, or give "
                               "--workers, which wins")
    assert not (project / "build").exists()
