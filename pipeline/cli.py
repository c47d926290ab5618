"""The ``deploy.py`` command line: options, output modes and exit codes.

Exit codes are decided here and only here: 0 success, 1 a deploy that failed
(nothing published), 2 usage or configuration errors, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from .config import DEFAULT_EMBEDDED_DIR, DeploySettings, resolve_settings
from .errors import PipelineError
from .publish import DeployResult, deploy
from .reporting import ProgressReporter, format_size
from .storage import FolderStorage, Storage
from .urls import cdn_url


def open_storage(settings: DeploySettings) -> Storage:
    """The backend the settings name; boto3 is imported only for a bucket."""
    if settings.bucket:
        from .storage.s3 import S3Settings, S3Storage

        return S3Storage(S3Settings(
            bucket=settings.bucket, endpoint_url=settings.endpoint_url,
            region=settings.region, workers=settings.workers,
            max_attempts=settings.max_attempts,
        ))
    return FolderStorage(settings.target_dir or DEFAULT_EMBEDDED_DIR)


def _emit_json(document: Mapping[str, Any]) -> None:
    click.echo(json.dumps(document, sort_keys=True))


def _summary(result: DeployResult) -> dict[str, Any]:
    return {
        "files": len(result.plan.files),
        "uploaded": result.uploaded,
        "skipped": result.plan.skipped,
        "bytes_uploaded": result.bytes_uploaded,
        "bytes_total": result.manifest.total_bytes,
        "manifest": str(result.manifest_path),
        "manifest_key": result.manifest_key,
        "target": result.target,
        "dry_run": result.dry_run,
        "plan": {item.logical_path: item.reason.value for item in result.plan.files}
        if result.dry_run else None,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--static-dir", type=click.Path(file_okay=False), help="Folder to deploy [CDN_STATIC_DIR; default: static].")
@click.option("--bucket", help="Target bucket [CDN_BUCKET]. Without one, the embedded default folder is used.")
@click.option("--prefix", help="Key prefix in the bucket [CDN_PREFIX; default: static].")
@click.option("--endpoint-url", help="S3-compatible endpoint, e.g. MinIO or R2 [AWS_ENDPOINT_URL].")
@click.option("--region", help="Bucket region [AWS_REGION].")
@click.option("--cdn-url", help="Public base URL of the CDN, for the summary [CDN_URL].")
@click.option("--manifest", type=click.Path(dir_okay=False), help="Where to write the manifest [CDN_MANIFEST; default: build/cdn-manifest.json].")
@click.option("--target-dir", type=click.Path(file_okay=False), help="Publish to this folder instead of a bucket [CDN_TARGET_DIR].")
@click.option("--workers", type=int, help="Concurrent uploads (1-64) [CDN_WORKERS; default: 16].")
@click.option("--max-attempts", type=int, help="Tries per request before giving up (1-20) [CDN_MAX_ATTEMPTS; default: 6].")
@click.option("--hash-cache", type=click.Path(dir_okay=False), help="Hash cache file [default: build/.cdn-hash-cache.json].")
@click.option("--no-hash-cache", is_flag=True, help="Re-hash every file.")
@click.option("--no-strict", is_flag=True, help="A CSS url() to a missing file is a warning, not an error.")
@click.option("--dry-run", is_flag=True, help="Print the plan (new/unchanged per file); upload and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def deploy_command(ctx: click.Context, as_json: bool, quiet: bool, **options: Any) -> None:
    """Fingerprint the static folder, upload new objects, then publish the manifest."""
    env: Mapping[str, str] = ctx.obj.get("env", os.environ) if isinstance(ctx.obj, dict) else os.environ
    settings = resolve_settings(options, env)
    out = sys.stderr if as_json else sys.stdout
    if settings.embedded:
        click.echo(f"Using the embedded default: no bucket configured (--bucket / CDN_BUCKET), "
                   f"publishing to local folder {str(DEFAULT_EMBEDDED_DIR)!r}", file=out)
    storage = open_storage(settings)
    reporter = ProgressReporter(
        out=out, err=None if quiet else sys.stderr,
        tty=sys.stderr.isatty(), verbose_plan=settings.dry_run and not quiet,
    )
    result = deploy(
        static_dir=settings.static_dir, prefix=settings.prefix, storage=storage,
        manifest_path=settings.manifest_path, hash_cache_path=settings.hash_cache_path,
        dry_run=settings.dry_run, strict=settings.strict, observer=reporter,
    )
    if as_json:
        _emit_json(_summary(result))
        return
    _print_summary(result, settings)


def _print_summary(result: DeployResult, settings: DeploySettings) -> None:
    if result.dry_run:
        click.echo(f"Dry run: would upload {len(result.plan.uploads)} of {len(result.plan.files)} "
                   f"files ({format_size(result.plan.bytes_to_upload)}) to {result.target}; "
                   "nothing was uploaded or written")
        return
    click.echo(f"Deployed {len(result.plan.files)} files to {result.target}: "
               f"{result.uploaded} uploaded ({format_size(result.bytes_uploaded)}), "
               f"{result.plan.skipped} unchanged")
    click.echo(f"Manifest: {result.manifest_path} (published as {result.manifest_key})")
    if settings.cdn_url and result.manifest.files:
        first = next(iter(sorted(result.manifest.files)))
        click.echo(f"Example: {first} -> {cdn_url(settings.cdn_url, result.manifest.files[first].key)}")


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (tests call this)."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        deploy_command.main(args=args, prog_name="deploy.py", standalone_mode=False,
                            obj={"env": os.environ if env is None else env})
    except click.exceptions.Exit as exc:  # --help
        return int(exc.exit_code)
    except click.UsageError as exc:
        return _fail(as_json, f"{exc.format_message()} (see --help)", 2)
    except click.Abort:
        return _fail(as_json, "interrupted", 130)
    except PipelineError as exc:
        return _fail(as_json, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(as_json, "interrupted; nothing was published", 130)
    return 0


def _fail(as_json: bool, message: str, code: int) -> int:
    if as_json:
        _emit_json({"error": message, "exit_code": code})
    click.echo(f"error: {message}", err=True)
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
