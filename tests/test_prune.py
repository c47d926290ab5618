"""prune against moto's S3 server over HTTP (and the folder backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.manifest import Entry, Manifest
from pipeline.release.documents import Current
from pipeline.release.prune import plan_prune
from pipeline.releasedoc import ReleaseDoc
from pipeline.storage.base import RemoteObject
from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree


@pytest.fixture(autouse=True)
def no_grace_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use ``--grace 0`` to test keep, limits and batches, not the floor
    (tests/test_prune_race.py tests the floor itself)."""
    monkeypatch.setattr("pipeline.release.prune.MIN_GRACE", timedelta(0))


def deploy(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    code, summary = run_json(capsys, [*args, "-q"])
    assert code == 0, summary
    return str(summary["release"])


def key_of(tmp_path: Path, name: str) -> str:
    return Manifest.load(tmp_path / "out" / "manifest.json").files[name].key


@pytest.fixture
def three_releases(s3: S3Env, static_tree: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """v1; v2 changes the logo; v3 changes the cat. Returns ids and the superseded keys."""
    args = target_args(s3, tmp_path, static_tree)
    v1 = deploy(capsys, args)
    logo_v1, cat_v1 = key_of(tmp_path, "img/logo.png"), key_of(tmp_path, "img/cat.jpg")
    (static_tree / "img/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n logo v2")
    v2 = deploy(capsys, args)
    (static_tree / "img/cat.jpg").write_bytes(b"\xff\xd8\xff\xe0 cat v3")
    v3 = deploy(capsys, args)
    return {"args": args, "ids": [v1, v2, v3], "logo_v1": logo_v1, "cat_v1": cat_v1}


def test_prune_deletes_what_no_kept_release_names_and_keeps_the_rest(
    s3: S3Env, three_releases: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    args, (v1, v2, v3) = three_releases["args"], three_releases["ids"]
    before = s3.keys()
    code, result = run_json(capsys, ["prune", "--keep", "2", "--grace", "0", *args])
    assert code == 0, result
    gone = {f"static/releases/{v1}.json", three_releases["logo_v1"]}
    assert set(result["keys"]) == gone and result["deleted"] == 2
    assert result["kept_releases"] == [v2, v3]
    after = s3.keys()
    records = {key for key in after if key.startswith("static/releases/pruned-")}
    assert len(records) == 1  # prune's own "done" record (see pipeline.release.prune)
    assert set(after) - records == set(before) - gone
    assert three_releases["cat_v1"] in after  # v2 still names it
    assert_consistent(s3)
    assert run_json(capsys, ["verify", "--release", v2, *args])[0] == 0
    assert run_json(capsys, ["rollback", *args])[1]["release"] == v2


def test_objects_inside_the_grace_period_are_kept(
    s3: S3Env, three_releases: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    before = s3.keys()
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "1h",
                                     *three_releases["args"]])
    assert code == 0 and result["deleted"] == 0 and result["candidates"] == 0
    assert result["in_grace"] == 4  # v1 and v2 release objects, logo v1, cat v1
    assert s3.keys() == before


def test_grace_is_measured_against_last_modified() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    entry = Entry("static/kept.0123456789ab.png", "h" * 64, 1, "image/png")
    doc = ReleaseDoc(Manifest({"kept.png": entry}), "20260101T000000.000Z-aaaaaa", None, {})
    listing = {
        "static/kept.0123456789ab.png": RemoteObject(1, last_modified=now - timedelta(days=30)),
        "static/old.0123456789ab.png": RemoteObject(1, last_modified=now - timedelta(days=8)),
        "static/young.0123456789ab.png": RemoteObject(1, last_modified=now - timedelta(days=6)),
        "static/undated.0123456789ab.png": RemoteObject(1),
        "static/manifest.json": RemoteObject(1, last_modified=now - timedelta(days=30)),
        "static/releases/20260101T000000.000Z-aaaaaa.json":
            RemoteObject(1, last_modified=now - timedelta(days=30)),
    }
    plan = plan_prune(listing, "static", kept={doc.release_id: doc},  # type: ignore[dict-item]
                      current=Current(doc, "e", b""), cutoff=now - timedelta(days=7),
                      max_deletes=None)
    assert plan.candidates == ("static/old.0123456789ab.png",) and plan.in_grace == 2


def test_dry_run_lists_and_deletes_nothing(
    s3: S3Env, three_releases: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    before = s3.keys()
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", "--dry-run",
                                     *three_releases["args"]])
    assert code == 0 and result["dry_run"] is True and result["deleted"] == 0
    assert len(result["keys"]) == 4 and s3.keys() == before
    assert result["keys"][:2] == [
        f"static/releases/{rid}.json" for rid in three_releases["ids"][:2]
    ]


def test_the_current_release_is_kept_even_when_older_than_the_newest_n(
    s3: S3Env, three_releases: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    args, (v1, v2, v3) = three_releases["args"], three_releases["ids"]
    assert run_json(capsys, ["rollback", v1, *args])[0] == 0
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", *args])
    assert code == 0 and result["kept_releases"] == [v1, v3]
    assert result["keys"] == [f"static/releases/{v2}.json"]
    assert_consistent(s3)


def test_a_mass_delete_is_refused_without_force(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    static = write_tree(
        tmp_path / "static", {f"img/{i}.png": f"v1 {i}".encode() for i in range(20)}
    )
    args = target_args(s3, tmp_path, static)
    deploy(capsys, args)
    write_tree(static, {f"img/{i}.png": f"v2 {i}".encode() for i in range(20)})
    deploy(capsys, args)
    before = s3.keys()
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", *args])
    assert code == 1 and "refusing to delete 21 of 43" in result["error"]
    assert "--force" in result["error"] and s3.keys() == before
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0",
                                     "--max-deletes", "20", *args])
    assert code == 1 and s3.keys() == before
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", "--force", *args])
    assert code == 0 and result["deleted"] == 21
    assert_consistent(s3)


def test_deletes_go_in_batches(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.storage.s3.DELETE_BATCH", 10)
    static = write_tree(tmp_path / "static", {f"{i}.txt": f"v1 {i}".encode() for i in range(24)})
    args = target_args(s3, tmp_path, static)
    deploy(capsys, args)
    write_tree(static, {f"{i}.txt": f"v2 {i}".encode() for i in range(24)})
    deploy(capsys, args)
    with fault_proxy(s3.endpoint, methods=()) as proxy:
        code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", "--force",
                                         *target_args(s3, tmp_path, static, endpoint=proxy.url)])
    assert code == 0 and result["deleted"] == 25 and result["requests"] == 3
    # One more DeleteObjects removes prune's marker (see pipeline.release.prune).
    assert proxy.count("POST", "delete") == 3 + 1 and proxy.count("DELETE") == 0


def test_folder_backend_prunes_too(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static_tree),
            "--manifest", str(tmp_path / "m.json")]
    deploy(capsys, args)
    old = tmp_path / "cdn" / Manifest.load(tmp_path / "m.json").files["LICENSE"].key
    (static_tree / "LICENSE").write_bytes(b"BSD\n")
    deploy(capsys, args)
    code, result = run_json(capsys, ["prune", "--keep", "1", "--grace", "0", *args])
    assert code == 0 and result["deleted"] == 2 and not old.exists()
    assert run_json(capsys, ["verify", *args])[0] == 0


@pytest.mark.parametrize(("extra", "needle"), [(["--keep", "0"], "--keep"),
                                               (["--grace", "soon"], "duration")])
def test_bad_prune_options_exit_2(
    static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
    needle: str,
) -> None:
    code, result = run_json(capsys, ["prune", "--target-dir", str(tmp_path / "cdn"), *extra])
    assert code == 2 and needle in result["error"]


def test_prune_refuses_a_prefix_with_nothing_published(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="static/stray.txt", Body=b"x")
    code, result = run_json(capsys, ["prune", "--grace", "0", "--force",
                                     *target_args(s3, tmp_path, static_tree)])
    assert code == 1 and "nothing published" in result["error"]
    assert set(s3.keys()) == {"static/stray.txt"}
