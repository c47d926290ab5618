"""Servers that ignore If-Match/If-None-Match are refused before anything is written
(issue 9, item 7). ``tests.faultproxy`` plays such a server by dropping the headers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.faultproxy import fault_proxy
from tests.helpers import S3Env, assert_consistent, run_json, target_args, write_tree

ROOT = Path(__file__).resolve().parent.parent


#: ignore_conditions drops signed headers; a real server then refuses the signature (403).
STAND_IN_NEEDS_MOTO = pytest.mark.moto_only(
    "the stand-in proxy drops the signed If-Match/If-None-Match headers: only moto skips "
    "the signature check")


def probes(proxy: object) -> list[str]:
    return [path for method, path, _ in proxy.headers  # type: ignore[attr-defined]
            if method == "PUT" and "/releases/probe-" in path]


@STAND_IN_NEEDS_MOTO
def test_deploy_refuses_a_server_that_ignores_conditional_writes(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_proxy(s3.endpoint, ignore_conditions=True) as proxy:
        args = target_args(s3, tmp_path, static_tree, endpoint=proxy.url)
        code, result = run_json(capsys, [*args, "-q"])
        assert code == 2 and "ignores conditional writes" in result["error"]
        assert "--unsafe-no-conditional-writes" in result["error"]
        assert s3.keys() == {}  # nothing uploaded, and the probe key was removed
        code, result = run_json(capsys, [*args, "-q", "--unsafe-no-conditional-writes"])
        assert code == 0, result
    assert len(probes(proxy)) == 2  # probed once for both runs: cached per endpoint+bucket
    assert not [key for key in set(s3.keys()) if "probe-" in key]
    assert_consistent(s3)


@STAND_IN_NEEDS_MOTO
def test_rollback_refuses_too_and_changes_nothing(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = target_args(s3, tmp_path, static_tree)
    assert run_json(capsys, [*args, "-q"])[0] == 0
    write_tree(static_tree, {"LICENSE": b"BSD\n"})
    assert run_json(capsys, [*args, "-q"])[0] == 0
    before = assert_consistent(s3)
    with fault_proxy(s3.endpoint, ignore_conditions=True) as proxy:
        code, result = run_json(capsys, ["rollback", *target_args(
            s3, tmp_path, static_tree, endpoint=proxy.url)])
    assert code == 2 and "ignores conditional writes" in result["error"]
    assert assert_consistent(s3) == before


def test_a_server_that_enforces_them_is_probed_once_and_used(
    s3: S3Env, static_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_proxy(s3.endpoint) as proxy:
        args = target_args(s3, tmp_path, static_tree, endpoint=proxy.url)
        assert run_json(capsys, [*args, "-q"])[0] == 0
        write_tree(static_tree, {"LICENSE": b"BSD\n"})
        assert run_json(capsys, [*args, "-q"])[0] == 0
        assert run_json(capsys, ["rollback", *args])[0] == 0
    sent = probes(proxy)
    assert len(sent) == 2 and len(set(sent)) == 1  # one key, two PUTs, in the whole process
    headers = [h for method, path, h in proxy.headers if method == "PUT" and path == sent[0]]
    assert all(h.get("if-none-match") == "*" for h in headers)


@STAND_IN_NEEDS_MOTO
def test_the_refusal_from_a_foreign_project_is_one_line_exit_2(
    s3: S3Env, tmp_path: Path
) -> None:
    project = tmp_path / "elsewhere"
    write_tree(project / "static", {"app.js": b"1;\n"})
    env = {"PATH": "/usr/bin:/bin", **s3.server.credentials.env(),
           "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "PYTHONPATH": str(ROOT),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    with fault_proxy(s3.endpoint, ignore_conditions=True) as proxy:
        done = subprocess.run(
            [sys.executable, str(ROOT / "deploy.py"), "--bucket", s3.bucket, "--endpoint-url",
             proxy.url, "--no-assets"], cwd=project, env=env, capture_output=True, text=True,
            check=False,
            timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "ignores conditional writes" in done.stderr
    assert "Traceback" not in done.stderr and s3.keys() == {}


NOT_A_POLICY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>'
                b"<Name>assets</Name></ListBucketResult>")


def test_private_refuses_a_policy_that_is_not_json_unless_forced(
    s3: S3Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9, item 8: a server without bucket policies may answer ?policy with XML."""
    folder = write_tree(tmp_path / "private", {"plan.png": b"\x89PNG\r\n\x1a\n plan"})
    with fault_proxy(s3.endpoint, replies={"?policy": NOT_A_POLICY}) as proxy:
        args = ["private", str(folder), "--bucket", s3.bucket, "--endpoint-url", proxy.url]
        code, result = run_json(capsys, args)
        assert code == 2
        assert "not a JSON policy" in result["error"]
        assert "may not support bucket policies" in result["error"]
        assert "--force" in result["error"] and s3.keys() == {}
        code, result = run_json(capsys, [*args, "--force"])
    assert code == 0 and result["uploaded"] == 1
    assert list(s3.keys()) == ["private/plan.png"]
