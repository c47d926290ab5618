"""Inputs refused before anything is uploaded, and reports that tell the truth.

Run as a user does: ``deploy.py`` as a subprocess from a foreign project folder.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FOREIGN_FILES, S3Env, write_tree
from tests.test_foreign_project import assert_clean_error, deploy_py, user_env

ROOT = Path(__file__).resolve().parent.parent


def stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- file names that cannot be keys -------------------------------------------------------

def test_a_name_that_is_not_utf8_is_refused_before_any_upload(project: Path) -> None:
    os.makedirs(os.fsencode(project / "static" / "img"), exist_ok=True)
    with open(os.fsencode(project / "static" / "img") + b"/caf\xe9.png", "wb") as handle:
        handle.write(b"latin-1 name")
    result = deploy_py("--target-dir", "out", cwd=project)
    assert_clean_error(result, 2, r"'img/caf\xe9.png'", "not valid UTF-8")
    assert stored_files(project / "out") == []


@pytest.mark.parametrize("name", ["new\nline.png", "carriage\rreturn.png", "bell\x07.png",
                                  "esc\x1b[31m.png"])
def test_a_name_with_a_control_character_is_refused_and_printed_escaped(
    project: Path, name: str
) -> None:
    (project / "static" / name).write_bytes(b"x")
    result = deploy_py("--target-dir", "out", cwd=project)
    assert_clean_error(result, 2, repr(name), "control character")
    assert "\r" not in result.stderr and "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert stored_files(project / "out") == []


def test_a_name_that_is_skipped_may_be_odd(project: Path) -> None:
    (project / "static" / ".odd\nname").write_bytes(b"never deployed")
    result = deploy_py("--target-dir", "out", "--dry-run", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "left out   '.odd\\nname' (dotfile)" in result.stdout


def test_a_key_over_1024_bytes_is_refused_before_any_upload(project: Path, s3: S3Env) -> None:
    deep = project / "static" / "/".join(["d" * 200] * 4)
    deep.mkdir(parents=True)
    (deep / ("f" * 200 + ".png")).write_bytes(b"long")
    result = deploy_py("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert_clean_error(result, 2, "S3 allows 1024")
    assert s3.keys() == {}


# --- overlapping folders, empty settings ---------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--target-dir", "static/out"], "is inside the static folder"),
    (["--static-dir", "out/static", "--target-dir", "out"], "is inside the target folder"),
    (["--static-dir", "."], "is inside the static folder"),  # build/cdn, the embedded default
])
def test_overlapping_static_folder_and_target_are_refused(
    project: Path, args: list[str], needle: str
) -> None:
    write_tree(project / "out" / "static", {"a.txt": b"a"})
    result = deploy_py(*args, cwd=project)
    assert_clean_error(result, 2, needle)
    assert not (project / "static" / "out").exists() and not (project / "build").exists()


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--bucket="], {}, "--bucket is empty"),
    ([], {"CDN_BUCKET": ""}, "CDN_BUCKET is set but empty"),
    (["--prefix="], {}, "--prefix is empty"),
    (["--prefix", "/"], {}, "prefix '/' is empty"),
    (["--prefix", "a/../b"], {}, "not valid"),
    (["--prefix", " static"], {}, "not valid"),
    (["--prefix", "stat\x01ic"], {}, "control character"),
])
def test_empty_or_bad_target_settings_never_fall_back(
    project: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    result = deploy_py(*args, cwd=project, **env)
    assert_clean_error(result, 2, needle)
    assert not (project / "build").exists()  # not the local folder, not prefix 'static'


def test_flask_cdn_prints_a_config_error_as_one_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from flask import Flask\nfrom pipeline import CDN\n\napp = Flask(__name__)\n"
        "app.config['CDN_URL'] = 'cdn.example.com'\nCDN(app)\n")
    for command in (["cdn", "manifest"], ["cdn", "deploy"]):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "app.py", *command],
                                cwd=tmp_path, env=user_env(), capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "CDN_URL 'cdn.example.com'" in lines[0], result.stderr


def test_flask_cdn_deploy_reads_the_pyproject_table(tmp_path: Path) -> None:
    write_tree(tmp_path / "static", FOREIGN_FILES)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\ntarget-dir = "cdn-out"\nexclude = ["*.psd"]\n')
    (tmp_path / "app.py").write_text(
        "from flask import Flask\nfrom pipeline import CDN\n\napp = Flask(__name__)\nCDN(app)\n")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app.py", "cdn", "deploy",
                             "--json"], cwd=tmp_path, env=user_env(), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == 3 and summary["manifest"] == str(
        tmp_path / "build" / "cdn-manifest.json"
    )
    assert not any(p.suffix == ".psd" for p in stored_files(tmp_path / "cdn-out"))


# --- truthful reports ----------------------------------------------------------------------

def test_dry_run_after_a_rollback_says_a_new_release_would_replace_it(project: Path) -> None:
    assert deploy_py("--target-dir", "out", cwd=project).returncode == 0
    (project / "static" / "js" / "app.js").write_bytes(b"console.log(2);\n")
    assert deploy_py("--target-dir", "out", cwd=project).returncode == 0
    rolled = deploy_py("rollback", "--target-dir", "out", "--json", cwd=project)
    assert rolled.returncode == 0, rolled.stderr
    old = json.loads(rolled.stdout)["release"]

    text = deploy_py("--target-dir", "out", "--dry-run", cwd=project)
    assert f"would publish a new release (current is {old}, a rollback)" in text.stdout
    data = json.loads(deploy_py("--target-dir", "out", "--dry-run", "--json", cwd=project).stdout)
    assert data["new_release"] is True and data["current_is_rollback"] is True
    assert data["current_release"] == old


def test_dry_run_with_nothing_changed_says_the_live_release_stays(project: Path) -> None:
    first = json.loads(deploy_py("--target-dir", "out", "--json", cwd=project).stdout)
    data = json.loads(deploy_py("--target-dir", "out", "--dry-run", "--json", cwd=project).stdout)
    assert data["new_release"] is False and data["current_release"] == first["release"]


def test_the_summary_names_the_previous_release_not_the_current_one(project: Path) -> None:
    first = deploy_py("--target-dir", "out", "--json", cwd=project)
    release = json.loads(first.stdout)["release"]
    again = deploy_py("--target-dir", "out", cwd=project)
    assert f"Release: {release} (unchanged: already current)" in again.stdout
    assert "previous" not in again.stdout
    (project / "static" / "js" / "app.js").write_bytes(b"console.log(3);\n")
    changed = deploy_py("--target-dir", "out", cwd=project)
    assert f"(new release; previous: {release})" in changed.stdout


def test_an_unwritable_manifest_folder_is_found_before_publishing(project: Path) -> None:
    (project / "not-a-folder").write_text("a file")
    result = deploy_py("--target-dir", "out", "--manifest", "not-a-folder/m.json", cwd=project)
    assert_clean_error(result, 2, "not-a-folder/m.json", "not writable")
    assert stored_files(project / "out") == []


def test_a_manifest_write_failing_after_publishing_says_the_release_is_live(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipeline.release.local_manifest
    from pipeline.cli.main import main

    def disk_full(path: Path, data: bytes, *, unique: bool = False) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pipeline.release.local_manifest, "write_atomic", disk_full)
    code = main(["--static-dir", str(project / "static"), "--target-dir", str(project / "out"),
                 "--manifest", str(project / "m.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "is live" in err and "No space left on device" in err and "run the deploy again" in err
    assert (project / "out" / "static" / "manifest.json").is_file()  # published


def test_verify_with_no_manifest_under_the_prefix_is_a_usage_error(project: Path) -> None:
    (project / "out").mkdir()
    result = deploy_py("verify", "--target-dir", "out", "--prefix", "wrong", cwd=project)
    assert_clean_error(result, 2, "no manifest at 'wrong/manifest.json'")


def test_a_wrong_bucket_is_reported_before_any_bundle_is_built(project: Path, s3: S3Env) -> None:
    (project / "assets.py").write_text(
        "from webassets import Bundle\n"
        "BUNDLES = {'js': Bundle('js/app.js', output='gen/all.js')}\n")
    (project / "pyproject.toml").write_text('[tool.flask-cdn-pipeline]\nassets = "assets.py"\n')
    result = deploy_py("--bucket", "no-such-bucket", "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert_clean_error(result, 2, "no-such-bucket")
    assert not (project / "static" / "gen").exists()
    # With the right bucket, the configured bundle is built and deployed.
    result = deploy_py("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    assert (project / "static" / "gen" / "all.js").is_file()


def test_gitignore_covers_the_virtualenv_and_build_outputs() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in (".venv/", "/build/", "/static/gen/"):
        assert entry in ignored


def test_ctrl_c_after_publishing_does_not_claim_nothing_was_published(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipeline.cli.main
    from pipeline.cli.main import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.cli.main, "invalidate_after_publish", interrupted)
    code = main(["--static-dir", str(project / "static"), "--target-dir", str(project / "out"),
                 "--manifest", str(project / "m.json"), "--invalidate", "E2QWRUHAPOMQZL"])
    err = capsys.readouterr().err
    release = json.loads((project / "m.json").read_text())["release"]
    assert code == 130
    assert f"interrupted after release {release} was published" in err
    assert "nothing was published" not in err
