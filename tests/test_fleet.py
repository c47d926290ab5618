"""App servers reading their manifest from the bucket or the CDN (moto over HTTP, real boto3).

Pinned (``CDN_RELEASE``) and follow modes, the 304 path counted at a proxy, start-up
without the source (last-known-good copy, error, or CDN off), hostile manifests
during refresh, three forked workers converging after a rollback, and
``flask cdn status`` from a foreign project folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for

from pipeline import CDN
from pipeline.errors import ConfigError
from pipeline.flaskext.status import status_blueprint
from pipeline.manifest import Manifest
from tests.faultproxy import FaultProxy, fault_proxy
from tests.helpers import S3Env, run_json, target_args

ROOT = Path(__file__).resolve().parent.parent
CDN_BASE = "https://cdn.example.com"
REFRESHER_LOG = "pipeline.serving.refresher"

AppFactory = Callable[..., Flask]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll on behaviour, bounded; the bound is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def deploy(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, Any]:
    code, summary = run_json(capsys, [*args, "-q", "--no-assets"])
    assert code == 0, summary
    return summary


def logo_key(tmp_path: Path) -> str:
    return Manifest.load(tmp_path / "out" / "manifest.json").files["img/logo.png"].key


def served(app: Flask) -> str:
    """What a page of ``app`` links for the logo, through a full request."""
    return app.test_client().get("/logo").get_data(as_text=True)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def make_app(tmp_path: Path, static_tree: Path) -> Iterator[AppFactory]:
    """Apps with a remote manifest; every refresher thread is stopped after the test."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = Flask(__name__, static_folder=str(static_tree))
        app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"))
        app.config.update(config)
        app.register_blueprint(status_blueprint, url_prefix="/_cdn")
        CDN(app)
        app.add_url_rule("/logo", "logo", lambda: url_for("static", filename="img/logo.png"))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        refresher = CDN.state(app).refresher
        if refresher is not None:
            refresher.stop()


@pytest.fixture
def args(s3: S3Env, static_tree: Path, tmp_path: Path) -> list[str]:
    return target_args(s3, tmp_path, static_tree)


def bucket_config(s3: S3Env, endpoint: str | None = None, **extra: Any) -> dict[str, Any]:
    # A start-up deadline well above the 5 s default: on a loaded CI machine SeaweedFS
    # once took longer than 5 s to answer, and these tests are not about the deadline
    # (the stall test sets its own).
    return {"CDN_MANIFEST": f"s3://{s3.bucket}/static", "CDN_STARTUP_DEADLINE": 30,
            "CDN_ENDPOINT_URL": endpoint or s3.endpoint, **extra}


def new_logo(static_tree: Path, tag: str) -> None:
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo " + tag.encode())


def responses(proxy: FaultProxy, path_end: str, status: int) -> int:
    return sum(n for key, n in proxy.responses.items()
               if key.startswith("GET ") and key.endswith(f"{path_end} {status}"))


# --- pinned and follow ----------------------------------------------------------------------


def test_pinned_mode_serves_the_named_release_and_polls_nothing(
    s3: S3Env, args: list[str], static_tree: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], make_app: AppFactory,
) -> None:
    v1 = deploy(capsys, args)["release"]
    key1 = logo_key(tmp_path)
    new_logo(static_tree, "v2")
    deploy(capsys, args)  # v2 is current; the app is pinned to v1
    app = make_app(**bucket_config(s3, CDN_RELEASE=v1))
    assert served(app) == f"{CDN_BASE}/{key1}"
    status = app.test_client().get("/_cdn/status")
    assert status.status_code == 200 and status.headers["Cache-Control"] == "no-store"
    report = status.get_json()
    assert report["mode"] == "pinned" and report["release"] == v1 and report["ok"] is True
    assert report["source"].startswith(f"s3://{s3.bucket}/static/releases/{v1}.json")
    # An immutable document never changes: no thread, even after requests.
    assert report["refresher_running"] is False


def test_follow_mode_picks_up_a_deploy_and_a_rollback_without_a_restart(
    s3: S3Env, args: list[str], static_tree: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], make_app: AppFactory,
) -> None:
    v1 = deploy(capsys, args)["release"]
    key1 = logo_key(tmp_path)
    app = make_app(**bucket_config(s3, CDN_REFRESH=0.1))
    assert served(app) == f"{CDN_BASE}/{key1}"
    assert CDN.state(app).refresher.running  # started by that first request

    new_logo(static_tree, "v2")
    v2 = deploy(capsys, args)["release"]
    key2 = logo_key(tmp_path)
    wait_for(lambda: served(app) == f"{CDN_BASE}/{key2}", "the app to serve the new deploy")
    wait_for(lambda: CDN.state(app).refresher.status.release == v2, "the status to say so")

    assert run_json(capsys, ["rollback", *args])[0] == 0
    wait_for(lambda: served(app) == f"{CDN_BASE}/{key1}", "the app to serve the rollback")
    wait_for(lambda: CDN.state(app).refresher.status.release == v1, "the status to say so")
    report = app.test_client().get("/_cdn/status").get_json()
    assert report["release"] == v1 and report["mode"] == "follow" and report["failures"] == 0
    # Every successful load is kept as the last-known-good copy (written just after the swap
    # the status reports, so waited for: the test must not race the refresher's fsync).
    published = s3.get("static/manifest.json")["Body"].read()
    last_good = tmp_path / "last-good.json"
    wait_for(lambda: last_good.is_file() and last_good.read_bytes() == published,
             "the rollback's manifest to be kept as the last-known-good copy")


def test_stop_ends_the_thread_and_a_request_does_not_restart_it(
    s3: S3Env, args: list[str], capsys: pytest.CaptureFixture[str], make_app: AppFactory,
) -> None:
    deploy(capsys, args)
    app = make_app(**bucket_config(s3, CDN_REFRESH=0.1))
    served(app)
    refresher = CDN.state(app).refresher
    assert refresher.running
    refresher.stop()
    assert not refresher.running
    served(app)
    assert not refresher.running


@pytest.mark.parametrize("kind", ["s3", "https"])
def test_an_unchanged_manifest_costs_one_304_and_a_change_one_full_read(
    kind: str, s3: S3Env, args: list[str], static_tree: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], make_app: AppFactory,
) -> None:
    deploy(capsys, args)
    s3.allow_public_read("static/")
    # For https the proxy plays the CDN: its root is the bucket (an origin path).
    options = {"origin_path": f"/{s3.bucket}"} if kind == "https" else {}
    with fault_proxy(s3.endpoint, **options) as proxy:
        config = (bucket_config(s3, proxy.url) if kind == "s3"
                  else {"CDN_MANIFEST": f"{proxy.url}/static/manifest.json"})
        app = make_app(**config)
        refresher = CDN.state(app).refresher
        for _ in range(3):
            assert refresher.refresh_once()
        assert responses(proxy, "static/manifest.json", 200) == 1  # start-up
        assert responses(proxy, "static/manifest.json", 304) == 3

        new_logo(static_tree, "v2")
        deploy(capsys, args)
        assert refresher.refresh_once()
        assert responses(proxy, "static/manifest.json", 200) == 2
        assert served(app) == f"{CDN_BASE}/{logo_key(tmp_path)}"


# --- start-up without the source -----------------------------------------------------------


def test_unreachable_bucket_at_start_serves_the_last_known_good_copy(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    release = deploy(capsys, args)["release"]
    make_app(**bucket_config(s3))  # a healthy start writes the copy
    with caplog.at_level(logging.WARNING, logger=REFRESHER_LOG):
        app = make_app(**bucket_config(s3, closed_port_url()))
    assert served(app) == f"{CDN_BASE}/{logo_key(tmp_path)}"
    warnings = [r for r in caplog.records if r.name == REFRESHER_LOG]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "last-known-good" in warnings[0].getMessage()
    report = app.test_client().get("/_cdn/status").get_json()
    assert report["loaded_from"] == "last-known-good" and report["release"] == release
    assert "cannot read" in report["last_error"]


def test_a_pinned_app_does_not_start_from_another_releases_copy(
    s3: S3Env, args: list[str], static_tree: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory,
) -> None:
    v1 = deploy(capsys, args)["release"]
    new_logo(static_tree, "v2")
    deploy(capsys, args)
    make_app(**bucket_config(s3))  # the copy now holds v2
    with pytest.raises(ConfigError, match=f"not the pinned CDN_RELEASE '{v1}'"):
        make_app(**bucket_config(s3, closed_port_url(), CDN_RELEASE=v1))


def test_unreachable_bucket_and_no_copy_is_a_clear_config_error(
    s3: S3Env, args: list[str], capsys: pytest.CaptureFixture[str], make_app: AppFactory,
) -> None:
    deploy(capsys, args)
    with pytest.raises(ConfigError) as caught:
        make_app(**bucket_config(s3, closed_port_url()))
    message = str(caught.value)
    assert "cannot read s3://" in message and "no usable last-known-good copy" in message
    assert "CDN_FALLBACK_LOCAL" in message


def test_fallback_local_starts_with_local_urls_and_switches_to_the_cdn_once_readable(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    deploy(capsys, args)
    with fault_proxy(s3.endpoint, fail_rate=1.0, methods=("GET",), kinds=("503",)) as proxy:
        with caplog.at_level(logging.WARNING, logger=REFRESHER_LOG):
            app = make_app(**bucket_config(s3, proxy.url, CDN_FALLBACK_LOCAL=True, CDN_STRICT=True))
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "CDN_FALLBACK_LOCAL" in errors[0].getMessage()
        assert served(app) == "/static/img/logo.png"  # local, and strict mode does not raise
        result = app.test_cli_runner().invoke(args=["cdn", "status", "--json"])
        assert result.exit_code == 1 and json.loads(result.output)["loaded_from"] == "none"

        proxy.fail_rate = 0.0
        assert CDN.state(app).refresher.refresh_once()
        assert served(app) == f"{CDN_BASE}/{logo_key(tmp_path)}"


def test_a_stalled_bucket_read_holds_neither_start_up_nor_a_second_thread(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory,
) -> None:
    """botocore's sockets cannot be shut from outside: the read is abandoned at the deadline,
    and no second one starts while it runs; once it ends, refreshes work again."""
    release = deploy(capsys, args)["release"]
    make_app(**bucket_config(s3))  # a healthy start writes the copy
    with fault_proxy(s3.endpoint, fail_rate=1.0, methods=("GET",), kinds=("stall",),
                     path_filter="manifest.json") as proxy:
        app = make_app(**bucket_config(s3, proxy.url, CDN_STARTUP_DEADLINE=1,
                                       CDN_REFRESH_DEADLINE=1))
        report = app.test_client().get("/_cdn/status").get_json()
        assert report["loaded_from"] == "last-known-good" and report["release"] == release
        assert "no complete answer within 1 s" in report["last_error"]
        assert report["reading_since"] is not None  # the abandoned read is still in flight
        refresher = CDN.state(app).refresher
        assert not refresher.refresh_once()
        assert "is still running" in (refresher.status.last_error or "")
        assert proxy.count("GET", "manifest.json") == 1  # no second read was started

        proxy.fail_rate = 0.0  # botocore's retry of the stalled read now gets an answer
        refresher.deadline = 60.0
        assert refresher.refresh_once()
        assert refresher.status.loaded_from == "source"
        assert refresher.status.reading_since is None


# --- bad refreshes -------------------------------------------------------------------------


def _hostile(document: dict[str, Any], change: str) -> bytes:
    if change == "not json":
        return b'{"version": 1, "files": {'
    if change == "wrong version":
        document["version"] = 99  # newer than any this reader knows
    elif change == "key outside the prefix":
        document["files"]["img/logo.png"]["key"] = "private/secrets.png"
    elif change == "dot-dot key":
        document["files"]["img/logo.png"]["key"] = "static/../private/secrets.png"
    return json.dumps(document).encode()


@pytest.mark.parametrize("change", ["not json", "wrong version", "key outside the prefix",
                                    "dot-dot key"])
def test_a_hostile_or_corrupt_manifest_is_never_swapped_in(
    change: str, s3: S3Env, args: list[str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], make_app: AppFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    deploy(capsys, args)
    good = f"{CDN_BASE}/{logo_key(tmp_path)}"
    app = make_app(**bucket_config(s3))
    copy = (tmp_path / "last-good.json").read_bytes()
    document = json.loads(s3.get("static/manifest.json")["Body"].read())
    s3.client.put_object(Bucket=s3.bucket, Key="static/manifest.json",
                         Body=_hostile(document, change))
    refresher = CDN.state(app).refresher
    with caplog.at_level(logging.INFO, logger=REFRESHER_LOG):
        assert not refresher.refresh_once()
        assert not refresher.refresh_once()
    assert served(app) == good
    assert [r.levelno for r in caplog.records if r.name == REFRESHER_LOG] == [logging.ERROR]
    assert refresher.status.failures == 2 and refresher.status.last_error
    assert (tmp_path / "last-good.json").read_bytes() == copy


def test_a_failing_source_keeps_the_table_logs_once_and_backs_off(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    deploy(capsys, args)
    good = f"{CDN_BASE}/{logo_key(tmp_path)}"
    with fault_proxy(s3.endpoint, methods=("GET",), kinds=("500", "reset")) as proxy:
        app = make_app(**bucket_config(s3, proxy.url, CDN_REFRESH=2))
        refresher = CDN.state(app).refresher
        assert refresher.next_delay() == 2
        proxy.fail_rate = 1.0
        with caplog.at_level(logging.INFO, logger=REFRESHER_LOG):
            for _ in range(3):
                assert not refresher.refresh_once()
            # The table itself, not a request: a request would start the thread, and its
            # own refreshes would add log lines.
            assert CDN.state(app).urls["img/logo.png"] == good
            assert refresher.next_delay() >= 2 * 2 * 0.75  # doubled twice, minus jitter
            proxy.fail_rate = 0.0
            assert refresher.refresh_once()
        records = [r for r in caplog.records if r.name == REFRESHER_LOG]
        # One line per streak, and its end at the streak's level: an alert on WARNING and
        # above sees the outage end, not only begin.
        assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
        assert "readable again after 3 failed" in records[1].getMessage()
        assert refresher.next_delay() == 2


# --- several processes ---------------------------------------------------------------------


def test_three_forked_workers_converge_on_a_deploy_and_a_rollback(
    s3: S3Env, args: list[str], static_tree: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = deploy(capsys, args)["release"]
    key1 = logo_key(tmp_path)
    out = tmp_path / "workers"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDN_URL": CDN_BASE,
           "CDN_MANIFEST": f"s3://{s3.bucket}/static", "CDN_ENDPOINT_URL": s3.endpoint,
           "CDN_REFRESH": "0.1", "CDN_MANIFEST_CACHE": str(tmp_path / "last-good.json")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/prefork_workers.py"), str(out), "3"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)

    def reports() -> list[dict[str, Any]]:
        found = []
        for index in range(3):
            try:
                found.append(json.loads((out / f"worker-{index}.json").read_text()))
            except (OSError, ValueError):
                return []
        return found

    def all_serve(key: str) -> bool:
        assert process.poll() is None, "the worker processes ended early"
        current = reports()
        return len(current) == 3 and all(r["url"] == f"{CDN_BASE}/{key}" for r in current)

    try:
        wait_for(lambda: all_serve(key1), "three workers serving the first release")
        parent = json.loads((out / "parent.json").read_text())["pid"]
        pids = {r["pid"] for r in reports()}
        assert len(pids) == 3 and parent not in pids
        wait_for(lambda: all(r["refresher_running"] for r in reports()), "a thread per worker")

        new_logo(static_tree, "v2")
        deploy(capsys, args)
        wait_for(lambda: all_serve(logo_key(tmp_path)), "all workers on the new deploy")
        assert run_json(capsys, ["rollback", *args])[0] == 0
        wait_for(lambda: all_serve(key1), "all workers on the rollback")
        assert {r["release"] for r in reports()} == {v1}
    finally:
        (out / "stop").touch()
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert process.returncode == 0, errors


# --- the command line, from someone else's project -----------------------------------------

THEIR_APP = '''
import os
from flask import Flask
from pipeline import CDN

app = Flask(__name__)
app.config.update(CDN_URL="https://cdn.example.com",
                  CDN_MANIFEST=os.environ["ASSETS_AT"],
                  CDN_ENDPOINT_URL=os.environ["S3_ENDPOINT"],
                  CDN_RELEASE=os.environ.get("BAKED_RELEASE"))
CDN(app)
'''


def test_flask_cdn_status_in_a_foreign_project_pinned_to_the_release_the_deploy_printed(
    s3: S3Env, tmp_path: Path,
) -> None:
    project = tmp_path / "their-project"
    (project / "static/css").mkdir(parents=True)
    (project / "static/css/site.css").write_text("body { color: teal }\n")
    (project / "their_app.py").write_text(THEIR_APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    deployed = subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), "--bucket", s3.bucket, "--endpoint-url",
         s3.endpoint, "--no-assets", "--json"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert deployed.returncode == 0, deployed.stderr
    release = json.loads(deployed.stdout)["release"]  # what a build bakes into the image

    env.update(ASSETS_AT=f"s3://{s3.bucket}/static", S3_ENDPOINT=s3.endpoint,
               BAKED_RELEASE=release)
    flask = [sys.executable, "-m", "flask", "--app", "their_app.py", "cdn", "status"]
    text = subprocess.run(flask, cwd=project, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert text.returncode == 0, text.stderr
    assert f"Release: {release} (1 files, loaded from source)" in text.stdout
    assert "Mode: pinned" in text.stdout and "Traceback" not in text.stderr
    # A pinned release is never re-read: no refresh interval is claimed for it.
    assert "(pinned: never refreshed" in text.stdout and "every" not in text.stdout
    as_json = subprocess.run([*flask, "--json"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["release"] == release
    assert report["mode"] == "pinned" and report["enabled"] is True and report["last_error"] is None


def test_status_of_a_local_manifest_file_names_its_release(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory,
) -> None:
    release = deploy(capsys, args)["release"]
    app = make_app(CDN_MANIFEST=str(tmp_path / "out" / "manifest.json"))
    result = app.test_cli_runner().invoke(args=["cdn", "status"])
    assert result.exit_code == 0, result.output
    assert "Mode: file" in result.output and f"Release: {release} (9 files" in result.output
    report = app.test_client().get("/_cdn/status").get_json()
    assert report["mode"] == "file" and report["release"] == release and report["ok"] is True
    assert report["reading_since"] is None  # the same fields as a remote source's status


def test_flask_cdn_deploy_publishes_where_the_app_reads_and_the_app_follows(
    s3: S3Env, tmp_path: Path, make_app: AppFactory,
) -> None:
    # The very first deploy: nothing to load yet, so the app starts with local URLs.
    app = make_app(**bucket_config(s3, CDN_FALLBACK_LOCAL=True))
    assert served(app) == "/static/img/logo.png"
    result = app.test_cli_runner().invoke(args=["cdn", "deploy", "--no-assets", "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == 9 and summary["manifest"] == str(tmp_path / "last-good.json")
    assert "static/manifest.json" in s3.keys("static/")
    assert CDN.state(app).refresher.refresh_once()
    assert served(app) == f"{CDN_BASE}/{logo_key_in(tmp_path / 'last-good.json')}"


def test_flask_cdn_manifest_names_the_source_and_the_last_known_good_copy(
    s3: S3Env, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_app: AppFactory,
) -> None:
    deploy(capsys, args)
    app = make_app(**bucket_config(s3))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cdn", "manifest", "img/logo.png"])
    assert result.exit_code == 0, result.output
    assert f"Manifest: s3://{s3.bucket}/static/manifest.json" in result.output
    assert f"Last-known-good copy: {tmp_path / 'last-good.json'}" in result.output
    assert f"img/logo.png -> {CDN_BASE}/{logo_key(tmp_path)}" in result.output
    report = json.loads(runner.invoke(args=["cdn", "manifest", "--json"]).output)
    assert report["source"].startswith(f"s3://{s3.bucket}/static/manifest.json")
    assert report["manifest"] == str(tmp_path / "last-good.json") and report["files"] == 9


def logo_key_in(manifest: Path) -> str:
    return Manifest.load(manifest).files["img/logo.png"].key


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "message"), [
    ({"CDN_MANIFEST": "build/m.json", "CDN_RELEASE": "20261124T161500.123Z-3f9a1c"},
     "CDN_RELEASE needs CDN_MANIFEST to be a bucket"),
    ({"CDN_MANIFEST": "s3://assets/static", "CDN_RELEASE": "latest"}, "release id 'latest'"),
    ({"CDN_MANIFEST": "s3://assets/static", "CDN_REFRESH": "often"}, "CDN_REFRESH must be"),
    ({"CDN_MANIFEST": "s3://assets/static", "CDN_REFRESH": 0}, "CDN_REFRESH must be between"),
    ({"CDN_MANIFEST": "s3://Not_A_Bucket/static"}, "bucket name 'Not_A_Bucket'"),
    ({"CDN_MANIFEST": "s3://assets/../static"}, "prefix"),
    ({"CDN_MANIFEST": "https://cdn.example.com/static/manifest.json?sig=1"}, "query"),
    ({"CDN_MANIFEST": "https://cdn.example.com/static",
      "CDN_ENDPOINT_URL": "http://127.0.0.1:9000"}, "s3:// CDN_MANIFEST only"),
])
def test_bad_source_settings_fail_at_start_up_with_one_clear_message(
    config: dict[str, Any], message: str, make_app: AppFactory,
) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        make_app(**config)


def test_start_up_reads_its_settings_and_opens_the_source_once(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One pass: the manifest source is opened (and its location checked) once, and
    ``CDN_ENABLED`` read once, however the decision goes."""
    import pipeline.flaskext.state as state

    opened: list[str] = []
    flags: list[str] = []
    real_open, real_flag = state.open_source, state.parse_flag
    monkeypatch.setattr(state, "open_source",
                        lambda settings: opened.append(settings.location) or real_open(settings))
    monkeypatch.setattr(state, "parse_flag",
                        lambda value, name: flags.append(name) or real_flag(value, name))

    make_app(CDN_MANIFEST="https://127.0.0.1:9/static/manifest.json", CDN_ENABLED=False)

    assert opened == ["https://127.0.0.1:9/static/manifest.json"]
    assert flags.count("CDN_ENABLED") == 1
