"""Small promises of the real commands, checked from someone else's project folder.

Each test runs ``deploy.py`` as a subprocess with only the flags a user would type, in a tmp
folder with its own ``static/`` (the pattern of ``tests/test_foreign_project.py``).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import S3Env
from tests.test_foreign_project import DEPLOY, ROOT, assert_clean_error, deploy_py, user_env


def tree(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders), relative to it."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


# --- a dry run writes nothing anywhere ----------------------------------------------------

def test_a_dry_run_to_a_new_target_folder_creates_nothing(project: Path) -> None:
    before = tree(project)
    result = deploy_py("--dry-run", "--target-dir", "new/cdn", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Dry run: would upload 4 of 4 files" in result.stdout
    assert tree(project) == before  # neither new/ nor new/cdn/ nor build/
    real = deploy_py("--target-dir", "new/cdn", cwd=project)
    assert real.returncode == 0, real.stderr
    assert (project / "new" / "cdn" / "static" / "manifest.json").is_file()


def test_a_target_folder_that_cannot_be_created_is_exit_2_for_a_dry_run_too(
    project: Path
) -> None:
    (project / "NOTES").write_text("a file where the target's parent would be")
    before = tree(project)
    for flags in (["--dry-run"], []):
        result = deploy_py(*flags, "--target-dir", "NOTES/cdn", cwd=project)
        assert_clean_error(result, 2, "cannot create target folder 'NOTES/cdn'")
        assert tree(project) == before


# --- -q: no progress or notes; the result, warnings and errors remain ---------------------

def test_quiet_keeps_the_result_and_warnings_and_drops_every_progress_line(
    project: Path
) -> None:
    from PIL import Image

    Image.new("RGB", (640, 480), "teal").save(project / "static" / "img" / "photo.jpg")
    (project / "static" / "css" / "broken.css").write_text("a { background: url(gone.png) }\n")
    flags = ["--no-strict", "--variants", "--variant-widths", "320", "--variant-formats", "webp",
             "--variant-include", "**/*.jpg"]
    result = deploy_py(*flags, "-q", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deployed 6 files to local folder 'build/cdn': ")
    warnings = ["warning: css/broken.css:1: 'gone.png' points to 'css/gone.png', which is not in "
                "the static folder"]
    assert result.stderr.splitlines() == warnings  # no plan, variant or upload lines
    (project / "static" / "js" / "app.js").write_text("console.log(2);\n")
    loud = deploy_py(*flags, cwd=project)  # the same lines exist without -q
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.startswith("Using the embedded default")
    assert "6 files: 1 to upload" in loud.stderr and "image variants: " in loud.stderr
    assert set(warnings) <= set(loud.stderr.splitlines())


# --- rollback: the local manifest after the switch --------------------------------------

def deploy_twice(project: Path, s3: S3Env) -> tuple[list[str], list[str]]:
    """Two releases in the bucket; returns the target flags and the two release ids."""
    target = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint]
    ids = []
    for body in (b"console.log(1);\n", b"console.log(2);\n"):
        (project / "static" / "js" / "app.js").write_bytes(body)
        result = deploy_py(*target, "--json", cwd=project, **s3.server.credentials.env())
        assert result.returncode == 0, result.stderr
        ids.append(json.loads(result.stdout)["release"])
    return target, ids


def live_release(s3: S3Env) -> str:
    body = s3.client.get_object(Bucket=s3.bucket, Key="static/manifest.json")["Body"].read()
    return str(json.loads(body)["release"])


def limit_file_size() -> None:
    """In the child: files may not grow past 64 bytes (a full disk, as far as the manifest
    is concerned); writing more fails with EFBIG instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_a_rollback_whose_local_manifest_cannot_be_written_says_it_is_live(
    project: Path, s3: S3Env
) -> None:
    target, (first, second) = deploy_twice(project, s3)
    env = user_env(PYTHONDONTWRITEBYTECODE="1", **s3.server.credentials.env())
    result = subprocess.run([sys.executable, DEPLOY, "rollback", *target], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120, check=False,
                            preexec_fn=limit_file_size)
    assert_clean_error(result, 1, f"release {first} is live", "File too large",
                       f"deploy.py rollback {first}", "'static/manifest.json'")
    assert live_release(s3) == first
    local = project / "build" / "cdn-manifest.json"
    assert json.loads(local.read_text())["release"] == second  # untouched, not torn
    again = deploy_py("rollback", first, *target, cwd=project, **s3.server.credentials.env())
    assert again.returncode == 0, again.stderr
    assert f"Already current: {first} -> {first}" in again.stdout
    assert json.loads(local.read_text())["release"] == first


def test_a_rollback_checks_the_local_manifest_folder_before_switching(
    project: Path, s3: S3Env
) -> None:
    target, (_, second) = deploy_twice(project, s3)
    (project / "not-a-folder").write_text("a file")
    result = deploy_py("rollback", *target, "--manifest", "not-a-folder/m.json", cwd=project,
                       **s3.server.credentials.env())
    assert_clean_error(result, 2, "not-a-folder/m.json", "not writable")
    assert live_release(s3) == second


# --- serve: the folder the deploy wrote, found the way the deploy finds it ---------------

def test_serve_serves_the_target_dir_of_the_pyproject_table(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.flask-cdn-pipeline]\ntarget-dir = "cdn-out"\n')
    deployed = deploy_py(cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    manifest = (project / "cdn-out" / "static" / "manifest.json").read_bytes()
    (project / "src").mkdir()
    server = subprocess.Popen([sys.executable, DEPLOY, "serve", "--port", "0"],
                              cwd=project / "src", env=user_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the port is bound
        assert line.startswith(f"Serving {project / 'cdn-out'} at http://127.0.0.1:"), line
        base = line.split(" at ")[1].split(";")[0]
        with urllib.request.urlopen(f"{base}/static/manifest.json", timeout=10) as response:
            assert response.read() == manifest
    finally:
        server.terminate()
        server.wait(timeout=20)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_serve_of_a_project_that_deploys_to_a_bucket_asks_for_the_folder(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.flask-cdn-pipeline]\nbucket = "assets"\n')
    result = deploy_py("serve", "--port", "0", cwd=project)
    assert_clean_error(result, 2, "deploys to bucket 'assets'", "--dir")


# --- the demo site run as `flask --app site/app.py run` from another folder --------------

@contextmanager
def site_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The demo under Flask's dev server (no --debug) on a free port: its base URL, and a
    list that holds the server's stderr lines once the block ends."""
    with flask_server(str(ROOT / "site" / "app.py"), cwd=tmp_path,
                      FLASK_IMAGES_DIR=str(tmp_path / "uploads"),
                      FLASK_PRIVATE_DIR=str(tmp_path / "private"),
                      CDN_MANIFEST=str(tmp_path / "none.json"),
                      FLASK_CDN_VARIANT_CACHE=str(tmp_path / "variants"),
                      FLASK_SECRET_KEY="test-secret",
                      FLASK_DEMO_USERS='{"alice": "long secret"}') as running:
        yield running


@contextmanager
def flask_server(app: str, *, cwd: Path, **env: str) -> Iterator[tuple[str, list[str]]]:
    """``flask --app APP run --port 0`` in ``cwd``: the base URL, and the server's stderr
    lines (complete once the block ends)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", app, "run", "--port", "0"], cwd=cwd,
        env=user_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert server.stderr is not None
        base = ""
        for _ in range(20):  # Flask's banner, then the address once the port is bound
            line = server.stderr.readline()
            lines.append(line.rstrip("\n"))
            if "Running on http://" in line:
                base = line.split("Running on ")[1].strip()
                break
        assert base, lines
        yield base, lines
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
        lines.extend(err.splitlines())


def get_bytes(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_page(url: str) -> tuple[int, str]:
    status, body = get_bytes(url)
    return status, body.decode()


def test_the_demo_without_debug_renders_its_pages(tmp_path: Path) -> None:
    (tmp_path / "uploads").mkdir()
    with site_server(tmp_path) as (base, err):
        status, page = get_page(f"{base}/")
    assert status == 200, "\n".join(err)
    assert '<link rel="stylesheet" href="/static/gen/site.css' in page
    assert "Traceback" not in "\n".join(err)


def test_the_gallery_lists_the_other_uploads_when_one_name_is_not_utf8(tmp_path: Path) -> None:
    from PIL import Image

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name in ("first.png", "second.png"):
        Image.new("RGB", (30, 20), "teal").save(uploads / name)
    (uploads / os.fsdecode(b"caf\xe9.png")).write_bytes(b"not even an image")
    with site_server(tmp_path) as (base, err):
        pages = [get_page(f"{base}/") for _ in range(2)]
    for status, page in pages:
        assert status == 200, "\n".join(err)
        assert "<figcaption>first.png</figcaption>" in page
        assert "<figcaption>second.png</figcaption>" in page
    skipped = [line for line in err if "not listing" in line]
    assert skipped == ["gallery: not listing 'caf\\xe9.png': its name is not valid UTF-8; "
                       "rename the file"]  # once, and without the folder's path
    assert "Traceback" not in "\n".join(err)


# --- development pictures plan what the deploy publishes ---------------------------------

THEIR_APP = """\
from flask import Flask, render_template_string
from pipeline import CDN

app = Flask(__name__)
CDN(app)


@app.get("/")
def index() -> str:
    return render_template_string("{{ picture('img/photo.jpg', 'a photo', sizes='50vw') }}")
"""


def test_development_pictures_use_the_variant_settings_of_the_pyproject_table(
    project: Path
) -> None:
    from PIL import Image

    Image.new("RGB", (800, 600), "teal").save(project / "static" / "img" / "photo.jpg")
    (project / "app.py").write_text(THEIR_APP)
    (project / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nvariants = true\nvariant-widths = [200, 400]\n'
        'variant-formats = ["webp"]\nvariant-include = ["img/*.jpg"]\n')
    deployed = deploy_py("--target-dir", "out", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    manifest = json.loads((project / "build" / "cdn-manifest.json").read_text())
    published = {v["key"].removeprefix("static/"): v["width"]
                 for v in manifest["files"]["img/photo.jpg"]["variants"]}
    assert sorted(set(published.values())) == [200, 400]
    # `flask --debug run`, as in development (the variant route exists only there), without
    # the reloader's second process
    with flask_server("app.py", cwd=project, FLASK_DEBUG="1", FLASK_RUN_RELOAD="false",
                      FLASK_RUN_DEBUGGER="false") as (base, err):
        status, page = get_page(f"{base}/")
        served = re.findall(r"/_variants/(\S+) (\d+)w", page)
        fetched = get_bytes(f"{base}/_variants/{served[0][0]}") if served else None
    assert status == 200, "\n".join(err)
    assert served and {key: int(width) for key, width in served}.items() <= published.items()
    assert {int(width) for _, width in served} == {200, 400}
    assert fetched == (200, (project / "out" / "static" / served[0][0]).read_bytes())
