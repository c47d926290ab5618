"""deploy.py as someone else's project meets it: run from their folder with their environment
(in this process through ``main``, as a subprocess where only a process shows the point).

Only the flags a user would type; no ``--no-assets``. The project is a tmp folder
with its own ``static/`` (and sometimes its own ``pyproject.toml``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FOREIGN_FILES, S3Env, run_in_process, write_tree

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = str(ROOT / "deploy.py")


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_", "FLASK_"))}
    env.update(PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.update(extra)
    return env


def deploy_py(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``deploy.py ARGS`` from ``cwd`` with a user's environment, run in this process (the
    same exit code and output; the inner loop's time); :func:`deploy_py_process` runs the
    real process, for the tests that check what only a process shows."""
    return run_in_process(list(args), cwd=cwd, env=user_env(**env))


def deploy_py_process(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, DEPLOY, *args], cwd=cwd, env=user_env(**env),
                          capture_output=True, text=True, timeout=120, check=False)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle in error_lines[0], result.stderr


# --- the regression: any folder deploys, no demo bundles ---------------------------------

def test_deploying_another_folder_needs_no_extra_flag(project: Path) -> None:
    result = deploy_py_process("--static-dir", "static", "--target-dir", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Deployed 4 files" in result.stdout
    assert not (project / "static" / "gen").exists()  # our demo's bundles stay ours
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    assert sorted(manifest["files"]) == ["css/site.css", "img/cat.png", "img/raw/cat.psd",
                                         "js/app.js"]


def test_deploying_another_folder_to_a_bucket(project: Path, s3: S3Env) -> None:
    result = deploy_py("--static-dir", str(project / "static"), "--bucket", s3.bucket,
                       "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    stored = s3.keys("static/")
    assert "static/manifest.json" in stored
    assert not any("gen/" in key for key in stored)


def test_the_embedded_default_in_another_project(project: Path) -> None:
    result = deploy_py(cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Using the embedded default")
    assert not (project / "static" / "gen").exists()


def test_from_a_subfolder_without_static_the_error_names_the_static_folder(project: Path) -> None:
    (project / "docs").mkdir()
    result = deploy_py(cwd=project / "docs")
    assert_clean_error(result, 2, "static folder 'static' does not exist")
    assert "base.css" not in result.stderr and "bundle" not in result.stderr


def test_our_own_pyproject_still_builds_the_demo_bundles_from_a_subfolder(tmp_path: Path) -> None:
    # site/ has no pyproject.toml: the repository's is found above it. (--no-variants: its
    # photos' variants are tested elsewhere; here they would only cost a minute of encoding.)
    result = deploy_py("--target-dir", str(tmp_path / "cdn"), "--manifest",
                       str(tmp_path / "m.json"), "--no-hash-cache", "--no-variants",
                       cwd=ROOT / "site")
    assert result.returncode == 0, result.stderr
    assert "Built 2 bundle(s)" in result.stderr
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert {"gen/site.css", "gen/app.js"} <= set(manifest["files"])


# --- the pyproject table -----------------------------------------------------------------

def write_pyproject(project: Path, table: str) -> Path:
    path = project / "pyproject.toml"
    path.write_text(f'[project]\nname = "theirs"\n\n[tool.flask-cdn-pipeline]\n{table}\n')
    return path


def test_the_pyproject_table_configures_the_deploy_relative_to_its_folder(project: Path) -> None:
    (project / "static").rename(project / "public")
    write_pyproject(project, 'static-dir = "public"\ntarget-dir = "out"\n'
                             'manifest = "build/m.json"\nexclude = ["raw/"]\n')
    (project / "src" / "deep").mkdir(parents=True)
    result = deploy_py(cwd=project / "src" / "deep")  # relative paths: the pyproject's folder
    assert result.returncode == 0, result.stderr
    manifest = json.loads((project / "build" / "m.json").read_text())
    assert "img/raw/cat.psd" not in manifest["files"] and "img/cat.png" in manifest["files"]
    assert (project / "out" / manifest["files"]["img/cat.png"]["key"]).is_file()


def test_show_config_names_each_source_flag_over_env_over_pyproject(project: Path) -> None:
    pyproject = write_pyproject(project, 'prefix = "from-pyproject"\nworkers = 4\n'
                                         'bucket = "py-bucket"\ninclude = ["img/**"]\n')
    result = deploy_py("--show-config", "--json", "--workers", "8", cwd=project,
                       CDN_PREFIX="from-env")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    settings = shown["settings"]
    assert shown["config_file"] == str(pyproject)
    assert settings["workers"] == {"value": 8, "source": "--workers"}
    assert settings["prefix"] == {"value": "from-env", "source": "env CDN_PREFIX"}
    assert settings["bucket"]["value"] == "py-bucket"
    assert settings["bucket"]["source"].startswith(str(pyproject))
    assert settings["include"]["value"] == ["img/**"]
    assert settings["max-attempts"] == {"value": 6, "source": "default"}
    assert "max_attempts" not in settings  # the table's key names
    text = deploy_py("--show-config", cwd=project)
    assert text.returncode == 0
    assert any(line.startswith("prefix") and "from-pyproject" in line for line in
               text.stdout.splitlines())
    assert not (project / "build").exists()  # nothing deployed


@pytest.mark.parametrize(("table", "needle"), [
    ('statc-dir = "x"', "unknown key 'statc-dir'"),
    ('static_dir = "x"', "did you mean 'static-dir'"),
    ('workers = "8"', "'workers'"),
    ('exclude = "*.psd"', "'exclude'"),
    ('bucket = ""', "'bucket'"),
])
def test_a_bad_pyproject_table_is_exit_2_naming_key_and_file(
    project: Path, table: str, needle: str
) -> None:
    pyproject = write_pyproject(project, table)
    result = deploy_py(cwd=project)
    assert_clean_error(result, 2, needle, str(pyproject))
    assert not (project / "build").exists()


# --- include / exclude, and what a dry run says it leaves out -----------------------------

def test_dry_run_lists_what_is_left_out_and_why(project: Path) -> None:
    result = deploy_py("--exclude", "*.psd", "--dry-run", cwd=project)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "left out   img/raw/cat.psd (excluded by '*.psd')" in out
    assert "left out   .DS_Store (dotfile)" in out
    assert "left out   notes.txt~ (OS or editor junk)" in out
    data = json.loads(deploy_py("--include", "img/**", "--dry-run", "--json", cwd=project).stdout)
    assert sorted(data["plan"]) == ["img/cat.png", "img/raw/cat.psd"]
    assert data["ignored"]["js/app.js"] == "matches no include pattern"
    assert not (project / "build" / "cdn-manifest.json").exists()


def test_excluded_files_are_never_hashed_or_uploaded(project: Path) -> None:
    (project / "static" / "drafts").mkdir()
    (project / "static" / "drafts" / "secret.txt").write_bytes(b"draft")
    result = deploy_py("--exclude", "drafts/", "--exclude", "**/*.psd", "--target-dir", "out",
                       cwd=project)
    assert result.returncode == 0, result.stderr
    stored = {p.name for p in (project / "out").rglob("*") if p.is_file()}
    assert not any("secret" in name or name.endswith(".psd") for name in stored)


# --- small things a user types ------------------------------------------------------------

def test_version_and_usage_lines_name_the_real_command(project: Path) -> None:
    from importlib.metadata import version

    result = deploy_py_process("--version", cwd=project)
    assert result.returncode == 0
    assert (
        result.stdout.strip() == f"deploy.py (flask-cdn-pipeline) {version('flask-cdn-pipeline')}"
    )
    assert deploy_py("--help", cwd=project).stdout.startswith("Usage: deploy.py [OPTIONS]")
    for command in ("releases", "verify", "rollback", "prune", "private", "serve"):
        result = deploy_py(command, "--help", cwd=project)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: deploy.py {command} [OPTIONS]")


@pytest.mark.parametrize(("command", "absent", "present"), [
    ("releases", ["--static-dir", "--cdn-url", "--manifest", "--dry-run"], ["--bucket", "--json"]),
    ("rollback", ["--static-dir", "--cdn-url", "--workers"], ["--manifest", "--invalidate"]),
    ("prune", ["--static-dir", "--cdn-url", "--manifest"], ["--keep", "--dry-run"]),
    ("verify", ["--cdn-url", "--manifest"], ["--static-dir", "--repair"]),
])
def test_subcommand_help_lists_only_options_that_apply(
    project: Path, command: str, absent: list[str], present: list[str]
) -> None:
    text = deploy_py(command, "--help", cwd=project).stdout
    for option in absent:
        assert option not in text, option
    for option in present:
        assert option in text, option


def test_quiet_and_verbose_together_are_a_usage_error(project: Path) -> None:
    assert_clean_error(deploy_py_process("-q", "-v", cwd=project), 2, "-q and -v")


def test_verbose_without_a_terminal_prints_one_line_per_file(project: Path) -> None:
    result = deploy_py("-v", "--target-dir", "out", cwd=project)
    assert result.returncode == 0
    assert len([line for line in result.stderr.splitlines() if "] uploaded " in line]) == 4


def test_static_url_path_flag_rewrites_root_absolute_references(tmp_path: Path) -> None:
    """An app serving static/ at /assets: ``url(/assets/img/cat.png)`` is its file."""
    project = tmp_path / "assets-project"
    write_tree(project / "static", {"css/site.css": b"a{background:url(/assets/img/cat.png)}",
                                    "img/cat.png": FOREIGN_FILES["img/cat.png"]})
    result = deploy_py("--static-url-path", "/assets", "--target-dir", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())["files"]
    css = (project / "out" / manifest["css/site.css"]["key"]).read_text()
    image_name = manifest["img/cat.png"]["key"].split("/")[-1]
    assert css == f"a{{background:url(../img/{image_name})}}"

    without = deploy_py("--target-dir", "out2", cwd=project)  # /assets is not /static
    assert without.returncode == 0, without.stderr
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())["files"]
    assert (
        "url(/assets/img/cat.png)"
        in (project / "out2" / manifest["css/site.css"]["key"]).read_text()
    )


@pytest.mark.parametrize(("where", "env"), [
    (["--static-url-path", "assets"], {}),
    ([], {"CDN_STATIC_URL_PATH": "/as sets"}),
])
def test_bad_static_url_path_is_one_line_exit_2(project: Path, where: list[str],
                                                env: dict[str, str]) -> None:
    result = deploy_py(*where, "--target-dir", "out", cwd=project, **env)
    assert_clean_error(result, 2, "static URL path", "static_url_path")
    assert not (project / "out").exists()


def test_static_url_path_from_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nstatic-url-path = "/assets/"\n')
    result = deploy_py("--show-config", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["settings"]["static-url-path"]
    assert shown["value"] == "/assets" and "pyproject.toml" in shown["source"]


def test_the_deploy_switches_are_settings_the_table_and_show_config_see(project: Path) -> None:
    write_pyproject(project, 'target-dir = "out"\nrelist = true\ninvalidate = "E2QWRUHAPOMQZL"\n')
    result = deploy_py("--show-config", "--json", "--unsafe-no-conditional-writes", cwd=project)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["relist"]["value"] is True
    assert "pyproject.toml" in settings["relist"]["source"]
    assert settings["invalidate"]["value"] == "E2QWRUHAPOMQZL"
    assert settings["unsafe-no-conditional-writes"] == {
        "value": True, "source": "--unsafe-no-conditional-writes"}
    write_pyproject(project, 'target-dir = "out"\ninvalidate = "not an id"\n')
    refused = deploy_py(cwd=project)
    assert_clean_error(refused, 2, "distribution id 'not an id' is not valid")
    assert not (project / "out").exists()  # checked before anything is uploaded


def test_relist_from_the_table_restores_an_object_deleted_behind_the_deploys_back(
    project: Path,
) -> None:
    write_pyproject(project, 'target-dir = "out"\nmanifest = "m.json"\n')
    assert deploy_py(cwd=project).returncode == 0
    key = json.loads((project / "m.json").read_text())["files"]["img/cat.png"]["key"]
    (project / "out" / key).unlink()
    assert deploy_py(cwd=project).returncode == 0
    assert not (project / "out" / key).exists()  # an unchanged deploy lists nothing
    write_pyproject(project, 'target-dir = "out"\nmanifest = "m.json"\nrelist = true\n')
    result = deploy_py(cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "out" / key).is_file()
