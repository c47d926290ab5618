"""``deploy.py serve``: the deployed folder as a CDN origin a browser accepts for SRI tags."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli.serve import cache_control_for
from tests.helpers import run_in_process, write_tree
from tests.installed import InstalledTool

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Deploy a foreign project's static/ to the embedded default, then run `deploy.py serve`
    (once for the module: its tests only read)."""
    project = tmp_path_factory.mktemp("served") / "project"
    write_tree(project / "static", {"css/site.css": b"body{color:red}",
                                    "js/app.js": b"go()", "fonts/f.woff2": b"wOF2",
                                    "img/i.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>"})
    # The deploy in this process (the same code and exit code); serve is the real process.
    deployed = run_in_process(["--no-assets", "-q"], cwd=project, env=_env())
    assert deployed.returncode == 0, deployed.stderr
    server = subprocess.Popen([sys.executable, str(ROOT / "deploy.py"), "serve", "--port", "0"],
                              cwd=project, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed (and flushed) once the port is bound
        assert line.startswith("Serving build/cdn at http://127.0.0.1:"), line
        yield line.split(" at ")[1].split(";")[0], project / "build" / "cdn"
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


def request(base: str, path: str, headers: dict[str, str] | None = None
            ) -> http.client.HTTPResponse:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path, headers=headers or {})  # raw path: no client normalising
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_objects_have_cors_type_and_cache_headers(served: tuple[str, Path]) -> None:
    base, folder = served
    expected = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".woff2": "font/woff2", ".svg": "image/svg+xml"}
    objects = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in expected)
    assert len(objects) == 4
    for path in objects:
        response = request(base, "/" + path.relative_to(folder).as_posix(),
                           {"Origin": "http://127.0.0.1:5000"})
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Content-Type"] == expected[path.suffix]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = request(base, "/" + path.relative_to(folder).as_posix(),
                        {"If-None-Match": response.headers["ETag"]})
        assert again.status == 304
    manifest = request(base, "/static/manifest.json")
    assert manifest.status == 200
    assert manifest.headers["Cache-Control"] == "public, max-age=60"


def test_nothing_outside_the_folder_nor_hidden_files_nor_listings(
    served: tuple[str, Path]
) -> None:
    base, folder = served
    (folder.parent / "secret.txt").write_text("secret")  # build/secret.txt, beside build/cdn
    for path in ("/../secret.txt", "/static/../../secret.txt", "/%2e%2e/secret.txt",
                 "/static/%2e%2e/%2e%2e/secret.txt", "/.cdn-lock", "/static/", "/",
                 "//etc/passwd"):
        assert request(base, path).status == 404, path


def test_serve_without_the_folder_is_a_usage_error(tmp_path: Path) -> None:
    # In this process: the `served` fixtures above run `serve` as real processes.
    result = run_in_process(["serve"], cwd=tmp_path, env=_env())
    assert result.returncode == 2
    assert result.stderr == ("error: folder 'build/cdn' does not exist: run `python deploy.py` "
                             "first or pass --dir\n")


def test_only_the_manifest_is_short_lived() -> None:
    assert cache_control_for("static/manifest.json") == "public, max-age=60"
    assert cache_control_for("static/css/a.0123456789ab.css").endswith("immutable")


def test_flask_cdn_serve_serves_the_folder_with_cors(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from flask import Flask\nfrom pipeline import CDN\n"
        "app = Flask(__name__)\nCDN(app)\n"
    )
    write_tree(tmp_path / "out", {"static/a.0123456789ab.css": b"a{}"})
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app.py", "cdn", "serve", "--dir", "out",
         "--port", "0"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("Serving out at http://127.0.0.1:"), line
        response = request(line.split(" at ")[1].split(";")[0], "/static/a.0123456789ab.css")
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture
def served_by_installed(installed: InstalledTool, project: Path) -> Iterator[tuple[str, Path]]:
    """A foreign project deployed and served by the installed ``cdn-deploy``, as a user runs it."""
    deployed = installed.run("cdn-deploy", "--no-assets", "-q", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    with installed.serving(cwd=project) as served:
        assert served.announced.startswith("Serving build/cdn at http://127.0.0.1:"), served
        yield served.url, project / "build" / "cdn"


def test_symlinks_out_of_the_folder_are_not_followed(
        served_by_installed: tuple[str, Path], tmp_path: Path) -> None:
    """A link in the served folder to a file (or folder) outside it is a 404, as is a link to
    a hidden file inside; a link to a file inside the folder is served as that file."""
    base, folder = served_by_installed
    secret = tmp_path / "secret.env"
    secret.write_text("AWS_SECRET_ACCESS_KEY=do-not-serve\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "notes.txt").write_text("private notes")
    inside = next(p for p in (folder / "static").rglob("*.css") if p.is_file())
    links = {"static/leak.css": secret, "static/outside": tmp_path / "outside",
             "static/lock.css": folder / ".cdn-lock", "static/alias.css": inside}
    for name, target in links.items():
        (folder / name).symlink_to(target)
    for path in ("/static/leak.css", "/static/outside/notes.txt", "/static/lock.css"):
        response = request(base, path)
        assert response.status == 404, path
    alias = request(base, "/static/alias.css")
    assert alias.status == 200 and alias.headers["Content-Type"] == "text/css; charset=utf-8"


def test_one_date_header_per_response(served_by_installed: tuple[str, Path]) -> None:
    """RFC 9110 allows one Date; the server's own and Werkzeug's used to both be sent."""
    base, folder = served_by_installed
    key = "/" + next(p for p in (folder / "static").rglob("*.css")).relative_to(
        folder).as_posix()
    first = request(base, key)
    again = request(base, key, {"If-None-Match": first.headers["ETag"]})
    missing = request(base, "/static/nothing.css")
    for response, status in ((first, 200), (again, 304), (missing, 404)):
        assert response.status == status
        assert len(response.headers.get_all("Date") or []) == 1, response.headers.items()
