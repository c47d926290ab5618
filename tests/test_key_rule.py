"""One rule for names and keys (issue 19, item 2): what an app refuses to load, the deploy
refuses before it uploads anything.

The cases come from the rule itself (``pipeline.keyrule.KEY_RULES``): every example a rule
gives is refused by the manifest reader, and, where a file can have that path, by the deploy
(exit 2, the name escaped, nothing stored). Names the rule accepts deploy and load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flask import Flask, url_for

from pipeline import CDN, ManifestError
from pipeline.cli.main import main
from pipeline.keyrule import KEY_RULES, key_problem
from pipeline.localfs import display_name, is_junk
from pipeline.manifest import Manifest
from tests.installed import InstalledTool

#: Every (reason, example) the rule gives.
CASES = [(rule.reason, example) for rule in KEY_RULES for example in rule.examples]


def file_path(example: str) -> str | None:
    """The example as a path a file can have below a static folder, or ``None`` (a NUL, an
    empty, ``.`` or ``..`` segment: no walk can ever produce such a path)."""
    parts = example.split("/")
    if "\x00" in example or any(part in ("", ".", "..") for part in parts):
        return None
    return example


def write(root: Path, logical: str, data: bytes) -> None:
    """Create ``root/logical`` with bytes names (a lone surrogate is a non-UTF-8 byte)."""
    path = os.fsencode(root) + b"/" + os.fsencode(logical)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def document(key: str) -> dict[str, object]:
    return {"version": 1, "files": {"img/a.png": {
        "key": key, "hash": "0" * 64, "size": 1, "content_type": "image/png"}}}


def deploy(static: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
                 "--manifest", str(tmp_path / "m.json"), "--no-hash-cache", "--json", "-q"])
    return code, json.loads(capsys.readouterr().out)


def stored(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cdn"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_every_rule_has_a_case_a_deploy_could_meet_or_says_why_not() -> None:
    """So the deploy-side test below covers every rule a file name can break."""
    for rule in KEY_RULES:
        nameable = [e for e in rule.examples if file_path(e) is not None]
        assert nameable or rule.reason in ("is empty",
                                           "is absolute or has an empty, '.' or '..' segment")
    for _, example in CASES:
        assert key_problem(example) is not None, repr(example)


@pytest.mark.parametrize(("reason", "example"), CASES)
def test_the_manifest_reader_refuses_every_case(reason: str, example: str) -> None:
    with pytest.raises(ManifestError, match="unsafe key"):
        Manifest.from_document(document(f"static/{example}" if example else ""))
    with pytest.raises(ManifestError, match="unsafe key"):
        Manifest.from_document(document(example))


@pytest.mark.parametrize(("reason", "example"),
                         [(r, e) for r, e in CASES if file_path(e) is not None])
def test_the_deploy_refuses_every_case_a_file_can_have_before_any_upload(
    reason: str, example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = tmp_path / "static"
    write(static, "ok.txt", b"fine")
    write(static, example, b"odd")
    code, result = deploy(static, tmp_path, capsys)
    if any(is_junk(part) for part in example.split("/")):  # a dotfile: left out, never a key
        assert code == 0 and "up" not in " ".join(map(str, stored(tmp_path)))
        return
    assert code == 2, result
    error = str(result["error"])
    assert "\n" not in error and "\r" not in error and "\x1b" not in error
    assert f"{display_name(first_bad(example))} ({reason})" in error, error
    assert stored(tmp_path) == []


def first_bad(path: str) -> str:
    """The path of the first folder or file on ``path`` whose name breaks the rule."""
    parts = path.split("/")
    for end in range(1, len(parts) + 1):
        if key_problem(parts[end - 1]) is not None:
            return "/".join(parts[:end])
    raise AssertionError(path)


#: Odd names the rule accepts: each must deploy and load, and url_for must reach its object.
ACCEPTED = ["sp ace.png", "per%cent.png", "hash#1.png", "what?.png", "quote'\"q.png",
            "caf\u00e9.png", "\u00fcn\u00efc\u00f6de/\u65e5\u672c.png", "emoji\U0001f600.png",
            "semi;colon&amp.png", "a..b.png", "trailing.", "plus+=.png", "<angle>.png",
            "nbsp\u00a0.png", "zero\u200bwidth.png", "rtl\u202egnp.txt", "~tilde", "-dash.png"]


def test_awkward_names_the_rule_accepts_deploy_and_the_app_loads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = tmp_path / "static"
    for index, name in enumerate(ACCEPTED):
        assert key_problem(name) is None, name
        write(static, name, f"file {index}".encode())
    code, result = deploy(static, tmp_path, capsys)
    assert code == 0, result
    manifest = Manifest.load(tmp_path / "m.json")
    assert sorted(manifest.files) == sorted(ACCEPTED)
    app = Flask(__name__, static_folder=str(static))
    app.config.update(CDN_URL="https://cdn.example.com", CDN_MANIFEST=str(tmp_path / "m.json"))
    CDN(app)  # raised ManifestError on a name the deploy had published
    with app.test_request_context():
        for index, name in enumerate(ACCEPTED):
            key = manifest.files[name].key
            assert (tmp_path / "cdn" / key).read_bytes() == f"file {index}".encode()
            assert url_for("static", filename=name).startswith("https://cdn.example.com/static/")


def test_the_installed_deploy_refuses_a_backslash_name_before_uploading(
    installed: InstalledTool, project: Path,
) -> None:
    (project / "static" / "img" / "back\\slash.png").write_bytes(b"x")
    result = installed.run("cdn-deploy", "--target-dir", "out", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "'img/back\\\\slash.png' (contains a backslash)" in result.stderr
    assert not (project / "out").exists()
