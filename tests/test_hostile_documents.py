"""Documents Python's JSON accepts but no deploy writes: huge numbers, deep nesting, NaN.

Every such current manifest or release document is a ``ManifestError`` (never an
``OverflowError`` or ``RecursionError``): an app starts from its last-known-good copy,
every command of the installed CLI answers one ``error:`` line, and a deploy replaces
the bad current manifest. Against the real S3 servers (moto and SeaweedFS).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for

from pipeline import CDN
from pipeline.errors import ManifestError
from pipeline.flaskext.status import status_blueprint
from pipeline.jsondoc import MAX_DEPTH, nesting_exceeds
from pipeline.manifest import Manifest
from pipeline.releasedoc import ReleaseDoc
from tests.helpers import S3Env, run_json, target_args
from tests.installed import InstalledTool

CDN_BASE = "https://cdn.example.com"
ENTRY = b'{"key": "static/a.1.css", "hash": "ab", "size": %s, "content_type": "text/css"}'


def entry_with_size(size: bytes) -> bytes:
    return b'{"version": 1, "files": {"a.css": ' + ENTRY % size + b"}}"


def placeholder_entry(placeholder: bytes) -> bytes:
    return (b'{"version": 3, "files": {"a.jpg": {"key": "static/a.1.jpg", "hash": "ab", '
            b'"size": 1, "content_type": "image/jpeg", "width": 1, "height": 1, '
            b'"placeholder": ' + placeholder + b"}}}")


#: Name -> a document that must be refused; the first two are the ones of the report.
HOSTILE: dict[str, bytes] = {
    "size 1e400": entry_with_size(b"1e400"),
    "arrays 100,000 deep": b'{"version": 1, "files": {}, "x": ' + b"[" * 100_000
                           + b"]" * 100_000 + b"}",
    "objects 100,000 deep": b'{"version": 1, "files": {}, "x": ' + b'{"a": ' * 100_000
                            + b"1" + b"}" * 100_000 + b"}",
    "unclosed, 100,000 deep": b'{"version": 1, "files": ' + b"[" * 100_000,
    "size NaN": entry_with_size(b"NaN"),
    "size -Infinity": entry_with_size(b"-Infinity"),
    "size 1.5": entry_with_size(b"1.5"),
    "size true": entry_with_size(b"true"),
    "size as a string": entry_with_size(b'"12"'),
    "negative size": entry_with_size(b"-1"),
    "size beyond any object": entry_with_size(str(10**30).encode()),
    "4,000-digit width": b'{"version": 2, "files": {"a.png": {"key": "static/a.1.png", '
                         b'"hash": "ab", "size": 1, "content_type": "image/png", "width": '
                         + b"9" * 4000 + b', "height": 1}}}',
    "variant size 1e400": b'{"version": 2, "files": {"a.png": {"key": "static/a.1.png", '
                          b'"hash": "ab", "size": 1, "content_type": "image/png", "width": 1, '
                          b'"height": 1, "variants": [{"key": "static/a.2.webp", "width": 1, '
                          b'"height": 1, "content_type": "image/webp", "size": 1e400}]}}}',
    "version 1.0": b'{"version": 1.0, "files": {}}',
    "placeholder that closes its CSS": placeholder_entry(
        b'{"color": "#000000", "preview": "data:image/webp;base64,AA\\")}*{background:red"}'),
    "placeholder of 100,000 characters": placeholder_entry(
        b'{"color": "#000000", "preview": "data:image/webp;base64,' + b"A" * 100_000 + b'"}'),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_every_hostile_document_is_a_manifest_error(name: str) -> None:
    for parse in (Manifest.from_json, ReleaseDoc.from_json):
        with pytest.raises(ManifestError):
            parse(HOSTILE[name], source="current manifest")


def test_names_with_brackets_quotes_and_backslashes_still_parse() -> None:
    name = '[[[[[[[[[[[[[[[[[[[[ {{{{ "quoted" back\\slash \\" ]]]'
    document = {"version": 1, "files": {name: {"key": "static/a.1.css", "hash": "ab",
                                               "size": 3, "content_type": "text/css"}}}
    assert list(Manifest.from_json(json.dumps(document).encode()).files) == [name]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _document(rng: random.Random, levels: int) -> Any:
    if levels == 0 or rng.random() < 0.2:
        return rng.choice(["[x]", "a{b", "\\", '"', "", 1, '"[\\\\', "}]"])
    if rng.random() < 0.5:
        return [_document(rng, levels - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k[", "}", '\\"', "q"]) + str(i): _document(rng, levels - 1)
            for i in range(rng.randint(0, 3))}


def test_the_depth_check_agrees_with_the_parsed_depth() -> None:
    """The check never recurses; its answer is the real nesting depth's, brackets in strings
    and escapes included (2,000 generated documents, a fixed seed)."""
    rng = random.Random(19)
    for _ in range(2000):
        document = _document(rng, rng.randint(0, 8))
        text = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
        depth = _depth(document)
        for limit in range(9):
            assert nesting_exceeds(text, limit) == (depth > limit), (text, limit)
    assert not nesting_exceeds(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, MAX_DEPTH)


# --- an app following a bucket -----------------------------------------------------------


def make_app(s3: S3Env, tmp_path: Path, static: Path) -> Flask:
    app = Flask(__name__, static_folder=str(static))
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=f"s3://{s3.bucket}/static",
                      CDN_ENDPOINT_URL=s3.endpoint,
                      CDN_MANIFEST_CACHE=str(tmp_path / "last-good.json"))
    app.register_blueprint(status_blueprint, url_prefix="/_cdn")
    CDN(app)
    app.add_url_rule("/logo", "logo", lambda: url_for("static", filename="img/logo.png"))
    return app


@pytest.mark.parametrize("name", ["size 1e400", "arrays 100,000 deep", "size NaN", "size true"])
def test_an_app_starts_from_its_last_known_good_copy_when_the_current_manifest_is_hostile(
    name: str, s3: S3Env, static_tree: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, summary = run_json(capsys, [*target_args(s3, tmp_path, static_tree), "-q",
                                      "--no-assets"])
    assert code == 0, summary
    healthy = make_app(s3, tmp_path, static_tree)  # writes the last-known-good copy
    good = healthy.test_client().get("/logo").get_data(as_text=True)
    assert good.startswith(f"{CDN_BASE}/static/img/logo.")
    s3.client.put_object(Bucket=s3.bucket, Key="static/manifest.json", Body=HOSTILE[name])

    app = make_app(s3, tmp_path, static_tree)
    try:
        assert app.test_client().get("/logo").get_data(as_text=True) == good
        report = app.test_client().get("/_cdn/status").get_json()
        assert report["loaded_from"] == "last-known-good"
        assert report["release"] == summary["release"]
        assert "static/manifest.json" in report["last_error"]
    finally:
        for each in (healthy, app):
            CDN.state(each).refresher.stop()


# --- the installed command line ------------------------------------------------------------


def one_error_line(result: Any) -> str:
    """The command failed with exactly one ``error:`` line and no traceback."""
    assert result.returncode in (1, 2), (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_every_command_answers_a_hostile_document_in_one_line_and_a_deploy_replaces_it(
    s3: S3Env, installed: InstalledTool, project: Path,
) -> None:
    bucket = ["--bucket", s3.bucket, "--endpoint-url", s3.endpoint]
    env = s3.server.credentials.env()

    def run(*args: str) -> Any:
        return installed.run("cdn-deploy", *args, *bucket, cwd=project, **env)

    first = run("--json", "-q")
    assert first.returncode == 0, first.stderr
    release = json.loads(first.stdout)["release"]
    put = s3.client.put_object

    # A current manifest whose sizes overflow: the commands that need it say so in one line,
    # the others carry on without it.
    put(Bucket=s3.bucket, Key="static/manifest.json", Body=HOSTILE["size 1e400"])
    assert "is not valid JSON: 1e400 is out of range" in one_error_line(run("verify"))
    assert "no readable manifest" in one_error_line(run("prune"))
    listed = run("releases")
    assert listed.returncode == 0 and release in listed.stdout, listed.stderr
    assert "Traceback" not in listed.stderr
    rolled = run("rollback", release)  # replaces the unreadable current manifest
    assert rolled.returncode == 0 and "Traceback" not in rolled.stderr, rolled.stderr
    assert ReleaseDoc.from_json(s3.get("static/manifest.json")["Body"].read(),
                                source="test").release_id == release
    put(Bucket=s3.bucket, Key="static/manifest.json", Body=HOSTILE["size 1e400"])
    replaced = run("--json", "-q")
    assert replaced.returncode == 0, replaced.stderr
    current = s3.get("static/manifest.json")["Body"].read()
    assert ReleaseDoc.from_json(current, source="test").release_id == json.loads(
        replaced.stdout)["release"]

    # A release document nested 100,000 deep: every command that reads it refuses it.
    put(Bucket=s3.bucket, Key=f"static/releases/{release}.json",
        Body=HOSTILE["arrays 100,000 deep"])
    for args in (["releases"], ["prune"], ["rollback", release],
                 ["verify", "--release", release]):
        assert "nests deeper than" in one_error_line(run(*args)), args
