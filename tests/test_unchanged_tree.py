"""A no-change re-run answered from the record of the run that published the tree (issue 25).

The shortcut is observable as ``from_tree_record`` in the ``--json`` summary (and on the
:class:`~pipeline.release.result.DeployResult`); everything else a run prints, returns and
writes must equal the full path's. Each thing the outcome depends on, changed, sends the
next run down the full path, which publishes correctly and leaves a new record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.build.mounts import Mounts
from pipeline.errors import DeployError
from pipeline.release import tree_record
from pipeline.release.plan import Reason
from pipeline.release.publish import deploy
from pipeline.release.result import DeployOptions
from pipeline.release.store import ReleaseStore
from pipeline.releasedoc import ReleaseDoc
from pipeline.storage.folder import FolderStorage
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree
from tests.installed import InstalledTool

FILES = {"img/a.png": b"\x89PNG a", "js/app.js": b"var app;\n", "css/site.css": b"p{}\n",
         "robots.txt": b"User-agent: *\n"}


def args(tmp_path: Path, static: Path, *extra: str, cache: str = "cache.json") -> list[str]:
    return ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / "m.json"), "--hash-cache", str(tmp_path / cache),
            "--no-assets", *extra]


def current(tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (tmp_path / "cdn" / "static" / "manifest.json").read_bytes())
    return document


def stored(tmp_path: Path, document: dict[str, Any], logical: str) -> bytes:
    return (tmp_path / "cdn" / document["files"][logical]["key"]).read_bytes()


def without_marker(summary: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in summary.items() if name != "from_tree_record"}


@pytest.fixture
def published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    """A tree deployed once (a new release, recorded at once): (static folder, summary)."""
    static = write_tree(tmp_path / "static", FILES)
    code, first = run_json(capsys, args(tmp_path, static))
    assert code == 0 and first["new_release"] and not first["from_tree_record"]
    assert (tmp_path / "cache.json.tree").is_file()
    return static, first


def test_a_no_change_rerun_is_answered_and_equals_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.cli.main import main

    static, first = published
    record = tmp_path / "cache.json.tree"
    record.unlink()  # the full path once more, for comparison; it records again
    code, full = run_json(capsys, args(tmp_path, static))
    assert code == 0 and not full["from_tree_record"] and record.is_file()
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    code, answered = run_json(capsys, args(tmp_path, static))
    assert code == 0 and answered["from_tree_record"]
    assert without_marker(answered) == without_marker(full)
    assert (answered["release"], answered["new_release"], answered["uploaded"],
            answered["files"], answered["skipped"]) == (first["release"], False, 0, 4, 4)
    # Nothing was written, locally or in the target.
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    # The people's output too (stdout and stderr), against a full run's.
    texts = []
    for unlink in (True, False):
        if unlink:
            record.unlink()
        else:  # answered: the summary and its example line come from the record
            monkeypatch.setattr(ReleaseDoc, "from_json", None)
        capsys.readouterr()
        assert main(args(tmp_path, static, "--cdn-url", "https://cdn.example")) == 0
        texts.append(capsys.readouterr())
    assert texts[0] == texts[1] and "unchanged: already current" in texts[1].out
    assert "Example: css/site.css -> https://cdn.example/static/css/site." in texts[1].out


def test_the_library_result_equals_the_full_paths(tmp_path: Path) -> None:
    """Its manifest and plan are the full path's, made from the local manifest on use."""
    static = write_tree(tmp_path / "static", FILES)
    store = ReleaseStore(FolderStorage(tmp_path / "cdn"), "static")
    options = DeployOptions(hash_cache_path=tmp_path / "cache.json")

    def run() -> Any:
        return deploy(folders=Mounts.single(static), store=store,
                      manifest_path=tmp_path / "m.json", options=options)

    first = run()
    again = run()
    assert again.from_tree_record and not first.from_tree_record
    assert again.manifest == first.manifest
    assert len(again.manifest.files) == 4
    assert again.manifest.total_bytes == first.manifest.total_bytes
    assert [(p.logical_path, p.entry, p.reason) for p in again.plan.files] == [
        (path, first.manifest.files[path], Reason.UNCHANGED) for path in sorted(FILES)]
    assert (again.release_id, again.new_release, again.uploaded) == (first.release_id, False, 0)


def _touch(static: Path, tmp_path: Path) -> None:
    os.utime(static / "robots.txt", ns=(1, 1))


def _edit(static: Path, tmp_path: Path) -> None:
    (static / "robots.txt").write_bytes(b"User-agent: x\n")  # same size, new bytes


def _add(static: Path, tmp_path: Path) -> None:
    (static / "new.txt").write_bytes(b"new")


def _remove(static: Path, tmp_path: Path) -> None:
    (static / "robots.txt").unlink()


def _drop_manifest(static: Path, tmp_path: Path) -> None:
    (tmp_path / "m.json").unlink()


def _edit_manifest(static: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(path.read_bytes().replace(b"robots", b"robotz"))


def _drop_cache(static: Path, tmp_path: Path) -> None:
    (tmp_path / "cache.json").unlink()


#: Mutation -> (a new release?, the files the current release then holds).
INVALIDATIONS: dict[str, tuple[Callable[[Path, Path], None], bool, set[str]]] = {
    "touched": (_touch, False, set(FILES)),
    "edited": (_edit, True, set(FILES)),
    "added": (_add, True, {*FILES, "new.txt"}),
    "removed": (_remove, True, set(FILES) - {"robots.txt"}),
    "local manifest deleted": (_drop_manifest, False, set(FILES)),
    "local manifest edited": (_edit_manifest, False, set(FILES)),
    "hash cache deleted": (_drop_cache, False, set(FILES)),
}


@pytest.mark.parametrize("name", sorted(INVALIDATIONS))
def test_each_change_takes_the_full_path_and_publishes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], name: str,
) -> None:
    static, _ = published
    mutate, new_release, files = INVALIDATIONS[name]
    mutate(static, tmp_path)
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert not result["from_tree_record"]
    assert result["new_release"] is new_release
    document = current(tmp_path)
    assert set(document["files"]) == files
    assert (tmp_path / "m.json").read_bytes() == (
        tmp_path / "cdn" / "static" / "manifest.json").read_bytes()
    for logical in files:
        assert stored(tmp_path, document, logical) == (static / logical).read_bytes()
    code, again = run_json(capsys, args(tmp_path, static))  # recorded anew
    assert (code, again["from_tree_record"], again["release"]) == (0, True, result["release"])


@pytest.mark.parametrize("extra", [["--exclude", "robots.txt"], ["--prefix", "assets"],
                                   ["--no-precompress"], ["--allow-hard-links"]])
def test_a_changed_setting_takes_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], extra: list[str],
) -> None:
    static, _ = published
    code, result = run_json(capsys, args(tmp_path, static, *extra))
    assert code == 0 and not result["from_tree_record"], result
    prefix = "assets" if "--prefix" in extra else "static"
    document = json.loads((tmp_path / "cdn" / prefix / "manifest.json").read_bytes())
    assert ("robots.txt" in document["files"]) is ("robots.txt" not in extra)
    code, again = run_json(capsys, args(tmp_path, static, *extra))
    assert (code, again["from_tree_record"]) == (0, True)


def test_another_tool_takes_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    static, first = published
    monkeypatch.setattr(tree_record, "tool_stamp", lambda: "an upgraded tool")
    code, result = run_json(capsys, args(tmp_path, static))
    assert (code, result["from_tree_record"], result["release"]) == (0, False, first["release"])


def test_a_rollback_or_another_deploy_moves_the_pointer_and_takes_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]],
) -> None:
    static, first = published
    (static / "robots.txt").write_bytes(b"User-agent: y\n")
    code, second = run_json(capsys, args(tmp_path, static))
    assert code == 0 and second["new_release"]
    target = ["--target-dir", str(tmp_path / "cdn")]
    code, _ = run_json(capsys, ["rollback", first["release"], *target])
    assert code == 0 and current(tmp_path)["release"] == first["release"]
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0 and not result["from_tree_record"] and result["new_release"]
    assert stored(tmp_path, current(tmp_path), "robots.txt") == b"User-agent: y\n"
    # Another deploy (its own folder, cache and manifest) publishes to the same target.
    other = write_tree(tmp_path / "other", {"other.txt": b"theirs"})
    code, _ = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(other), "--manifest", str(tmp_path / "theirs.json"),
                                     "--hash-cache", str(tmp_path / "theirs-cache.json"),
                                     "--no-assets"])
    assert code == 0 and set(current(tmp_path)["files"]) == {"other.txt"}
    code, ours = run_json(capsys, args(tmp_path, static))
    assert code == 0 and not ours["from_tree_record"] and ours["new_release"]
    assert set(current(tmp_path)["files"]) == set(FILES)


@pytest.mark.parametrize("extra", [["--dry-run"], ["--relist"], ["--no-hash-cache"]])
def test_runs_it_cannot_vouch_for_take_the_full_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], extra: list[str],
) -> None:
    static, _ = published
    code, result = run_json(capsys, args(tmp_path, static, *extra))
    assert (code, result["from_tree_record"]) == (0, False)
    # A dry run and a run without the hash cache leave the record alone (they changed
    # nothing it vouches for: a new release would move the pointer); --relist removes it
    # and, having listed, writes none: the next plain run takes the full path once more.
    code, again = run_json(capsys, args(tmp_path, static))
    assert (code, again["from_tree_record"]) == (0, extra != ["--relist"])


def test_a_run_that_warned_is_not_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cli.main import main

    static = write_tree(tmp_path / "static", {"css/site.css": b"p{background:url(gone.png)}"})
    for _ in range(2):
        capsys.readouterr()
        assert main([*args(tmp_path, static, "--no-strict"), "--json"]) == 0
        captured = capsys.readouterr()
        assert "gone.png" in captured.err  # the warning, printed by every run
        assert json.loads(captured.out)["from_tree_record"] is False
    assert not (tmp_path / "cache.json.tree").exists()


def test_a_failed_deploy_removes_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    static, _ = published
    _edit(static, tmp_path)

    def refused(*_args: object, **_kwargs: object) -> None:
        raise DeployError("the target refused the manifest")

    with monkeypatch.context() as patched:
        patched.setattr(ReleaseStore, "make_current", refused)
        code, result = run_json(capsys, args(tmp_path, static))
    assert code == 1 and not (tmp_path / "cache.json.tree").exists()
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0 and not result["from_tree_record"] and result["new_release"]
    assert stored(tmp_path, current(tmp_path), "robots.txt") == b"User-agent: x\n"


def test_on_s3_the_pointer_is_checked_with_one_head(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    ours = [*target_args(s3, tmp_path, static), "--hash-cache", str(tmp_path / "h.json"),
            "--no-assets"]
    code, first = run_json(capsys, ours)
    assert code == 0 and first["new_release"]
    code, again = run_json(capsys, ours)
    assert (code, again["from_tree_record"], again["release"]) == (0, True, first["release"])
    other = write_tree(tmp_path / "other", {"other.txt": b"theirs"})
    theirs = [*target_args(s3, tmp_path, other, manifest=tmp_path / "theirs.json"),
              "--hash-cache", str(tmp_path / "theirs-cache.json"), "--no-assets"]
    assert run_json(capsys, theirs)[0] == 0
    code, result = run_json(capsys, ours)
    assert code == 0 and not result["from_tree_record"] and result["new_release"]
    assert set(assert_consistent(s3)["files"]) == set(FILES)
    code, last = run_json(capsys, ours)
    assert (code, last["from_tree_record"], last["release"]) == (0, True, result["release"])


def test_the_installed_tool_answers_a_rerun_from_its_record(
    installed: InstalledTool, project: Path,
) -> None:
    runs = []
    for _ in range(2):
        run = installed.run("cdn-deploy", "--json", cwd=project)
        assert run.returncode == 0, run.stderr
        runs.append(json.loads(run.stdout))
    assert [r["from_tree_record"] for r in runs] == [False, True]
    assert runs[1]["release"] == runs[0]["release"] and runs[1]["uploaded"] == 0
    assert (project / "build" / ".cdn-hash-cache.json.tree").is_file()
    (project / "static" / "extra.txt").write_text("new")
    run = installed.run("cdn-deploy", "--json", cwd=project)
    assert run.returncode == 0, run.stderr
    changed = json.loads(run.stdout)
    assert not changed["from_tree_record"] and changed["new_release"]
    published = json.loads((project / "build" / "cdn" / "static" / "manifest.json").read_bytes())
    assert "extra.txt" in published["files"]


def test_only_files_that_must_be_read_are_asked_whether_they_are_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    published: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The walk asks no file (an access() each was a fifth of a 100,000-file walk); a
    file to be hashed is refused with the walk's old message before anything is uploaded."""
    from pipeline.cli.main import main

    static, first = published
    asked: list[str] = []
    real_access = os.access

    def denied(path: str, mode: int) -> bool:  # tests may run as root: simulate the denial
        if not str(path).startswith(f"{static}/"):
            return real_access(path, mode)  # click's and the manifest folder's checks
        asked.append(os.path.basename(path))
        return False

    monkeypatch.setattr(os, "access", denied)
    (tmp_path / "cache.json.tree").unlink()  # the full path: every hash is cached
    code, result = run_json(capsys, args(tmp_path, static))
    assert (code, result.get("release"), asked) == (0, first["release"], []), result
    (static / "new.txt").write_bytes(b"new")
    objects = sorted(path.name for path in (tmp_path / "cdn").rglob("*"))
    capsys.readouterr()
    assert main(args(tmp_path, static)) == 2
    assert "cannot read 'new.txt' in the static folder: permission denied" in (
        capsys.readouterr().err)
    assert asked == ["new.txt"]
    assert sorted(path.name for path in (tmp_path / "cdn").rglob("*")) == objects
