"""The command line (``cdn-deploy``, ``python -m pipeline``, ``deploy.py``): commands, options,
output modes and exit codes.

``cdn-deploy [OPTIONS]`` deploys (as it always did); ``cdn-deploy releases | verify |
rollback | prune [OPTIONS]`` are the release commands of :mod:`pipeline.cli.commands`.
Exit codes are decided here and only here: 0 success, 1 a failed operation or
problems found (for a deploy: nothing published), 2 usage or configuration
errors, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); the numbers live in
:mod:`pipeline.errors`.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, Interrupted, PipelineError
from ..extras import DISTRIBUTION
from ..localfs import printable_name
from ..processes import preload_in_workers
from ..pyproject import TABLE_NAME
from ..urls import cdn_url, redact_url
from ..validate import format_duration
from .common import (
    APP_OPTIONS,
    CDN_URL_OPTION,
    CHECK_OPTIONS,
    FILTER_OPTIONS,
    INVALIDATE_OPTION,
    MANIFEST_OPTION,
    STATIC_DIR_OPTION,
    STATIC_URL_PATH_OPTION,
    UNSAFE_WRITES_OPTION,
    VARIANT_OPTIONS,
    WORKERS_OPTION,
    Run,
    common_options,
    deploy_folders,
    deploy_options,
    images_left_line,
    invalidate_after_publish,
    open_storage,
    program,
    resolve_for,
    stacked,
    start_run,
)
from .interrupt import GUARD
from .settings import OPTIONS_BY_NAME, DeploySettings, describe_source

if TYPE_CHECKING:
    from ..release.result import DeployResult
    from ..storage import Storage

__all__ = ["cli", "deploy_command", "main", "open_storage", "run"]


def _summary(result: DeployResult, invalidation: str | None) -> dict[str, Any]:
    """The ``--json`` object. ``uploaded``/``bytes_uploaded`` count every object (files and
    image variants, as they always did); ``files_uploaded``/``variant_uploads`` and their
    bytes count each kind apart."""
    from .reporting import UploadCounts

    counts = UploadCounts.of(result)
    return {
        "files": len(result.plan.files),
        "uploaded": result.uploaded,
        "files_uploaded": counts.files,
        "skipped": result.plan.skipped,
        "bytes_uploaded": result.bytes_uploaded,
        "file_bytes_uploaded": counts.file_bytes,
        "variant_bytes_uploaded": counts.variant_bytes,
        "bytes_total": result.manifest.total_bytes,
        "manifest": str(result.manifest_path),
        "manifest_key": result.manifest_key,
        "target": result.target,
        "dry_run": result.dry_run,
        "plan": {item.logical_path: item.reason.value for item in result.plan.files}
        if result.dry_run else None,
        "ignored": {item.logical_path: item.reason for item in result.ignored}
        if result.dry_run else None,
        "release": result.release_id,
        "previous_release": result.previous_release,
        "current_release": result.current_release,
        "current_is_rollback": result.current_is_rollback,
        "new_release": result.new_release,
        "conflicts": result.conflicts,
        "hashes_from_git": result.hashes_from_git,
        "invalidation": invalidation,
        "encoded": result.encoded,
        "restored": len(result.restored),
        "variant_uploads": counts.variants,
        "images_left": len(result.images_left),
        "variants_left": result.variants_left,
        "encode_seconds": round(result.encode_seconds, 3),
        "compressed": result.compressed,
        "sibling_uploads": 0 if result.dry_run else result.sibling_uploads,
        "from_tree_record": result.from_tree_record,
    }


def package_version() -> str:
    """The installed distribution's version (the one source: ``pyproject.toml``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"{ctx.command_path} ({DISTRIBUTION}) {package_version()}")
    ctx.exit(0)


class DeployCommand(click.Command):
    """The deploy command, whose help also names the other commands of the program that
    was invoked (``deploy.py``, ``cdn-deploy``, ``python -m pipeline``, ``flask cdn``)."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)))
        if ctx.parent is None:  # run as the program itself: the other commands come first
            formatter.write_usage(program(ctx), "[COMMAND] [OPTIONS]", prefix="   or: ")

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        others = ", ".join(name for name in _commands(ctx) if name != ctx.info_name)
        # Only the program itself deploys without a command; a group (flask cdn) needs one.
        deploy = "deploy (the default)" if ctx.parent is None else "deploy"
        formatter.write_paragraph()
        formatter.write_text(
            f"COMMAND: {deploy}, {others} ({program(ctx)} COMMAND --help). "
            "Settings also come from the [tool.flask-cdn-pipeline] table of pyproject.toml: "
            "see --show-config.")


def _commands(ctx: click.Context) -> list[str]:
    """The commands the invoked program offers (a ``flask cdn`` group offers its own)."""
    parent = ctx.parent
    if parent is not None and isinstance(parent.command, click.Group):
        return [name for name in parent.command.list_commands(parent) if name != "deploy"]
    return sorted(LAZY_COMMANDS)


@click.command(cls=DeployCommand, context_settings={"help_option_names": ["-h", "--help"]})
@common_options(WORKERS_OPTION, STATIC_DIR_OPTION, STATIC_URL_PATH_OPTION, MANIFEST_OPTION,
                CDN_URL_OPTION)
@stacked(*APP_OPTIONS)
@click.option("--assets", type=click.Path(dir_okay=False),
              help="Python file whose BUNDLES (webassets) are built into the static folder first "
                   "[CDN_ASSETS; default: none].")
@click.option("--no-assets", is_flag=True, help="Build no bundles, even if configured.")
@stacked(*FILTER_OPTIONS)
@click.option("--variants/--no-variants", default=None,
              help="Make responsive image variants (AVIF, WebP, a JPEG/PNG fallback per width) of "
                   "raster images [default: off].")
@stacked(*VARIANT_OPTIONS, *CHECK_OPTIONS)
@click.option("--vite-manifest", type=click.Path(dir_okay=False),
              help="Vite's build manifest, when not at .vite/manifest.json in the static folder "
                   "or a folder directly inside it [CDN_VITE_MANIFEST; default: found there].")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (new/unchanged per file, what is left out and why); upload and "
                   "write nothing.")
@click.option("--relist", is_flag=True,
              help="List the bucket even when nothing changed since the current release "
                   "(re-uploads objects deleted behind the deploy's back; `verify` reports them).")
@INVALIDATE_OPTION
@click.option("-v", "--verbose", is_flag=True, help="One progress line per uploaded file.")
@click.option("--show-config", is_flag=True,
              help="Print every setting and where it came from (flag, environment, pyproject.toml,"
                   " default); deploy nothing.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version and exit.")
@UNSAFE_WRITES_OPTION
@click.pass_context
def deploy_command(ctx: click.Context, /, as_json: bool, quiet: bool, verbose: bool,
                   show_config: bool, **options: Any) -> None:
    """Fingerprint the static folder, upload new objects, record a release, publish the manifest."""
    # Imported here, not at the top: ``deploy.py --help`` needs none of the deploy machinery.
    from ..release.publish import deploy
    from ..release.store import ReleaseStore
    from .reporting import ProgressReporter

    if quiet and verbose:
        raise click.UsageError("-q and -v contradict each other: choose one")
    settings = resolve_for(ctx, options, load_app=True)
    if show_config:
        for note in settings.config_notes:
            click.echo(f"warning: {note}", err=True)
        _show_config(settings, as_json)
        return
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="publishing to",
                    settings=settings)
    _check_static_dir(settings)
    storage = open_storage(settings)
    if settings.assets is not None:
        _build_bundles(settings, run, storage)
    reporter = ProgressReporter(
        out=run.out, err=sys.stderr, quiet=quiet,
        tty=sys.stderr.isatty(), verbose_plan=settings.dry_run and not quiet, verbose=verbose,
    )
    GUARD.when_interrupted(reporter.stop)  # workers still finishing must not redraw the bar
    result = deploy(folders=deploy_folders(settings), store=ReleaseStore(storage, settings.prefix),
                    manifest_path=settings.manifest_path, observer=reporter,
                    options=deploy_options(settings))
    # Past this point "nothing was published" would be false, also for the watchdog.
    def published() -> Interrupted:
        return GUARD.stopped(f"after release {result.release_id} was published; "
                             "the CloudFront invalidation may not have been sent")

    if not result.dry_run:
        GUARD.report_with(lambda: _report_error(as_json, published()))
    try:
        invalidation = None if result.dry_run else invalidate_after_publish(
            settings.distribution_id, [result.manifest_key], release_id=result.release_id,
            max_attempts=settings.max_attempts)
    except KeyboardInterrupt:
        raise published() from None
    try:
        if as_json:
            run.emit(_summary(result, invalidation))
        else:
            _print_summary(result, settings, run, invalidation)
    except BrokenPipeError:
        # The deploy is done; only its reader left (``| head``). Silence stdout so the
        # interpreter's last flush cannot fail, and exit 0: nothing failed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _show_config(settings: DeploySettings, as_json: bool) -> None:
    """Each setting, its value and its source; URLs redacted (they may carry credentials)."""
    # Keyed like the pyproject.toml table (static-dir, not static_dir): the names a user writes.
    rows = {OPTIONS_BY_NAME[name].key: (_display_value(_setting(settings, name)),
                                        settings.sources.get(name, "default"))
            for name in _SHOWN}
    config_file = str(settings.config_file) if settings.config_file else None
    if as_json:
        click.echo(json.dumps({
            "config_file": config_file,
            "settings": {name: {"value": value, "source": source}
                         for name, (value, source) in rows.items()},
        }, sort_keys=True))
        return
    nowhere = "none found (working directory and parents, up to the repository root)"
    click.echo(f"pyproject.toml: {config_file or nowhere}")
    texts = {name: "(not set)" if value is None else str(value)
             for name, (value, _) in rows.items()}
    name_width, value_width = max(map(len, rows)), max(map(len, texts.values()))
    for name, (_, source) in rows.items():
        # The table's own label is long and already printed above.
        label = "pyproject.toml" if config_file and source.startswith(config_file) else source
        click.echo(f"{name:<{name_width}}  {texts[name]:<{value_width}}  ({label})")


#: Settings shown by --show-config, by option name; some fields are named differently.
_SHOWN = ("app", "static_dir", "static_url_path", "bucket", "target_dir", "prefix", "endpoint_url",
          "region", "cdn_url", "manifest", "hash_cache", "assets", "workers", "max_attempts",
          "strict", "precompress", "allow_hard_links", "vite_manifest", "include", "exclude",
          "variants", "variant_widths", "variant_formats", "variant_include", "variant_exclude",
          "variant_cache", "variant_budget", "relist", "unsafe_no_conditional_writes",
          "distribution_id")
_FIELDS = {"manifest": "manifest_path", "hash_cache": "hash_cache_path"}


def _setting(settings: DeploySettings, name: str) -> Any:
    """A setting's value for --show-config; the variant ones read from the validated settings."""
    variants = settings.variant_settings
    if name.startswith("variant_") and name not in ("variant_cache", "variant_budget"):
        if variants is None:
            return None
        return getattr(variants, name.removeprefix("variant_"))
    return getattr(settings, _FIELDS.get(name, name))


def _display_value(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def _build_bundles(settings: DeploySettings, run: Run, storage: Storage) -> None:
    """Bundles first, so their outputs are fingerprinted and uploaded like any file.

    What can be checked is checked before anything is written into the static folder:
    the folder exists, the bundles file loads (webassets is installed), and the
    target answers (bucket name, credentials).
    """
    assert settings.assets is not None
    if settings.dry_run:
        run.note(f"Dry run: bundles of {settings.assets} not rebuilt (planning what is on disk)")
        return
    from ..build.bundles import build_bundles, load_bundles

    with _from_assets_setting(settings):
        bundles = load_bundles(settings.assets)
    storage.check()
    with _from_assets_setting(settings):
        outputs = build_bundles(bundles, static_dir=settings.static_dir,
                                static_url_path=settings.static_url_path)
    if not run.quiet:
        click.echo(f"Built {len(outputs)} bundle(s) from {settings.assets}: {', '.join(outputs)}",
                   file=sys.stderr)


def _check_static_dir(settings: DeploySettings) -> None:
    """A missing static folder, named with the setting and file that chose it."""
    if not settings.static_dir.is_dir():
        raise ConfigError(
            f"static folder {str(settings.static_dir)!r} does not exist or is not a folder "
            f"({describe_source(settings, 'static_dir')}): pass --static-dir DIR, or set "
            f"static-dir in the [tool.{TABLE_NAME}] table of pyproject.toml")


@contextmanager
def _from_assets_setting(settings: DeploySettings) -> Iterator[None]:
    """A bundle that cannot be loaded or built names the ``assets`` setting, where it came
    from and how to deploy without it (the repository's own table builds the demo's bundles,
    which fail when run with another --static-dir)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} (bundles of {str(settings.assets)!r}, {describe_source(settings, 'assets')}):"
            " fix that file, or pass --no-assets to deploy without building bundles") from exc


def _print_summary(result: DeployResult, settings: DeploySettings, run: Run,
                   invalidation: str | None) -> None:
    from .reporting import UploadCounts, format_size, plural

    if result.dry_run:
        for item in result.ignored:
            click.echo(f"{'left out':<10} {printable_name(item.logical_path)} ({item.reason})")
        click.echo(f"Dry run: would upload {len(result.plan.uploads)} of "
                   f"{plural(len(result.plan.files), 'file')} "
                   f"({format_size(result.plan.bytes_to_upload)}) to {result.target}; "
                   f"{len(result.ignored)} left out; {_live_change(result)}; "
                   "nothing was uploaded or written")
        if settings.variants:
            click.echo(f"Dry run: would encode {plural(result.encoded, 'image variant')}")
        return
    # Files and variants apart: variants are not files of the user's folder.
    counts = UploadCounts.of(result)
    click.echo(f"Deployed {plural(len(result.plan.files), 'file')} to {result.target}: "
               f"{counts.files} uploaded ({format_size(counts.file_bytes)}), "
               f"{result.plan.skipped} unchanged")
    if settings.variants:
        click.echo(f"Image variants: {result.encoded} encoded, {counts.variants} "
                   f"uploaded ({format_size(counts.variant_bytes)})")
        if result.images_left:
            click.echo(images_left_line(result.images_left, result.variants_left,
                                        settings.variant_budget))
    click.echo(f"Manifest: {result.manifest_path} (published as {result.manifest_key})")
    if result.new_release or result.previous_release:
        click.echo(f"Release: {result.release_id} (new release; previous: "
                   f"{result.previous_release or 'none'})")
    else:
        click.echo(f"Release: {result.release_id} (unchanged: already current)")
    if invalidation:
        click.echo(f"CloudFront invalidation: {invalidation}")
    if settings.cdn_url and (first := result.manifest.first()) is not None:
        click.echo(f"Example: {first[0]} -> {cdn_url(settings.cdn_url, first[1])}")


def _live_change(result: DeployResult) -> str:
    """Whether the real run would change the live release, said plainly."""
    if not result.new_release:
        return f"the live release would stay {result.current_release}"
    if result.current_release is None:
        return "would publish the first release"
    note = ", a rollback" if result.current_is_rollback else ""
    return f"would publish a new release (current is {result.current_release}{note})"


#: The commands besides ``deploy``, each imported only when it is named, so that a
#: deploy and ``deploy.py --help`` load none of their modules.
LAZY_COMMANDS = {
    "releases": "pipeline.cli.commands:releases_command",
    "verify": "pipeline.cli.commands:verify_command",
    "rollback": "pipeline.cli.commands:rollback_command",
    "prune": "pipeline.cli.commands:prune_command",
    "private": "pipeline.cli.commands:private_command",
    "serve": "pipeline.cli.serve:serve_command",
    "variants": "pipeline.cli.variants:variants_command",
}
COMMAND_NAMES = frozenset({"deploy", *LAZY_COMMANDS})


class LazyGroup(click.Group):
    """A group that imports a command of :data:`LAZY_COMMANDS` when it is first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Deploy static files to the CDN, and manage its releases."""


cli.add_command(deploy_command, "deploy")

#: Said after "interrupted"/"terminated" when a deploy is stopped: objects are
#: content-addressed and only a finished run publishes, so a stopped one changed nothing
#: anyone reads.
STOPPED_DEPLOY = ": nothing was published; uploaded objects will be reused by the next run"


def stop_message(*, is_deploy: bool) -> str:
    """What a stopped command says, by the signal that stopped it."""
    return GUARD.stopped_by.said + (STOPPED_DEPLOY if is_deploy else "")


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         prog_name: str = "deploy.py") -> int:
    """Run the CLI and return its exit code instead of exiting (tests call this).

    ``deploy.py [OPTIONS]`` runs the deploy command itself (so its usage line reads
    ``deploy.py [OPTIONS]``); ``deploy.py COMMAND ...`` runs one of the others.
    ``prog_name`` is the program help and ``--version`` name (:func:`program_name`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    is_deploy = not args or args[0] not in COMMAND_NAMES or args[0] == "deploy"
    command: click.Command = cli if args and args[0] in COMMAND_NAMES else deploy_command
    GUARD.report_with(lambda: report_failure(as_json, stop_message(is_deploy=is_deploy),
                                             GUARD.exit_code))
    try:
        # Not standalone, click returns the code of ctx.exit() (--help, "problems found").
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False,
                            obj={"env": os.environ if env is None else env})
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return report_failure(as_json, f"{exc.format_message()} (see --help)", 2)
    except (click.Abort, KeyboardInterrupt):
        return _said_once(as_json, stop_message(is_deploy=is_deploy), GUARD.exit_code)
    except PipelineError as exc:
        return _said_once(as_json, str(exc), exc.exit_code)

    return code if isinstance(code, int) else 0


def _said_once(as_json: bool, message: str, code: int) -> int:
    """:func:`report_failure`, unless the interrupt watchdog already said why the process
    ends (it may, while this thread was still unwinding)."""
    GUARD.report_once(partial(report_failure, as_json, message, code))
    return code


def _report_error(as_json: bool, error: PipelineError) -> int:
    return report_failure(as_json, str(error), error.exit_code)


def report_failure(as_json: bool, message: str, code: int) -> int:
    """Say what failed (one line on stderr; with ``--json`` also the JSON object);
    return ``code``."""
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}, sort_keys=True))
    click.echo(f"error: {message}", err=True)
    return code


#: Young objects allocated between collections (CPython's default: 700). A deploy of 100,000
#: files keeps a few million objects alive (walk, hash cache, two manifests); with the default
#: the collector ran ~900 times in a no-change re-run and took 0.6 s of its 4 s. Its garbage has
#: few cycles, so collecting every 50,000 allocations costs little memory and ~0.1 s.
GC_THRESHOLDS = (50_000, 20, 100)


def program_name(argv0: str) -> str:
    """How the user started us, for help and ``--version``: ``cdn-deploy`` (the console
    script), ``deploy.py`` (this repository's wrapper) or ``python -m pipeline``."""
    name = Path(argv0).name
    if name == "__main__.py":
        return "python -m pipeline"
    return name if name.endswith(".py") or name == "cdn-deploy" else "cdn-deploy"


def run() -> None:
    """Process entry point (the console script, ``python -m pipeline`` and ``deploy.py``): the
    process is ours, so the garbage collector is tuned and Ctrl-C handled
    (:mod:`pipeline.cli.interrupt`) here, not in :func:`main` (tests call that)."""
    gc.set_threshold(*GC_THRESHOLDS)
    # Encoding workers import the entry script again (multiprocessing's ``__main__`` fix-up),
    # and it imports this module: their fork server loads it once for all of them instead.
    preload_in_workers(__name__)
    GUARD.install()
    GUARD.finish(main(prog_name=program_name(sys.argv[0])))
