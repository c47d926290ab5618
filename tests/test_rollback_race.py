"""Prune racing a rollback never leaves the current manifest naming a deleted object (issue
19, item 3), against the S3 servers over HTTP.

The race: prune's final check reads the current manifest and the releases, then deletes
the objects of an old release; a rollback to that release checked its objects before the
deletes and switches current after its check. The rollback now stores an intent first
(prune's final check spares its target) and checks against a listing taken once no prune
marker is live.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.build.mounts import Mounts
from pipeline.errors import ConfigError, DeployError
from pipeline.release.prune import prune
from pipeline.release.publish import deploy
from pipeline.release.rollback import rollback
from pipeline.release.store import ReleaseStore
from pipeline.release.verify import verify
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.helpers import S3Env, assert_consistent, write_tree
from tests.installed import InstalledTool

FILES = 12
#: Bounded: every wait in these tests ends after this many seconds.
WAIT = 30


def tree(root: Path, version: str) -> Path:
    return write_tree(root, {f"img/{i:03d}.png": f"image {i} {version}".encode()
                             for i in range(FILES)})


def settings_for(s3: S3Env) -> S3Settings:
    return S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=4)


def store_for(s3: S3Env, storage: S3Storage | None = None) -> ReleaseStore:
    return ReleaseStore(storage or S3Storage(settings_for(s3)), "static")


def publish(s3: S3Env, static: Path, tmp_path: Path) -> str:
    result = deploy(folders=Mounts.single(static), store=store_for(s3),
                    manifest_path=tmp_path / "out.json")
    assert result.release_id
    return result.release_id


def two_releases(s3: S3Env, tmp_path: Path, tag: str) -> tuple[str, str]:
    """(older, current): the older release's objects are named by no kept release."""
    static = tmp_path / f"static-{tag}"
    older = publish(s3, tree(static, f"{tag}-old"), tmp_path)
    current = publish(s3, tree(static, f"{tag}-new"), tmp_path)
    return older, current


def assert_live_release_complete(s3: S3Env) -> str:
    """``verify`` of the current release finds nothing missing; return its id."""
    report = verify(store_for(s3))
    assert report.ok, [p.describe() for p in report.problems]
    return str(assert_consistent(s3)["release"])


class PausingPruneStorage(S3Storage):
    """Prune's first delete (its final check is done) waits for ``go``."""

    def __init__(self, settings: S3Settings, *, ready: threading.Event,
                 go: threading.Event) -> None:
        super().__init__(settings)
        self.ready, self.go, self.calls = ready, go, 0

    def delete_keys(self, keys: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.ready.set()
            assert self.go.wait(timeout=WAIT)
        return super().delete_keys(keys)


class RollbackStorage(S3Storage):
    """Lets the paused prune go on once the rollback has done what it does before
    switching: listed the prefix after storing its intent, or switched current."""

    def __init__(self, settings: S3Settings, *, go: threading.Event) -> None:
        super().__init__(settings)
        self.go, self.intent_stored = go, False

    def put_bytes(self, key: str, data: bytes, **kwargs: Any) -> None:
        super().put_bytes(key, data, **kwargs)
        self.intent_stored = self.intent_stored or "/releases/rollback-" in key

    def list_keys(self, prefix: str, *, hints: Any = ()) -> Any:
        listing = super().list_keys(prefix, hints=hints)
        if self.intent_stored:
            self.go.set()
        return listing

    def put_if(self, key: str, data: bytes, **kwargs: Any) -> str:
        etag = super().put_if(key, data, **kwargs)
        self.go.set()  # current was switched
        return etag


def test_a_rollback_after_prunes_final_check_waits_and_refuses_the_pruned_release(
    s3: S3Env, tmp_path: Path
) -> None:
    """The prune checked while the old release was not current, and deletes only after the
    rollback's own check: the rollback must see the marker, wait, and find the loss."""
    older, current = two_releases(s3, tmp_path, "a")
    ready, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pruner() -> None:
        try:
            prune(store_for(s3, PausingPruneStorage(settings_for(s3), ready=ready, go=go)),
                  keep=1, grace=timedelta(0), force=True)
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=pruner)
    thread.start()
    try:
        assert ready.wait(timeout=WAIT)
        with pytest.raises(DeployError, match=f"release {older} cannot be made current"):
            rollback(store_for(s3, RollbackStorage(settings_for(s3), go=go)), release_id=older)
    finally:
        go.set()
        thread.join(timeout=WAIT)
    assert not errors and not thread.is_alive()
    assert assert_live_release_complete(s3) == current
    assert not [key for key in s3.keys("static/releases/") if "/rollback-" in key]


class ListingHookStorage(S3Storage):
    """Runs ``hook`` once, right after the rollback's first listing of the whole prefix."""

    def __init__(self, settings: S3Settings, hook: Any) -> None:
        super().__init__(settings)
        self.hook: Any = hook

    def list_keys(self, prefix: str, *, hints: Any = ()) -> Any:
        listing = super().list_keys(prefix, hints=hints)
        if prefix == "static" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return listing


def test_a_prune_that_runs_while_a_rollback_checks_spares_the_rollbacks_target(
    s3: S3Env, tmp_path: Path
) -> None:
    """A whole prune between the rollback's check and its switch must not delete the
    target: it lists the rollback's intent in its final check."""
    older, _ = two_releases(s3, tmp_path, "b")
    pruned: list[int] = []

    def prune_now() -> None:
        result = prune(store_for(s3), keep=1, grace=timedelta(0), force=True)
        pruned.append(len(result.outcome.deleted if result.outcome else []))

    result = rollback(store_for(s3, ListingHookStorage(settings_for(s3), prune_now)),
                      release_id=older)
    assert result.changed and pruned  # the prune did run, in the middle of the rollback
    assert assert_live_release_complete(s3) == older


def test_rollbacks_and_prunes_run_at_the_same_time_and_the_live_release_stays_whole(
    s3: S3Env, tmp_path: Path
) -> None:
    """Threads started together, no hooks, a bounded number of rounds: whoever wins, verify
    finds every object of the release that is current afterwards."""
    for round_ in range(5):
        older, current = two_releases(s3, tmp_path, f"r{round_}")
        start = threading.Barrier(2, timeout=WAIT)
        outcome: dict[str, object] = {}

        def pruner(outcome: dict[str, object] = outcome, start: threading.Barrier = start
                   ) -> None:
            start.wait()
            try:
                prune(store_for(s3), keep=1, grace=timedelta(0), force=True)
            except Exception as exc:
                outcome["prune"] = exc

        thread = threading.Thread(target=pruner)
        thread.start()
        start.wait()
        try:
            rollback(store_for(s3), release_id=older)
            outcome["rolled back"] = True
        except DeployError as exc:  # the prune won: the rollback refused, nothing changed
            outcome["rollback"] = exc
        except ConfigError as exc:  # the prune won before the release was even read
            assert "does not exist" in str(exc)
            outcome["rollback"] = exc
        thread.join(timeout=WAIT)
        assert not thread.is_alive() and "prune" not in outcome
        live = assert_live_release_complete(s3)
        assert live == (older if "rolled back" in outcome else current), outcome


def test_the_installed_rollback_and_prune_run_together_from_a_foreign_project(
    s3: S3Env, installed: InstalledTool, project: Path, tmp_path: Path
) -> None:
    """The commands a user types, as two processes at once, then ``verify`` (exit 0)."""
    import subprocess

    from tests.installed import user_env

    target = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint]
    env = s3.server.credentials.env()
    static = project / "static"
    for round_ in range(3):
        for version in ("old", "new"):
            (static / "round.txt").write_text(f"{round_} {version}\n")
            deployed = installed.run("cdn-deploy", "-q", *target, cwd=project, **env)
            assert deployed.returncode == 0, deployed.stderr
        path = {"PATH": f"{installed.bin}:/usr/bin:/bin", "VIRTUAL_ENV": str(installed.venv)}
        commands = [["prune", "--keep", "1", "--grace", "0", "--force", *target],
                    ["rollback", *target]]
        processes = [subprocess.Popen([installed.command("cdn-deploy"), *args], cwd=project,
                                      env=user_env(**path, **env), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for args in commands]
        results = [process.communicate(timeout=120) for process in processes]
        for process, (_, err) in zip(processes, results, strict=True):
            # 1: the objects were gone, 2: the release object itself (prune won either way)
            assert process.returncode in (0, 1, 2) and "Traceback" not in err, err
        assert processes[0].returncode == 0, results[0][1]  # the prune always completes
        checked = installed.run("cdn-deploy", "verify", *target, cwd=project, **env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
