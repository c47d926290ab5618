"""A plain script's facts ride in the hash cache (issue 25, 100k files).

A JS file that is UTF-8 and names nothing (no ``import``/``export``/source-map comment) is
stored as it is, so all a deploy needs of its bytes is the SHA-256 and the integrity value.
The hash cache keeps the integrity beside the hash, under the same stamp: an unchanged
script is not read again, and any change the stamp shows (even with the mtime put back)
makes the deploy read, parse and hash it afresh.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import pipeline.build.assemble as assemble
from pipeline.localfs import LocalFile
from tests.helpers import run_json, write_tree
from tests.test_hash_cache_stamps import rewrite_keeping_mtime

PLAIN = b"var answer = 421;\n"
#: The same size, but it names a module now: its specifier must be rewritten.
IMPORTS = b'import "./b.js";1\n'
assert len(PLAIN) == len(IMPORTS)


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def args(tmp_path: Path, static: Path, *extra: str) -> list[str]:
    return ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / "m.json"), "--hash-cache", str(tmp_path / "cache.json"),
            "--no-assets", *extra]


def entry(tmp_path: Path, logical: str) -> dict[str, str]:
    files: dict[str, dict[str, str]] = json.loads((tmp_path / "m.json").read_text())["files"]
    return files[logical]


def edit_cached_entry(tmp_path: Path, static: Path, capsys: pytest.CaptureFixture[str],
                      edit: Callable[[list[object]], list[object]]) -> str:
    """Deploy ``static`` once, then replace its one hash-cache entry by ``edit(entry)``:
    the entry's cache name."""
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    cache_file = tmp_path / "cache.json"
    document = json.loads(cache_file.read_text())
    (name, value), = document["entries"].items()
    document["entries"][name] = edit(value)
    cache_file.write_text(json.dumps(document))
    return str(name)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The logical paths the build reads whole (CSS/JS parsing and integrity values)."""
    reads: list[str] = []
    real = assemble._read

    def counting(item: LocalFile) -> bytes:
        reads.append(item.logical_path)
        return real(item)

    monkeypatch.setattr(assemble, "_read", counting)
    return reads


def test_an_unchanged_plain_script_is_not_read_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    static = write_tree(tmp_path / "static", {"js/a.js": PLAIN, "js/b.js": b"var b;\n"})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    reads = count_reads(monkeypatch)
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert result["uploaded"] == 0 and not result["new_release"]
    assert reads == []
    assert entry(tmp_path, "js/a.js")["integrity"] == sri(PLAIN)


def test_a_plain_script_changed_with_its_mtime_put_back_is_parsed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", {"js/a.js": PLAIN, "js/b.js": b"var b;\n"})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    assert run_json(capsys, args(tmp_path, static))[0] == 0  # warm: a.js's facts cached
    rewrite_keeping_mtime(static / "js/a.js", IMPORTS)
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    a, b = entry(tmp_path, "js/a.js"), entry(tmp_path, "js/b.js")
    stored = (tmp_path / "cdn" / a["key"]).read_bytes()
    b_name = b["key"].rsplit("/", 1)[1]
    assert stored == f'import "./{b_name}";1\n'.encode()  # the specifier was rewritten
    assert a["integrity"] == sri(stored)


def test_a_script_that_is_not_utf8_is_reported_on_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Non-strict mode uploads it with a warning; a warm cache must not silence it."""
    from pipeline.cli.main import main

    static = write_tree(tmp_path / "static", {"js/bad.js": b"var x = '\xff';\n"})
    for _ in range(3):
        capsys.readouterr()
        assert main(args(tmp_path, static, "--no-strict")) == 0
        assert "js/bad.js: byte 0xff at offset 9 is not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [7, None, ["sha384-x"]])
def test_a_malformed_integrity_in_the_cache_is_not_trusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: object,
) -> None:
    static = write_tree(tmp_path / "static", {"js/a.js": PLAIN})
    recorded: list[object] = []

    def malform(value: list[object]) -> list[object]:
        recorded.append(value[5])
        return [*value[:5], bad]

    name = edit_cached_entry(tmp_path, static, capsys, malform)
    assert recorded == [sri(PLAIN)]
    cache_file = tmp_path / "cache.json"
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert entry(tmp_path, "js/a.js")["integrity"] == sri(PLAIN)
    assert json.loads(cache_file.read_text())["entries"][name][5] == sri(PLAIN)


def test_a_forged_integrity_under_another_stamp_is_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The value is trusted only with the stamp it was recorded under."""
    static = write_tree(tmp_path / "static", {"js/a.js": PLAIN})
    edit_cached_entry(tmp_path, static, capsys, lambda value: [
        value[0], value[1] - 1, *value[2:5], sri(b"forged")])  # type: ignore[operator]
    code, result = run_json(capsys, args(tmp_path, static))
    assert code == 0, result
    assert entry(tmp_path, "js/a.js")["integrity"] == sri(PLAIN)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 2, "entries": 7}'])
def test_a_corrupt_hash_cache_is_ignored_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
) -> None:
    from pipeline.cli.main import main

    static = write_tree(tmp_path / "static", {"js/a.js": PLAIN, "img/a.png": b"png"})
    assert run_json(capsys, args(tmp_path, static))[0] == 0
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(content)
    (static / "js/a.js").write_bytes(IMPORTS.replace(b"b.js", b"a.js"))  # changed meanwhile
    capsys.readouterr()
    assert main(args(tmp_path, static)) == 0
    err = capsys.readouterr().err
    assert err.count(str(cache_file)) == 1 and "warning" in err, err
    assert entry(tmp_path, "js/a.js")["hash"] == hashlib.sha256(
        (tmp_path / "cdn" / entry(tmp_path, "js/a.js")["key"]).read_bytes()).hexdigest()
    assert json.loads(cache_file.read_text())["version"] == 2  # rewritten whole
    capsys.readouterr()
    assert main(args(tmp_path, static)) == 0
    assert str(cache_file) not in capsys.readouterr().err
