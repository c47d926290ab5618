"""``cdn-deploy variants [--shard i/N]``: encode and upload image variants, publish nothing.

A command of its own, not a deploy flag: a deploy publishes, this never does (no release, no
current manifest, no local manifest), and a CI matrix runs it N times before one plain deploy
publishes everything (README: "Encoding across CI jobs"). Variants are on whatever the
settings say: encoding them is the command's whole point.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from ..build.shards import parse_shard
from ..release.shard import ShardResult, encode_shard
from ..release.store import ReleaseStore
from .common import (
    APP_OPTIONS,
    CHECK_OPTIONS,
    FILTER_OPTIONS,
    MANIFEST_OPTION,
    STATIC_DIR_OPTION,
    STATIC_URL_PATH_OPTION,
    VARIANT_OPTIONS,
    WORKERS_OPTION,
    Run,
    common_options,
    deploy_folders,
    deploy_options,
    images_left_line,
    open_storage,
    resolve_for,
    stacked,
    start_run,
)
from .reporting import ProgressReporter, format_size, plural


@click.command("variants", context_settings={"help_option_names": ["-h", "--help"]})
@common_options(WORKERS_OPTION, STATIC_DIR_OPTION, STATIC_URL_PATH_OPTION, MANIFEST_OPTION)
@click.option("--shard", default="1/1", show_default=True, metavar="I/N",
              help="Encode only part I of N of the images (a CI matrix job each); every job "
                   "computes the same split, balanced by output pixels.")
@stacked(*APP_OPTIONS, *FILTER_OPTIONS, *VARIANT_OPTIONS, *CHECK_OPTIONS)
@click.option("--dry-run", is_flag=True,
              help="Say which images this shard owns and how many variants it would encode.")
@click.pass_context
def variants_command(ctx: click.Context, /, as_json: bool, quiet: bool, shard: str,
                     **options: Any) -> None:
    """Encode the image variants the bucket lacks (this shard's part) and upload them; publish
    nothing: a deploy afterwards finds them and encodes none."""
    part = parse_shard(shard)
    settings = resolve_for(ctx, {**options, "variants": True}, load_app=True)
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="uploading to",
                    settings=settings)
    storage = open_storage(settings)
    reporter = ProgressReporter(out=run.out, err=sys.stderr, quiet=quiet,
                                tty=sys.stderr.isatty(), verbose_plan=False)
    result = encode_shard(folders=deploy_folders(settings),
                          store=ReleaseStore(storage, settings.prefix),
                          manifest_path=settings.manifest_path, options=deploy_options(settings),
                          shard=part, observer=reporter)
    if as_json:
        run.emit(_json(result, dry_run=settings.dry_run))
    else:
        _print(result, run, settings.variant_budget, dry_run=settings.dry_run)


def _json(result: ShardResult, *, dry_run: bool) -> dict[str, Any]:
    return {"shard": str(result.shard), "target": result.target, "dry_run": dry_run,
            "assigned": list(result.assigned), "encoded": result.encoded,
            "uploaded": len(result.uploaded), "uploaded_keys": list(result.uploaded),
            "bytes_uploaded": result.bytes_uploaded, "images_left": len(result.images_left),
            "variants_left": result.variants_left,
            "encode_seconds": round(result.encode_seconds, 3)}


def _print(result: ShardResult, run: Run, budget: timedelta | None, *, dry_run: bool) -> None:
    images = plural(len(result.assigned), "image")
    if dry_run:
        run.say(f"Dry run: shard {result.shard} owns {images}; would encode "
                f"{plural(result.encoded, 'variant')}; nothing was uploaded")
        return
    run.say(f"Shard {result.shard} ({images}): {result.encoded} variant(s) encoded, "
            f"{len(result.uploaded)} uploaded ({format_size(result.bytes_uploaded)}) to "
            f"{result.target}; nothing published (a deploy publishes them)")
    if result.images_left:
        run.say(images_left_line(result.images_left, result.variants_left, budget))
