"""The command line as a user meets it: exit codes, one-line errors, output modes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.cli.reporting import ProgressReporter
from pipeline.release.plan import Plan
from pipeline.storage.base import Upload
from tests.helpers import S3Env, run_in_process

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, *, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """``deploy.py ARGS`` from ``cwd``: in this process through ``main`` (the same exit code
    and output), or with ``process`` the real interpreter."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    full_env.update({"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(ROOT),
                     "AWS_CONFIG_FILE": str(cwd / "none"),
                     "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "none")})
    full_env.update(env or {})
    # These trees are not the demo's static folder: build none of its bundles.
    args = [*args, "--no-assets"] if args[:1] != ["--no-such-flag"] else args
    if not process:
        return run_in_process(args, cwd=cwd, env=full_env)
    return subprocess.run([sys.executable, str(ROOT / "deploy.py"), *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow  # two deploy subprocesses, each starting the embedded S3 server
def test_embedded_default_needs_no_bucket_and_second_run_uploads_nothing(
    static_tree: Path, tmp_path: Path
) -> None:
    first = run_cli(["--static-dir", str(static_tree)], cwd=tmp_path, process=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith("Using the embedded default")
    assert "build/cdn" in first.stdout.splitlines()[0]
    assert "9 uploaded" in first.stdout
    published = tmp_path / "build" / "cdn" / "static"
    manifest = json.loads((tmp_path / "build" / "cdn-manifest.json").read_text())
    for logical, entry in manifest["files"].items():
        stored = tmp_path / "build" / "cdn" / entry["key"]
        assert stored.read_bytes() == (static_tree / logical).read_bytes()
    assert (published / "manifest.json").read_bytes() == (
        tmp_path / "build" / "cdn-manifest.json"
    ).read_bytes()

    second = run_cli(["--static-dir", str(static_tree), "--json"], cwd=tmp_path, process=True)
    assert second.returncode == 0
    summary = json.loads(second.stdout)
    assert summary["uploaded"] == 0 and summary["skipped"] == 9
    assert "Using the embedded default" in second.stderr.splitlines()[0]


def test_json_output_has_the_documented_fields(static_tree: Path, tmp_path: Path) -> None:
    result = run_cli(["--static-dir", str(static_tree), "--json", "--target-dir", "out"],
                     cwd=tmp_path)
    summary = json.loads(result.stdout)
    for field in ("files", "uploaded", "skipped", "bytes_uploaded"):
        assert isinstance(summary[field], int)
    assert isinstance(summary["manifest"], str)


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--static-dir", "missing"], {}, "static folder 'missing'"),
        (["--bucket", "Not_A_Bucket"], {}, "bucket name"),
        (["--bucket", "abc", "--endpoint-url", "localhost:9"], {}, "endpoint"),
        (["--workers", "0"], {}, "workers"),
        (["--no-such-flag"], {}, "no such option"),
        pytest.param(["--bucket", "abc", "--endpoint-url", "http://127.0.0.1:9"],
                     {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, "cannot reach",
                     marks=pytest.mark.slow),  # connection retries take seconds
    ],
)
def test_config_errors_exit_2_with_one_line_and_no_traceback(
    args: list[str], env: dict[str, str], needle: str, static_tree: Path, tmp_path: Path
) -> None:
    if "--static-dir" not in args:
        args = [*args, "--static-dir", str(static_tree)]
    result = run_cli(args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert needle in result.stderr.lower() or needle in result.stderr
    assert not (tmp_path / "build" / "cdn-manifest.json").exists()


def test_no_credentials_says_credentials(s3: S3Env, static_tree: Path, tmp_path: Path) -> None:
    result = run_cli(["--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                      "--static-dir", str(static_tree)], cwd=tmp_path)
    assert result.returncode == 2 and "credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_bucket_names_the_bucket(s3: S3Env, static_tree: Path, tmp_path: Path) -> None:
    result = run_cli(["--bucket", "no-such-bucket", "--endpoint-url", s3.endpoint,
                      "--static-dir", str(static_tree), "--json"], cwd=tmp_path,
                     env=s3.server.credentials.env())
    assert result.returncode == 2
    assert "no-such-bucket" in json.loads(result.stdout)["error"]
    assert "Traceback" not in result.stderr


def test_secrets_never_reach_the_output(s3: S3Env, static_tree: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = s3.endpoint.replace("http://", "http://user:topsecret@")
    code = main(["--bucket", s3.bucket, "--endpoint-url", endpoint,
                 "--static-dir", str(static_tree), "--manifest", str(tmp_path / "m.json")])
    captured = capsys.readouterr()
    # The deploy really ran (a refusal before connecting would print no endpoint at all).
    assert code == 0, captured.err
    assert "uploaded" in captured.out + captured.err
    assert "topsecret" not in captured.out + captured.err
    assert s3.server.credentials.secret_key not in captured.out + captured.err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--dry-run" in capsys.readouterr().out


class FakeClock:
    """Time that moves only when the test says so: progress output without timing."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _plan_and_uploads(count: int, size: int) -> tuple[Plan, list[Upload]]:
    from pipeline.manifest import Entry
    from pipeline.release.plan import PlannedFile, Reason

    files = tuple(PlannedFile(f"{i}.png", Entry(f"static/{i}.h.png", "h", size, "image/png"),
                              Path(f"{i}.png"), Reason.NEW) for i in range(count))
    uploads = [Upload(key=f"static/{i}.h.png", source=Path(f"{i}.png"), size=size,
                      content_type="image/png", cache_control="x") for i in range(count)]
    return Plan(files), uploads


def _report(count: int, size: int, *, tty: bool, verbose: bool = False,
            step: float = 1.0) -> list[str]:
    """Feed a reporter ``count`` uploads, ``step`` seconds apart; return its output lines."""
    clock, err = FakeClock(), io.StringIO()
    reporter = ProgressReporter(out=io.StringIO(), err=err, tty=tty, verbose_plan=False,
                                verbose=verbose, clock=clock)
    plan, uploads = _plan_and_uploads(count, size)
    reporter.planned(plan)
    for upload in uploads:
        clock.now += step
        reporter.stored(upload)
    return err.getvalue().split("\n")


def test_the_progress_bar_on_a_terminal_shows_rate_and_eta() -> None:
    output = "\n".join(_report(4, 1024 * 1024, tty=True))
    frames = output.split("\r")
    assert "1/4 files, 1.0 MiB/4.0 MiB, 1.0 MiB/s, ETA 3s" in frames[1]
    assert "4/4 files, 4.0 MiB/4.0 MiB, 1.0 MiB/s, done in 4s" in frames[-1]


def test_without_a_terminal_progress_is_a_line_every_1000_files_not_one_per_file() -> None:
    lines = _report(2500, 1024, tty=False, step=0.001)
    progress = [line for line in lines if line.startswith("uploaded")]
    assert [line.split(",")[0] for line in progress] == [
        "uploaded 1000/2500 files", "uploaded 2000/2500 files", "uploaded 2500/2500 files"]
    assert "2.4 MiB/2.4 MiB" in progress[-1] and "/s" in progress[-1]


def test_without_a_terminal_a_slow_deploy_gets_a_line_every_few_seconds() -> None:
    lines = _report(10, 1024, tty=False, step=3.0)
    progress = [line.split(",")[0] for line in lines if line.startswith("uploaded")]
    assert progress == ["uploaded 2/10 files", "uploaded 4/10 files", "uploaded 6/10 files",
                        "uploaded 8/10 files", "uploaded 10/10 files"]


def test_verbose_progress_is_one_line_per_file() -> None:
    lines = _report(3, 2048, tty=False, verbose=True)
    assert "[1/3] uploaded static/0.h.png (2.0 KiB)" in lines
    assert len([line for line in lines if "] uploaded " in line]) == 3


def test_a_closed_output_pipe_never_fails_the_uploads(static_tree: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env.update({"PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"})
    args = [sys.executable, str(ROOT / "deploy.py"), "--static-dir", str(static_tree),
            "--no-assets", "--target-dir", str(tmp_path / "cdn"), "--manifest",
            str(tmp_path / "m.json")]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    process.stdout.close()  # the reader leaves before the first line, like `| head -0`
    code = process.wait(timeout=60)
    assert code == 0
    manifest = json.loads((tmp_path / "m.json").read_text())  # published all the same
    assert len(manifest["files"]) == 9
