"""Upload variants are encoded off the request path (issue 19, item 6): the upload answers
first, the gallery shows the original until every variant exists, and the background worker
is bounded (queue: 503, per user: 429, both with Retry-After; nothing kept when refused).

Synchronisation is by events: a job that waits on a gate holds the one worker thread, so
what the request returns is seen while the encode provably has not run.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from pipeline.images.encode_queue import EncodeWorker, OwnerBusy, QueueFull
from tests.test_site import USERS, BufferedClient, log_in, upload
from tests.test_site import site as site  # the module fixture: site/app.py

GATE_TIMEOUT = 60  # a bound on every wait, never a synchronisation


def photo_jpeg(size: tuple[int, int] = (800, 500)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def app(site: Any, tmp_path: Path) -> Iterator[Flask]:
    def make(**config: Any) -> Flask:
        made: Flask = site.create_app({
            "TESTING": True, "SECRET_KEY": "test-secret", "DEMO_USERS": USERS,
            "IMAGES_DIR": tmp_path / "images", "PRIVATE_DIR": tmp_path / "private",
            "CDN_MANIFEST": tmp_path / "no-manifest.json",
            "CDN_VARIANT_CACHE": tmp_path / "variants", **config})
        made.test_client_class = BufferedClient
        apps.append(made)
        return made

    apps: list[Flask] = []
    yield make  # type: ignore[misc]
    for made in apps:  # a clean shutdown: nothing left running after the test
        worker = site.encode_worker(made)
        if worker is not None:
            worker.shutdown(cancel_pending=True, timeout=GATE_TIMEOUT)


class Gate:
    """A job that holds the worker until opened; ``started`` says it holds it."""

    def __init__(self) -> None:
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.started.set()
        assert self.opened.wait(GATE_TIMEOUT)


def hold_worker(site: Any, app: Flask) -> Gate:
    gate = Gate()
    site.encode_worker(app).submit(gate, owner="the test")
    assert gate.started.wait(GATE_TIMEOUT)
    return gate


def uploads_section(client: FlaskClient) -> str:
    html = client.get("/").get_data(as_text=True)
    return html.split("<h2>Uploaded images</h2>", 1)[1].split("</div>", 1)[0]


def stored_uploads(tmp_path: Path) -> list[str]:
    folder = tmp_path / "images"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def test_an_upload_answers_before_its_variants_exist(app: Any, site: Any,
                                                     tmp_path: Path) -> None:
    flask_app = app()
    client = flask_app.test_client()
    log_in(client)
    gate = hold_worker(site, flask_app)
    response = upload(client, photo_jpeg(), "big.jpg")
    assert response.status_code == 303  # answered while the encoder is provably busy
    assert not (tmp_path / "images" / "_v").exists()
    before = uploads_section(client)
    (name,) = stored_uploads(tmp_path)
    assert "<picture>" not in before and f'<img src="/images/{name}"' in before
    assert 'width="800" height="500"' in before  # the original, with its size
    assert client.get(f"/images/{name}").status_code == 200

    gate.opened.set()
    assert site.encode_worker(flask_app).wait_idle(GATE_TIMEOUT)
    after = uploads_section(client)
    avif = re.search(r'<source type="image/avif" srcset="([^"]+)"', after)
    assert avif is not None, after
    candidates = [c.rsplit(" ", 1) for c in avif.group(1).split(", ")]
    assert [w for _, w in candidates] == ["320w", "640w", "800w"]
    for url, width in candidates:
        served = client.get(url)
        assert served.status_code == 200 and served.mimetype == "image/avif"
        assert Image.open(io.BytesIO(served.data)).size[0] == int(width[:-1])


def test_a_full_queue_refuses_with_503_and_keeps_nothing(app: Any, site: Any,
                                                         tmp_path: Path) -> None:
    flask_app = app(UPLOAD_ENCODE_QUEUE=1, UPLOAD_ENCODE_PER_USER=5,
                    UPLOAD_ENCODE_RETRY_AFTER=17)
    alice, bob = flask_app.test_client(), flask_app.test_client()
    log_in(alice)
    log_in(bob, "bob")
    gate = hold_worker(site, flask_app)
    assert upload(alice, photo_jpeg(), "one.jpg").status_code == 303  # waits its turn
    refused = upload(bob, photo_jpeg(), "two.jpg")
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "17")
    assert "Try again in 17 seconds" in refused.get_data(as_text=True)
    assert len(stored_uploads(tmp_path)) == 1  # the refused original was not kept
    gate.opened.set()
    assert site.encode_worker(flask_app).wait_idle(GATE_TIMEOUT)
    assert upload(bob, photo_jpeg(), "two.jpg").status_code == 303  # room again


def test_a_user_over_their_budget_gets_429_others_do_not(app: Any, site: Any,
                                                         tmp_path: Path) -> None:
    flask_app = app(UPLOAD_ENCODE_QUEUE=10, UPLOAD_ENCODE_PER_USER=2)
    alice, bob = flask_app.test_client(), flask_app.test_client()
    log_in(alice)
    log_in(bob, "bob")
    gate = hold_worker(site, flask_app)
    assert [upload(alice, photo_jpeg(), f"{n}.jpg").status_code for n in range(3)] == [
        303, 303, 429]
    assert upload(bob, photo_jpeg(), "b.jpg").status_code == 303
    assert len(stored_uploads(tmp_path)) == 3
    gate.opened.set()
    assert site.encode_worker(flask_app).wait_idle(GATE_TIMEOUT)
    assert upload(alice, photo_jpeg(), "3.jpg").status_code == 303  # budget back


def test_a_job_queue_takes_the_work_through_the_scheduler_seam(app: Any, site: Any,
                                                               tmp_path: Path) -> None:
    """``UPLOAD_ENCODE_SCHEDULER``: what an RQ/Celery app plugs in; the job pickles and runs
    anywhere with :func:`run_variant_job`."""
    import pickle

    from pipeline.build.variant_jobs import run_variant_job
    from pipeline.images.encode_queue import EncodeRefused

    queued: list[tuple[Any, str]] = []

    def scheduler(job: Any, owner: str) -> None:
        if queued:
            raise EncodeRefused("the job queue is full", retry_after=9)
        queued.append((pickle.loads(pickle.dumps(job)), owner))

    flask_app = app(UPLOAD_ENCODE_SCHEDULER=scheduler)
    assert site.encode_worker(flask_app) is None
    client = flask_app.test_client()
    log_in(client)
    assert upload(client, photo_jpeg(), "a.jpg").status_code == 303
    refused = upload(client, photo_jpeg(), "b.jpg")
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "9")
    (job, owner), = queued
    assert owner == "alice" and "<picture>" not in uploads_section(client)
    assert run_variant_job(job) == 9  # 3 widths x (AVIF, WebP, JPEG), in "another process"
    assert "<picture>" in uploads_section(client)


def test_the_worker_is_bounded_and_shuts_down_cleanly() -> None:
    worker = EncodeWorker(workers=1, max_pending=1, per_owner=2)
    gate, ran = Gate(), threading.Event()
    worker.submit(gate, owner="a")
    assert gate.started.wait(GATE_TIMEOUT)
    worker.submit(ran.set, owner="a")  # waiting
    with pytest.raises(OwnerBusy):
        worker.submit(ran.set, owner="a")
    with pytest.raises(QueueFull):
        worker.submit(ran.set, owner="b")
    assert worker.pending() == 2 and worker.pending("a") == 2
    worker.shutdown(cancel_pending=True, timeout=0)  # closes, drops the waiting job
    with pytest.raises(QueueFull, match="shutting down"):
        worker.submit(ran.set, owner="c")
    assert worker.pending() == 1  # only the running one
    gate.opened.set()
    worker.shutdown(timeout=GATE_TIMEOUT)  # waits for the running job, which ends the thread
    assert not ran.is_set() and worker.pending() == 0
    assert not [t for t in threading.enumerate() if t.name == "upload-encoder"]


def test_a_failing_job_does_not_stop_the_worker() -> None:
    worker = EncodeWorker()
    done = threading.Event()

    def broken() -> None:
        raise OSError("the upload was deleted before its encode")

    worker.submit(broken, owner="a")
    worker.submit(done.set, owner="a")
    assert done.wait(GATE_TIMEOUT) and worker.wait_idle(GATE_TIMEOUT)
    assert worker.pending("a") == 0


@pytest.mark.parametrize("setting", [{"UPLOAD_ENCODE_QUEUE": -1}, {"UPLOAD_ENCODE_WORKERS": "2"},
                                     {"UPLOAD_ENCODE_PER_USER": 0},
                                     {"UPLOAD_ENCODE_SCHEDULER": "rq"}])
def test_bad_encoder_settings_are_config_errors(app: Any, site: Any,
                                                setting: dict[str, Any]) -> None:
    with pytest.raises(site.ConfigError, match=next(iter(setting))):
        app(**setting)


def test_the_same_image_uploaded_again_is_not_encoded_again(tmp_path: Path) -> None:
    """Variant keys come from the content: a second upload of the same bytes (another
    generated name) finds its variants stored and encodes nothing."""
    from pipeline.build.variant_jobs import VariantJob, run_variant_job
    from pipeline.build.variants import VariantSettings

    settings = VariantSettings(widths=(160, 320))
    for name in ("first.jpg", "again.jpg"):
        (tmp_path / name).write_bytes(photo_jpeg())
    assert run_variant_job(VariantJob(tmp_path / "first.jpg", tmp_path, settings)) == 6
    stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "_v").rglob("*.*")}
    assert run_variant_job(VariantJob(tmp_path / "again.jpg", tmp_path, settings)) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "_v").rglob("*.*")} == stored
