"""Prune racing a deploy never leaves a published release naming a deleted object (issue 9,
items 1 and 5), against moto's S3 server over HTTP.

The race: a deploy lists the bucket and reuses objects no kept release names; a prune
deletes them before the deploy publishes. The deploy confirms its release's keys after
writing the release object (waiting out a prune in progress) and re-uploads what went.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.build.mounts import Mounts
from pipeline.errors import ConfigError
from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import Current
from pipeline.release.plan import Plan
from pipeline.release.prune import owned_keys, plan_prune, prune
from pipeline.release.publish import deploy
from pipeline.release.store import ReleaseStore
from pipeline.releasedoc import ReleaseDoc
from pipeline.storage.base import RemoteObject
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree

FILES = 40


def tree(root: Path, version: str) -> Path:
    return write_tree(root, {f"img/{i:03d}.png": f"image {i} {version}".encode()
                             for i in range(FILES)})


def storage_for(s3: S3Env) -> S3Storage:
    return S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=4))


def run_deploy(s3: S3Env, static: Path, tmp_path: Path, observer: Any = None,
               storage: S3Storage | None = None) -> str | None:
    result = deploy(folders=Mounts.single(static),
                    store=ReleaseStore(storage or storage_for(s3), "static"),
                    manifest_path=tmp_path / "out.json", observer=observer)
    return result.release_id


class Hooks:
    """A deploy observer that runs a callback once the deploy has listed and planned."""

    def __init__(self, on_planned: Any) -> None:
        self.on_planned = on_planned
        self.warnings: list[str] = []

    def planned(self, plan: Plan) -> None:
        self.on_planned(plan)

    def stored(self, upload: object) -> None:
        pass

    def warned(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def reverted(s3: S3Env, tmp_path: Path) -> Path:
    """v1 then v2 published; the tree is back at v1, whose objects no kept release names."""
    static = tree(tmp_path / "static", "v1")
    run_deploy(s3, static, tmp_path)
    tree(static, "v2")
    run_deploy(s3, static, tmp_path)
    return tree(static, "v1")


def test_a_prune_between_listing_and_publish_is_repaired_before_publishing(
    s3: S3Env, tmp_path: Path, reverted: Path
) -> None:
    """The prune runs to completion after the deploy listed: the deploy must not trust it."""
    pruned: list[int] = []

    def prune_now(plan: Plan) -> None:
        assert not plan.uploads  # the v1 objects are all still there: reused
        result = prune(ReleaseStore(storage_for(s3), "static"), keep=1, grace=timedelta(0),
                       force=True)
        pruned.append(len(result.outcome.deleted if result.outcome else []))

    hooks = Hooks(prune_now)
    release = run_deploy(s3, reverted, tmp_path, observer=hooks)
    assert pruned and pruned[0] >= FILES  # the prune did delete the v1 objects
    document = assert_consistent(s3)
    assert document["release"] == release
    assert any("disappeared" in warning for warning in hooks.warnings)


class SlowPruneStorage(S3Storage):
    """Prune's first delete waits until the deploy has written its release and listed."""

    def __init__(self, settings: S3Settings, go: threading.Event, ready: threading.Event) -> None:
        super().__init__(settings)
        self.go, self.ready, self.calls = go, ready, 0

    def delete_keys(self, keys: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.ready.set()  # the final check is done, the deletes are about to go
            assert self.go.wait(timeout=30)
        return super().delete_keys(keys)


class DeployStorage(S3Storage):
    """Lets the prune delete only after this deploy's first listing after its release."""

    def __init__(self, settings: S3Settings, go: threading.Event) -> None:
        super().__init__(settings)
        self.go, self.release_written = go, False

    def put_if(self, key: str, data: bytes, **kwargs: Any) -> str:
        etag = super().put_if(key, data, **kwargs)
        self.release_written = self.release_written or "/releases/" in key
        return etag

    def list_keys(self, prefix: str, *, hints: Any = ()) -> Any:
        listing = super().list_keys(prefix, hints=hints)
        if self.release_written:
            self.go.set()
        return listing


def test_a_prune_in_progress_is_waited_for_before_confirming(
    s3: S3Env, tmp_path: Path, reverted: Path
) -> None:
    """The prune checked the releases before the deploy wrote its own, and deletes only
    after the deploy's confirmation listing: the deploy must see its marker and wait."""
    ready, go = threading.Event(), threading.Event()
    settings = S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=4)
    errors: list[BaseException] = []

    def prune_thread() -> None:
        try:
            prune(ReleaseStore(SlowPruneStorage(settings, go, ready), "static"), keep=1,
                  grace=timedelta(0), force=True)
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    worker = threading.Thread(target=prune_thread)
    hooks = Hooks(lambda plan: ready.wait(timeout=30))
    worker.start()
    try:
        release = run_deploy(s3, reverted, tmp_path, observer=hooks,
                             storage=DeployStorage(settings, go))
    finally:
        go.set()
        worker.join(timeout=60)
    assert not errors and not worker.is_alive()
    assert assert_consistent(s3)["release"] == release
    assert not [k for k in s3.keys("static/releases/") if "pruning-" in k]  # marker removed


def test_deploys_and_prunes_run_concurrently_and_every_published_release_is_complete(
    s3: S3Env, tmp_path: Path
) -> None:
    """Threads, no hooks: each round deploys the other tree while a forced prune runs."""
    static = tree(tmp_path / "static", "v0")
    run_deploy(s3, static, tmp_path)
    for round_ in range(4):
        tree(static, f"v{round_ % 2}")  # alternate: each deploy reuses pruned objects
        before = assert_consistent(s3)
        outcome: dict[str, object] = {}

        def pruner(outcome: dict[str, object] = outcome) -> None:
            try:
                prune(ReleaseStore(storage_for(s3), "static"), keep=1, grace=timedelta(0),
                      force=True)
            except Exception as exc:
                outcome["prune"] = exc

        thread = threading.Thread(target=pruner)
        thread.start()
        try:
            outcome["release"] = run_deploy(s3, static, tmp_path)
        except Exception as exc:
            outcome["deploy"] = exc
        thread.join(timeout=60)
        after = assert_consistent(s3)
        if "deploy" in outcome:
            assert after["release"] == before["release"]
        else:
            assert after["release"] == outcome["release"]


def test_a_grace_under_the_floor_is_refused_without_force(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    static = tree(tmp_path / "static", "v1")
    args = target_args(s3, tmp_path, static)
    assert run_json(capsys, [*args, "-q"])[0] == 0
    tree(static, "v2")
    assert run_json(capsys, [*args, "-q"])[0] == 0
    before = s3.keys()
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "30m", *args])
    assert code == 2 and "floor of 1h" in result["error"] and s3.keys() == before
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "1h", *args])
    assert code == 0 and result["deleted"] == 0  # allowed; everything is younger than 1h
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", "--force", *args])
    assert code == 0 and result["deleted"] == FILES + 1


NOW = datetime(2026, 1, 10, tzinfo=UTC)
OLD = NOW - timedelta(days=30)


def test_prune_only_considers_the_shapes_it_creates() -> None:
    """Bucket-root-like situations: other prefixes, the manifest, odd names are never touched."""
    entry = Entry("static/kept.0123456789ab.png", "h" * 64, 1, "image/png")
    doc = ReleaseDoc(Manifest({"kept.png": entry}), "20260101T000000.000Z-aaaaaa", None, {})
    keys = [
        "static/kept.0123456789ab.png",
        "static/old.0123456789ab.png",             # candidate
        "static/LICENSE.0123456789ab",             # candidate (no extension)
        "static/releases/20251201T000000.000Z-bbbbbb.json",  # candidate (old release)
        "static/manifest.json", "static/releases/20260101T000000.000Z-aaaaaa.json",
        "static/notes.txt", "static/releases/other.json", "static/releases/x.0123456789ab.json",
        "static/sub/manifest.json", "static/sub/a.0123456789ab.png",  # a nested prefix's deploy
        "static/sub/releases/20251201T000000.000Z-cccccc.json",
        "private/photo.0123456789ab.png", "staticx/a.0123456789ab.png", "manifest.json",
    ]
    listing = {key: RemoteObject(1, last_modified=OLD) for key in keys}
    plan = plan_prune(listing, "static", kept={doc.release_id: doc},  # type: ignore[dict-item]
                      current=Current(doc, "e", b""), cutoff=NOW, max_deletes=None)
    assert set(plan.candidates) == {"static/old.0123456789ab.png", "static/LICENSE.0123456789ab",
                                    "static/releases/20251201T000000.000Z-bbbbbb.json"}


@pytest.mark.parametrize("prefix", ["", "/", "//", " "])
def test_library_functions_refuse_a_root_or_empty_prefix(
    s3: S3Env, tmp_path: Path, prefix: str
) -> None:
    storage = storage_for(s3)
    s3.client.put_object(Bucket=s3.bucket, Key="other/a.0123456789ab.png", Body=b"x")
    with pytest.raises(ConfigError, match="bucket root"):
        prune(ReleaseStore(storage, prefix), keep=1, grace=timedelta(days=7))
    with pytest.raises(ConfigError, match="bucket root"):
        owned_keys({"other/a.0123456789ab.png": None}, prefix)
    with pytest.raises(ConfigError, match="bucket root"):
        deploy(folders=Mounts.single(tree(tmp_path / "static", "v1")),
               store=ReleaseStore(storage, prefix),
               manifest_path=tmp_path / "m.json")
    assert set(s3.keys()) == {"other/a.0123456789ab.png"}


def test_without_a_recent_prune_the_confirmation_is_one_small_listing(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the confirmation costs a deploy when no prune ran: one listing of releases/."""
    static = tree(tmp_path / "static", "v1")
    with fault_proxy(s3.endpoint, methods=()) as proxy:
        args = [*target_args(s3, tmp_path, static, endpoint=proxy.url), "-q"]
        assert run_json(capsys, args)[0] == 0
    lists = [path for method, path, _ in proxy.headers if method == "GET" and "list-type=2" in path]
    assert len(lists) == 2, lists  # the plan's listing of static/, then static/releases/
    assert "prefix=static%2Freleases%2F" in lists[1]
