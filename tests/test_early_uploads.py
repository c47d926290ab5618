"""Uploads that start while the deploy is still hashing (pipeline.release.early).

The order of events is asserted with events, not clocks: a file's hashing is held until an
upload has finished, which only happens if uploads run while files are still being hashed.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import pipeline.build.assemble as assemble
import pipeline.storage.s3 as s3_module
from pipeline.cli.main import main
from pipeline.cli.reporting import ProgressReporter
from pipeline.localfs import LocalFile
from pipeline.manifest import Manifest
from pipeline.release.early import UploadFeed, UploadsStopped
from pipeline.storage.base import Upload
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, write_tree
from tests.test_cli import FakeClock, _plan_and_uploads
from tests.test_foreign_project import assert_clean_error, deploy_py

#: Generous bound on waiting for an upload: reached only if uploads wait for all hashing.
GATE_SECONDS = 30.0


def _images(count: int) -> dict[str, bytes]:
    return {f"img/{i:03d}.png": b"\x89PNG\r\n\x1a\n" + f"image {i}".encode() * 50
            for i in range(count)}


def test_uploads_begin_before_the_last_file_is_hashed(
    s3: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = _images(12)
    files["img/zzz-last.png"] = b"\x89PNG\r\n\x1a\n hashed last in its worker's slice"
    static = write_tree(tmp_path / "static", files)
    uploaded = threading.Event()
    seen: dict[str, bool] = {}

    real_upload = s3_module.S3Storage._upload_one
    real_hash = assemble._hash_local

    def upload_one(self: s3_module.S3Storage, upload: Upload) -> str | None:
        etag = real_upload(self, upload)
        uploaded.set()
        return etag

    def hash_local(item: LocalFile, *rest: Any) -> str:
        if item.logical_path == "img/zzz-last.png":
            seen["an upload finished before this file was hashed"] = uploaded.wait(GATE_SECONDS)
        return real_hash(item, *rest)

    monkeypatch.setattr(s3_module.S3Storage, "_upload_one", upload_one)
    monkeypatch.setattr(assemble, "_hash_local", hash_local)
    code = main(["--bucket", s3.bucket, "--endpoint-url", s3.endpoint, "--static-dir",
                 str(static), "--manifest", str(tmp_path / "m.json"), "--no-hash-cache",
                 "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert seen == {"an upload finished before this file was hashed": True}
    assert summary["uploaded"] == 13
    manifest = Manifest.load(tmp_path / "m.json")
    for logical, entry in manifest.files.items():
        assert s3.get(entry.key)["Body"].read() == files[logical]


def test_a_foreign_project_uploads_while_hashing_then_publishes_everything(
    tmp_path: Path, s3: S3Env,
) -> None:
    project = tmp_path / "their-project"
    files = {**_images(5), "css/site.css": b"body { background: url(../img/003.png); }\n"}
    write_tree(project / "static", files)
    result = deploy_py("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, "-v", cwd=project,
                       **s3.server.credentials.env())
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "] uploaded " in line]
    assert len(lines) == 6
    # The CSS, named after the images it references, is queued only once the plan is known.
    css_line = next(line for line in lines if "static/css/site." in line)
    assert "/6] uploaded" in css_line
    published = Manifest.from_json(s3.get("static/manifest.json")["Body"].read())
    for logical, entry in published.files.items():
        body = s3.get(entry.key)["Body"].read()
        if logical.endswith(".png"):
            assert body == files[logical]
    css = s3.get(published.files["css/site.css"].key)["Body"].read()
    assert published.files["img/003.png"].key.rsplit("/", 1)[1].encode() in css


def test_a_broken_css_reference_uploads_nothing_although_images_stream(
    tmp_path: Path, s3: S3Env,
) -> None:
    project = tmp_path / "their-project"
    write_tree(project / "static", {**_images(20),
                                    "css/site.css": b"a { background: url(../img/gone.png) }"})
    result = deploy_py("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'img/gone.png', which is not in the static folder" in result.stderr
    assert s3.keys() == {}


def test_a_key_too_long_for_s3_uploads_nothing(tmp_path: Path, s3: S3Env) -> None:
    project = tmp_path / "their-project"
    deep = "/".join(["folder-" + "x" * 90] * 11) + "/deep.png"
    write_tree(project / "static", {**_images(20), deep: b"\x89PNG deep"})
    result = deploy_py("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, cwd=project,
                       **s3.server.credentials.env())
    assert_clean_error(result, 2, "deep.png", "1024")
    assert s3.keys() == {}


def test_a_fresh_checkout_of_the_released_files_lists_and_writes_nothing(
    tmp_path: Path, s3: S3Env,
) -> None:
    # No hash cache (a CI checkout): every file is read, but all have the release's paths
    # and sizes, so the deploy hashes first and finds nothing to do: no listing, no probe.
    project = tmp_path / "their-project"
    write_tree(project / "static", _images(6))
    args = ("--bucket", s3.bucket, "--no-hash-cache", "--json")
    first = deploy_py(*args, "--endpoint-url", s3.endpoint, cwd=project,
                      **s3.server.credentials.env())
    assert first.returncode == 0, first.stderr
    with fault_proxy(s3.endpoint) as proxy:
        again = deploy_py(*args, "--endpoint-url", proxy.url, cwd=project,
                          **s3.server.credentials.env())
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["uploaded"] == 0
    assert [r for r in proxy.requests if not r.startswith(("GET", "HEAD"))] == []
    assert proxy.count("GET", "list-type=2") == 0


def test_a_rerun_with_one_new_file_lists_first_and_uploads_just_it(
    tmp_path: Path, s3: S3Env,
) -> None:
    project = tmp_path / "their-project"
    files = _images(6)
    write_tree(project / "static", files)
    args = ("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, "--no-hash-cache", "--json")
    assert deploy_py(*args, cwd=project, **s3.server.credentials.env()).returncode == 0
    (project / "static" / "img" / "new.png").write_bytes(b"\x89PNG\r\n\x1a\n a new one")
    again = deploy_py(*args, cwd=project, **s3.server.credentials.env())
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["uploaded"] == 1 and summary["new_release"] is True
    key = Manifest.load(project / "build" / "cdn-manifest.json").files["img/new.png"].key
    assert s3.get(key)["Body"].read() == b"\x89PNG\r\n\x1a\n a new one"


# --- the feed ------------------------------------------------------------------------------

def _upload(name: str) -> Upload:
    return Upload(key=name, source=Path(name), size=1, content_type="image/png",
                  cache_control="x")


def test_the_feed_yields_in_order_until_ended() -> None:
    feed = UploadFeed(limit=4)
    for name in ("a", "b", "c"):
        assert feed.put(_upload(name))
    feed.end()
    assert [upload.key for upload in feed] == ["a", "b", "c"]


def test_a_full_feed_holds_the_producer_until_read_and_stop_releases_it() -> None:
    feed = UploadFeed(limit=2)
    assert feed.put(_upload("a")) and feed.put(_upload("b"))
    answers: list[bool] = []
    producer = threading.Thread(target=lambda: answers.append(feed.put(_upload("c"))))
    producer.start()
    producer.join(0.2)
    assert producer.is_alive() and answers == []  # held: the feed is full
    reader = iter(feed)
    assert next(reader).key == "a"  # a free slot lets the producer in
    producer.join(GATE_SECONDS)
    assert answers == [True]
    feed.stop()
    assert feed.put(_upload("d")) is False  # stopped: nothing more is queued
    with pytest.raises(UploadsStopped):  # the storage's loop ends, dropping "b" and "c"
        next(reader)


# --- progress while hashing ----------------------------------------------------------------

def test_progress_before_the_plan_is_periodic_and_says_while_hashing() -> None:
    clock, err = FakeClock(), io.StringIO()
    reporter = ProgressReporter(out=io.StringIO(), err=err, tty=False, verbose_plan=False,
                                clock=clock)
    plan, uploads = _plan_and_uploads(2500, 1024)
    for upload in uploads[:1500]:
        clock.now += 0.001
        reporter.stored(upload)
    reporter.planned(plan)
    for upload in uploads[1500:]:
        clock.now += 0.001
        reporter.stored(upload)
    progress = [line.split(",")[0] for line in err.getvalue().splitlines()
                if line.startswith("uploaded")]
    assert progress == ["uploaded 1000 files", "uploaded 2000/2500 files",
                        "uploaded 2500/2500 files"]
    assert "while hashing" in err.getvalue()
