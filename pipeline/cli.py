"""The ``deploy.py`` command line: commands, options, output modes and exit codes.

``deploy.py [OPTIONS]`` deploys (as it always did); ``deploy.py releases | verify |
rollback | prune [OPTIONS]`` are the release commands of :mod:`pipeline.cli_ops`.
Exit codes are decided here and only here: 0 success, 1 a failed operation or
problems found (for a deploy: nothing published), 2 usage or configuration
errors, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from .cli_common import (
    INVALIDATE_OPTION,
    Run,
    common_options,
    invalidate_after_publish,
    open_storage,
    start_run,
)
from .config import DeploySettings
from .errors import PipelineError
from .publish import DeployResult, deploy
from .reporting import ProgressReporter, format_size
from .urls import cdn_url

__all__ = ["cli", "deploy_command", "main", "open_storage", "run"]


def _summary(result: DeployResult, invalidation: str | None) -> dict[str, Any]:
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
        "release": result.release_id,
        "previous_release": result.previous_release,
        "new_release": result.new_release,
        "conflicts": result.conflicts,
        "invalidation": invalidation,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Other commands: releases, verify, rollback, prune, private "
                      "(deploy.py COMMAND --help).")
@common_options
@click.option("--hash-cache", type=click.Path(dir_okay=False), help="Hash cache file [default: build/.cdn-hash-cache.json].")
@click.option("--no-hash-cache", is_flag=True, help="Re-hash every file.")
@click.option("--assets", type=click.Path(dir_okay=False), help="Python file whose BUNDLES (webassets) are built into the static folder first [CDN_ASSETS; deploy.py: site/assets.py].")
@click.option("--no-assets", is_flag=True, help="Build no bundles.")
@click.option("--no-strict", is_flag=True, help="A CSS url() to a missing file is a warning, not an error.")
@click.option("--dry-run", is_flag=True, help="Print the plan (new/unchanged per file); upload and write nothing.")
@click.option("--relist", is_flag=True, help="List the bucket even when nothing changed since the current release (re-uploads objects deleted behind the deploy's back; `verify` reports them).")
@INVALIDATE_OPTION
@click.pass_context
def deploy_command(ctx: click.Context, as_json: bool, quiet: bool, **options: Any) -> None:
    """Fingerprint the static folder, upload new objects, record a release, publish the manifest."""
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="publishing to")
    settings = run.settings
    _build_bundles(settings, run)
    reporter = ProgressReporter(
        out=run.out, err=None if quiet else sys.stderr,
        tty=sys.stderr.isatty(), verbose_plan=settings.dry_run and not quiet,
    )
    result = deploy(
        static_dir=settings.static_dir, prefix=settings.prefix, storage=open_storage(settings),
        manifest_path=settings.manifest_path, hash_cache_path=settings.hash_cache_path,
        dry_run=settings.dry_run, strict=settings.strict, relist=bool(options.get("relist")),
        observer=reporter,
    )
    invalidation = None if result.dry_run else invalidate_after_publish(
        options.get("distribution_id"), [result.manifest_key], release_id=result.release_id,
        max_attempts=settings.max_attempts)
    try:
        if as_json:
            run.emit(_summary(result, invalidation))
        else:
            _print_summary(result, settings, run, invalidation)
    except BrokenPipeError:
        # The deploy is done; only its reader left (``| head``). Silence stdout so the
        # interpreter's last flush cannot fail, and exit 0: nothing failed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _build_bundles(settings: DeploySettings, run: Run) -> None:
    """Bundles first, so their outputs are fingerprinted and uploaded like any file."""
    if settings.assets is None:
        return
    if settings.dry_run:
        run.say(f"Dry run: bundles of {settings.assets} not rebuilt (planning what is on disk)")
        return
    from .bundles import build_bundles, load_bundles

    outputs = build_bundles(load_bundles(settings.assets), static_dir=settings.static_dir)
    if not run.quiet:
        click.echo(f"Built {len(outputs)} bundle(s) from {settings.assets}: {', '.join(outputs)}",
                   file=sys.stderr)


def _print_summary(result: DeployResult, settings: DeploySettings, run: Run,
                   invalidation: str | None) -> None:
    if result.dry_run:
        click.echo(f"Dry run: would upload {len(result.plan.uploads)} of {len(result.plan.files)} "
                   f"files ({format_size(result.plan.bytes_to_upload)}) to {result.target}; "
                   "nothing was uploaded or written")
        return
    click.echo(f"Deployed {len(result.plan.files)} files to {result.target}: "
               f"{result.uploaded} uploaded ({format_size(result.bytes_uploaded)}), "
               f"{result.plan.skipped} unchanged")
    click.echo(f"Manifest: {result.manifest_path} (published as {result.manifest_key})")
    what = "new release" if result.new_release else "unchanged: already current"
    click.echo(f"Release: {result.release_id} ({what}; previous: "
               f"{result.previous_release or 'none'})")
    if invalidation:
        click.echo(f"CloudFront invalidation: {invalidation}")
    if settings.cdn_url and result.manifest.files:
        first = next(iter(sorted(result.manifest.files)))
        click.echo(f"Example: {first} -> {cdn_url(settings.cdn_url, result.manifest.files[first].key)}")


class DefaultGroup(click.Group):
    """A group whose default command is ``deploy``: ``deploy.py --bucket b`` keeps working.

    Only a first argument that names a command selects it; anything else (options,
    ``--help``) goes to the deploy, whose help lists the other commands.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["deploy", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Deploy static files to the CDN, and manage its releases."""


def _register() -> None:
    from .cli_ops import (
        private_command,
        prune_command,
        releases_command,
        rollback_command,
        verify_command,
    )
    from .serve import serve_command

    cli.add_command(deploy_command, "deploy")
    for command in (releases_command, verify_command, rollback_command, prune_command,
                    private_command, serve_command):
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (tests call this)."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        # Not standalone, click returns the code of ctx.exit() (--help, "problems found").
        code = cli.main(args=args, prog_name="deploy.py", standalone_mode=False,
                        obj={"env": os.environ if env is None else env})
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return report_failure(as_json, f"{exc.format_message()} (see --help)", 2)
    except click.Abort:
        return report_failure(as_json, "interrupted", 130)
    except PipelineError as exc:
        return report_failure(as_json, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return report_failure(as_json, "interrupted; nothing was published", 130)

    return code if isinstance(code, int) else 0


def report_failure(as_json: bool, message: str, code: int) -> int:
    """Say what failed (one line on stderr; with ``--json`` also the JSON object); return ``code``."""
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}, sort_keys=True))
    click.echo(f"error: {message}", err=True)
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
