"""A no-change deploy recognises the current release without decoding it (issue 25).

After a deploy has read (or published) a current manifest, a small record beside the hash
cache says what those bytes are: their SHA-256, release id and a digest of their entries.
The next deploy that reads the very same bytes compares digests instead of decoding them;
bytes anyone else published meanwhile are decoded and compared as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.releasedoc import ReleaseDoc
from tests.helpers import run_json, write_tree
from tests.installed import InstalledTool

FILES = {"img/a.png": b"\x89PNG a", "js/app.js": b"var app;\n", "css/site.css": b"p{}\n"}
OTHER = {"img/other.png": b"\x89PNG other"}


def args(tmp_path: Path, static: Path, *, cache: str = "cache.json") -> list[str]:
    return ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / f"m-{cache}"), "--hash-cache", str(tmp_path / cache),
            "--no-assets"]


def current_files(tmp_path: Path) -> dict[str, object]:
    files: dict[str, object] = json.loads(
        (tmp_path / "cdn" / "static" / "manifest.json").read_bytes())["files"]
    return files


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources of every release document decoded from now on."""
    sources: list[str] = []
    real = ReleaseDoc.from_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ReleaseDoc], data: bytes, *, source: str) -> ReleaseDoc:
        sources.append(source)
        return real(cls, data, source=source)  # type: ignore[no-any-return]

    monkeypatch.setattr(ReleaseDoc, "from_json", classmethod(counting))
    return sources


def test_a_no_change_deploy_does_not_decode_the_current_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    code, first = run_json(capsys, args(tmp_path, static))
    assert code == 0 and first["new_release"]
    assert (tmp_path / "cache.json.current").is_file()  # published: recorded at once
    decodes = count_decodes(monkeypatch)
    for _ in range(2):
        code, again = run_json(capsys, args(tmp_path, static))
        assert code == 0, again
        assert (again["release"], again["new_release"], again["uploaded"]) == (
            first["release"], False, 0)
    assert decodes == []
    published = (tmp_path / "cdn" / "static" / "manifest.json").read_bytes()
    assert (tmp_path / "m-cache.json").read_bytes() == published


def test_a_release_someone_else_published_meanwhile_is_not_mistaken_for_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    ours = write_tree(tmp_path / "ours", FILES)
    theirs = write_tree(tmp_path / "theirs", OTHER)
    code, first = run_json(capsys, args(tmp_path, ours))
    assert code == 0
    mine = current_files(tmp_path)
    assert run_json(capsys, args(tmp_path, ours))[1]["new_release"] is False
    # Another deploy (its own cache) publishes other files to the same target.
    code, other = run_json(capsys, args(tmp_path, theirs, cache="theirs.json"))
    assert code == 0 and other["new_release"]
    assert current_files(tmp_path) != mine
    code, again = run_json(capsys, args(tmp_path, ours))
    assert code == 0, again
    assert again["new_release"] and again["release"] not in (first["release"], other["release"])
    assert current_files(tmp_path) == mine
    # And the record now describes our release again: the next run changes nothing.
    code, last = run_json(capsys, args(tmp_path, ours))
    assert (code, last["release"], last["new_release"]) == (0, again["release"], False)


def test_a_change_is_published_even_when_the_current_release_is_recognised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    (static / "img/a.png").write_bytes(b"\x89PNG A")  # same size, new bytes
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0 and result["new_release"] and result["uploaded"] == 1
    entry = current_files(tmp_path)["img/a.png"]
    assert isinstance(entry, dict)
    assert (tmp_path / "cdn" / entry["key"]).read_bytes() == b"\x89PNG A"


@pytest.mark.parametrize("content", ["{not json", '{"version": 3, "sha256": 7}', "[]"])
def test_a_corrupt_record_is_ignored_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
) -> None:
    from pipeline.cli.main import main

    static = write_tree(tmp_path / "static", FILES)
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    record = tmp_path / "cache.json.current"
    record.write_text(content)
    capsys.readouterr()
    assert main(args(tmp_path, static)) == 0
    err = capsys.readouterr().err
    assert err.count(str(record)) == 1 and "warning" in err, err
    assert json.loads(record.read_text())["version"] == 3  # replaced by a good record


def test_a_record_of_another_version_is_ignored_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Its digest may be computed another way: never compared, never a warning."""
    from pipeline.cli.main import main

    static = write_tree(tmp_path / "static", FILES)
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    record = tmp_path / "cache.json.current"
    document = json.loads(record.read_text())
    release = document["release"]
    document.update(version=1, files="0" * 64)
    record.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([*args(tmp_path, static), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["release"], result["new_release"]) == (release, False)
    assert str(record) not in captured.err


def test_a_record_of_other_bytes_is_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A record says what *those* bytes hold: a wrong digest for other bytes changes
    nothing (the current manifest is decoded and compared)."""
    static = write_tree(tmp_path / "static", FILES)
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    record = tmp_path / "cache.json.current"
    document = json.loads(record.read_text())
    document["sha256"] = "0" * 64
    record.write_text(json.dumps(document))
    (static / "js/app.js").write_bytes(b"var App;\n")
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0 and result["new_release"] and result["uploaded"] == 1


def test_no_record_without_a_hash_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    argv = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / "m.json"), "--no-hash-cache", "--no-assets"]
    for _ in range(2):
        assert run_json(capsys, argv)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdn", "m.json", "static"]


def test_the_installed_deploy_keeps_its_record_beside_the_hash_cache(
    installed: InstalledTool, project: Path,
) -> None:
    for _ in range(2):
        run = installed.run("cdn-deploy", "--json", cwd=project)
        assert run.returncode == 0, run.stderr
    record = project / "build" / ".cdn-hash-cache.json.current"
    published = (project / "build" / "cdn" / "static" / "manifest.json").read_bytes()
    assert json.loads(record.read_text())["release"] == json.loads(published)["release"]
    (project / "static" / "extra.txt").write_text("new")
    run = installed.run("cdn-deploy", "--json", cwd=project)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["new_release"] is True
    assert "extra.txt" in json.loads(
        (project / "build" / "cdn" / "static" / "manifest.json").read_bytes())["files"]
