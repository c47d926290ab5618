"""What every ``deploy.py`` command shares: the target options, settings, storage, output.

The target options are one decorator, so ``deploy.py verify --bucket b`` and
``deploy.py --bucket b`` accept the same names with the same environment and
``pyproject.toml`` fallbacks; each command adds only the other options that apply.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from ..build.mounts import Mount, Mounts
from ..errors import ConfigError, DeployError, PipelineError
from ..limits import ATTEMPTS_RANGE, DEFAULT_MAX_ATTEMPTS, DEFAULT_WORKERS, WORKERS_RANGE
from ..media_types import MANIFEST_MAX_AGE
from ..pyproject import read_project_config, search_pyproject
from ..validate import format_duration, validate_static_url_path
from .settings import (
    TABLE_KEYS,
    DeploySettings,
    check_no_overlap,
    resolve_settings,
)

if TYPE_CHECKING:
    from ..release.result import DeployOptions
    from ..storage import Storage

F = TypeVar("F", bound=Callable[..., Any])

_Decorator = Callable[[Any], Any]


def _span(bounds: tuple[int, int]) -> str:
    return f"{bounds[0]}-{bounds[1]}"


#: Where the objects go: every command takes these.
TARGET_OPTIONS: list[_Decorator] = [
    click.option("--bucket",
                 help="Target bucket [CDN_BUCKET]. Without one, the embedded default folder is "
                      "used."),
    click.option("--prefix", help="Key prefix in the bucket [CDN_PREFIX; default: static]."),
    click.option("--endpoint-url",
                 help="S3-compatible endpoint, e.g. MinIO or R2 [AWS_ENDPOINT_URL]."),
    click.option("--region", help="Bucket region [AWS_REGION]."),
    click.option("--target-dir", type=click.Path(file_okay=False),
                 help="Publish to this folder instead of a bucket [CDN_TARGET_DIR]."),
    click.option("--max-attempts", type=int,
                 help=f"Tries per request before giving up ({_span(ATTEMPTS_RANGE)}) "
                      f"[CDN_MAX_ATTEMPTS; default: {DEFAULT_MAX_ATTEMPTS}]."),
]
#: Options some commands use; the others accept them hidden (one set of flags or
#: CI variables can drive every command), so each help lists only what applies.
_SHARED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "workers": (("--workers",), {
        "type": int,
        "help": f"Concurrent requests ({_span(WORKERS_RANGE)}) "
                f"[CDN_WORKERS; default: {DEFAULT_WORKERS}]."}),
    "static_dir": (("--static-dir",), {
        "type": click.Path(file_okay=False),
        "help": "Folder to deploy [CDN_STATIC_DIR; default: static]."}),
    "manifest": (("--manifest",), {
        "type": click.Path(dir_okay=False),
        "help": "Where to write the local manifest [CDN_MANIFEST; default: "
                "build/cdn-manifest.json]."}),
    "static_url_path": (("--static-url-path",), {
        "metavar": "PATH",
        "help": "Where the app serves the static folder (Flask's static_url_path): a CSS "
                "url(/static/...) names a file in it [CDN_STATIC_URL_PATH; default: /static]."}),
    "cdn_url": (("--cdn-url",), {"help": "Public base URL of the CDN, for the summary [CDN_URL]."}),
}
WORKERS_OPTION, STATIC_DIR_OPTION, MANIFEST_OPTION = "workers", "static_dir", "manifest"
CDN_URL_OPTION, STATIC_URL_PATH_OPTION = "cdn_url", "static_url_path"


OUTPUT_OPTIONS: list[_Decorator] = [
    click.option("--json", "as_json", is_flag=True,
                 help="Print exactly one JSON object on stdout."),
    click.option("-q", "--quiet", is_flag=True,
                 help="No progress or notes (results, warnings and errors still print)."),
]

INVALIDATE_OPTION = click.option(
    "--invalidate", "distribution_id", metavar="DISTRIBUTION_ID",
    help="After publishing, invalidate the manifest path (only) on this CloudFront distribution.",
)


VARIANT_BUDGET_OPTION = click.option(
    "--variant-budget", metavar="DURATION",
    help="Encode image variants for at most this long (90s, 15m, 1h; 0: none), then publish: "
         "images left without variants show their original until a later run encodes them "
         "[CDN_VARIANT_BUDGET; default: no limit].")


#: The options that choose and read the files (the deploy's and the variants command's).
APP_OPTIONS: list[_Decorator] = [
    click.option("--app", metavar="MODULE:FACTORY",
                 help="Deploy this Flask app's static folder and every blueprint's, each under "
                      "the URL path Flask serves it at (as flask --app loads it)."),
    click.option("--hash-cache", type=click.Path(dir_okay=False),
                 help="Hash cache file [default: build/.cdn-hash-cache.json]."),
    click.option("--no-hash-cache", is_flag=True, help="Re-hash every file."),
]
FILTER_OPTIONS: list[_Decorator] = [
    click.option("--include", multiple=True, metavar="GLOB",
                 help="Deploy only files matching GLOB (repeatable; gitignore-like, '**' for any "
                      "folders)."),
    click.option("--exclude", multiple=True, metavar="GLOB",
                 help="Leave out files and folders matching GLOB (repeatable; e.g. '*.psd', "
                      "'drafts/')."),
]
#: How variants are made, where they are cached and for how long they are encoded.
VARIANT_OPTIONS: list[_Decorator] = [
    click.option("--variant-widths", metavar="W,W,...",
                 help="Variant widths in px [default: 320,640,960,1280,1920,2560]."),
    click.option("--variant-formats", metavar="F,F",
                 help="Modern variant formats among avif,webp [default: avif,webp]."),
    click.option("--variant-include", multiple=True, metavar="GLOB",
                 help="Make variants only of images matching GLOB (repeatable) [default: all]."),
    click.option("--variant-exclude", multiple=True, metavar="GLOB",
                 help="Make no variants of images matching GLOB (repeatable)."),
    click.option("--variant-cache", type=click.Path(file_okay=False),
                 help="Folder of encoded variants, by key [CDN_VARIANT_CACHE; default: "
                      "build/variants]."),
    VARIANT_BUDGET_OPTION,
]
CHECK_OPTIONS: list[_Decorator] = [
    click.option("--no-strict", is_flag=True,
                 help="A CSS url() to a missing file is a warning, not an error."),
    click.option("--no-precompress", is_flag=True,
                 help="Store no brotli/gzip siblings of CSS, JS, SVG, JSON and other text files "
                      "[default: store them, each kept only if at most 95% of the file's size]."),
    click.option("--allow-hard-links", is_flag=True, default=None,
                 help="Deploy files with hard links whose other names are not in the static "
                      "folder (refused by default: a hard link can make any readable file look "
                      "static)."),
]


def stacked(*decorators: _Decorator) -> Callable[[F], F]:
    """Apply ``decorators`` as if written one above the other in this order (help lists
    options in that order)."""

    def decorate(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


def images_left_line(images: tuple[str, ...], variants: int, budget: timedelta | None) -> str:
    """The line that says what the budget left for the next run (one source for the deploy's
    and the shard command's output)."""
    spent = ("the budget" if budget is None
             else f"the --variant-budget of {format_duration(budget)}")
    return (f"{len(images)} image(s) left without variants ({variants} variant(s), first: "
            f"{images[0]}): {spent} ran out; they show their original until the next run "
            "encodes them")


UNSAFE_WRITES_OPTION = click.option(
    "--unsafe-no-conditional-writes", "unsafe_no_conditional_writes", is_flag=True,
    help="Publish even if the server ignores If-Match/If-None-Match (only safe when no two "
         "deploys or rollbacks ever run at once).",
)


def common_options(*shown: str) -> Callable[[F], F]:
    """The target and output options, plus the ``shown`` shared ones (others hidden)."""
    shared = [click.option(*names, hidden=name not in shown, **kwargs)
              for name, (names, kwargs) in _SHARED.items()]

    def decorate(func: F) -> F:
        for option in reversed([*TARGET_OPTIONS, *shared, *OUTPUT_OPTIONS]):
            func = option(func)
        return func

    return decorate


@dataclass(frozen=True)
class Run:
    """One command invocation: resolved settings, output mode, and where messages go."""

    settings: DeploySettings
    as_json: bool
    quiet: bool

    @property
    def out(self) -> TextIO:
        """Human text: stdout normally, stderr under ``--json`` (stdout is the JSON)."""
        return sys.stderr if self.as_json else sys.stdout

    def say(self, message: str) -> None:
        click.echo(message, file=self.out)

    def note(self, message: str) -> None:
        """A remark about the run (not its result): silenced by ``-q``."""
        if not self.quiet:
            self.say(message)

    def emit(self, document: Mapping[str, Any]) -> None:
        click.echo(json.dumps(document, sort_keys=True))


def program(ctx: click.Context) -> str:
    """The program as invoked (``cdn-deploy``, ``python -m pipeline``, ``deploy.py``, ``flask
    cdn``), for help texts and the commands a message tells the user to run."""
    return ctx.parent.command_path if ctx.parent is not None else ctx.command_path


def command_hint(ctx: click.Context, *args: str) -> str:
    """A command line to run again, as the user would type it (``python deploy.py ...``)."""
    name = program(ctx)
    return " ".join(["python " + name if name.endswith(".py") else name, *args])


#: ``ctx.meta`` keys under which ``flask cdn`` passes the app's settings layers and the
#: blueprint folders to deploy beside the app's.
APP_LAYERS = "flask_cdn_pipeline.app_layers"
APP_MOUNTS = "flask_cdn_pipeline.app_mounts"


def resolve_for(ctx: click.Context, options: Mapping[str, Any], *,
                load_app: bool = False) -> DeploySettings:
    """The command's settings: flags, environment, the project's pyproject table, defaults.

    With ``load_app`` (the deploy) and an app (``--app`` or the table's ``app``), the app
    is loaded for its settings and folders, as ``flask cdn deploy`` has them."""
    obj = ctx.obj
    env: Mapping[str, str] = obj.get("env", os.environ) if isinstance(obj, dict) else os.environ
    above, below = ctx.meta.get(APP_LAYERS, (None, None))
    cwd = Path.cwd()
    search = search_pyproject(cwd)
    project = read_project_config(search.path, TABLE_KEYS) if search.path else None
    # Relative defaults stay relative (and short in messages) when run from the project root.
    anchor = search.path.parent if search.path and search.path.parent != cwd else None
    settings = resolve_settings(options, env, project=project, above_env=above,
                                below_project=below, anchor=anchor, notes=search.notes)
    extra: tuple[Mount, ...] = ctx.meta.get(APP_MOUNTS, ())
    if APP_MOUNTS in ctx.meta and options.get("app"):
        raise click.UsageError("flask cdn deploy deploys the app flask loaded (flask --app "
                               "APP); leave out --app")
    if load_app and APP_MOUNTS not in ctx.meta and settings.app is not None:
        # Flask only now: a folder deploy never imports it.
        from ..flaskext.appsettings import app_deploy_context

        from_table = project is not None and settings.sources.get("app") == project.label
        base = project.path.parent if from_table and project is not None else None
        above, below, extra = app_deploy_context(settings.app, base=base)
        settings = resolve_settings(options, env, project=project, above_env=above,
                                    below_project=below, anchor=anchor, notes=search.notes)
    return with_mounts(settings, extra)


def with_mounts(settings: DeploySettings, extra: tuple[Mount, ...]) -> DeploySettings:
    """``settings`` deploying the blueprint folders ``extra`` beside the static folder;
    two folders served at one URL path, or one overlapping a target folder, are refused
    here, before anything is read or uploaded."""
    if not extra:
        return settings
    main = Mount(settings.static_dir, validate_static_url_path(settings.static_url_path), "",
                 f"the app's static folder ({settings.static_dir})")
    mounts = Mounts.of(main, extra)
    if settings.bucket is None:
        for mount in mounts.items[1:]:
            check_no_overlap(mount.folder, settings.target_dir or settings.embedded_dir)
    return replace(settings, mounts=mounts if len(mounts.items) > 1 else None)


def start_run(ctx: click.Context, options: dict[str, Any], *, as_json: bool, quiet: bool,
              action: str, needs_bucket: str | None = None,
              settings: DeploySettings | None = None) -> Run:
    """Resolve the settings once; ``needs_bucket`` says why a folder target will not do."""
    run = Run(settings or resolve_for(ctx, options), as_json, quiet)
    for note in run.settings.config_notes:  # on stderr even with -q: a setting may be lost
        click.echo(f"warning: {note}", err=True)
    if run.settings.config_file is not None:  # first: which file's table configures this run
        run.note(f"pyproject.toml: {run.settings.config_file}")
    if needs_bucket and not run.settings.bucket:
        raise ConfigError(f"this command needs a bucket (--bucket / CDN_BUCKET): {needs_bucket}")
    if run.settings.distribution_id:  # from --invalidate or the pyproject table
        from ..storage.cloudfront import validate_distribution_id  # boto3: only when asked

        validate_distribution_id(run.settings.distribution_id)
    if run.settings.embedded:
        run.note(f"Using the embedded default: no bucket configured (--bucket / CDN_BUCKET), "
                 f"{action} local folder {str(run.settings.embedded_dir)!r}")
    return run


def deploy_folders(settings: DeploySettings) -> Mounts:
    """The folders to deploy, resolved once here: the app's and its blueprints' when
    ``--app`` found some, else the static folder alone at its URL path."""
    return settings.mounts or Mounts.single(settings.static_dir, settings.static_url_path)


def deploy_options(settings: DeploySettings) -> DeployOptions:
    """The deploy's switches, from the resolved settings."""
    from ..release.result import DeployOptions

    return DeployOptions(
        dry_run=settings.dry_run, strict=settings.strict, relist=settings.relist,
        unsafe_no_conditional_writes=settings.unsafe_no_conditional_writes,
        filters=settings.filters, hash_cache_path=settings.hash_cache_path,
        variants=settings.variant_settings, variant_cache=settings.variant_cache,
        variant_budget=(settings.variant_budget.total_seconds()
                        if settings.variant_budget is not None else None),
        allow_hard_links=settings.allow_hard_links, vite_manifest=settings.vite_manifest,
        precompress=settings.precompress,
    )


def open_storage(settings: DeploySettings) -> Storage:
    """The backend the settings name; boto3 is imported only for a bucket.

    The storage modules are imported here, not at the top, so that ``--help`` and
    usage errors load none of the deploy machinery they bring along.
    """
    if settings.bucket:
        from ..storage.s3 import S3Settings, S3Storage

        return S3Storage(S3Settings(
            bucket=settings.bucket, endpoint_url=settings.endpoint_url,
            region=settings.region, workers=settings.workers,
            max_attempts=settings.max_attempts,
        ))
    from ..storage import FolderStorage

    return FolderStorage(settings.target_dir or settings.embedded_dir)


def invalidate_after_publish(distribution_id: str | None, keys: list[str], *,
                             release_id: str | None, max_attempts: int) -> str | None:
    """Invalidate once the new manifest is live; a failure says the release *is* current."""
    if not distribution_id:
        return None
    from ..storage.cloudfront import invalidate

    try:
        return invalidate(distribution_id, keys, max_attempts=max_attempts)
    except PipelineError as exc:
        raise DeployError(
            f"release {release_id} is current, but {exc}; the CDN picks up the manifest "
            f"within its max-age ({MANIFEST_MAX_AGE} s) anyway"
        ) from exc
