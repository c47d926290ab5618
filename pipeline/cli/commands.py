"""``deploy.py releases | verify | rollback | prune``: the release commands.

Each renders its result for people or as exactly one JSON object, and ends with
``ctx.exit(1)`` when it found problems; :func:`pipeline.cli.main.main` maps errors to codes.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..images.private import (
    PrivacyCheck,
    UnreadablePolicy,
    check_unreadable,
    public_grants,
    upload_private,
)
from ..keys import manifest_key
from ..localfs import check_writable
from ..media_types import DEFAULT_CONTENT_TYPE
from ..release.local_manifest import write_published_manifest
from ..release.prune import PruneResult, prune
from ..release.repair import RepairResult, repair
from ..release.result import variant_cache_dir
from ..release.rollback import rollback
from ..release.store import ReleaseStore
from ..release.verify import VerifyReport, verify
from ..releasedoc import validate_release_id
from ..validate import parse_duration, validate_int, validate_prefix
from .common import (
    FILTER_OPTIONS,
    INVALIDATE_OPTION,
    MANIFEST_OPTION,
    STATIC_DIR_OPTION,
    STATIC_URL_PATH_OPTION,
    UNSAFE_WRITES_OPTION,
    WORKERS_OPTION,
    Run,
    command_hint,
    common_options,
    deploy_folders,
    deploy_options,
    invalidate_after_publish,
    open_storage,
    resolve_for,
    stacked,
    start_run,
)
from .reporting import format_size
from .settings import DeploySettings

_CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.command("releases", context_settings=_CONTEXT)
@common_options()
@click.pass_context
def releases_command(ctx: click.Context, /, as_json: bool, quiet: bool, **options: Any) -> None:
    """List the releases (oldest first): id, time, files, bytes, and which is current."""
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="reading")
    settings = run.settings
    storage = open_storage(settings)
    storage.check()
    store = ReleaseStore(storage, settings.prefix)
    ids = store.release_ids(store.list())
    docs = store.read_releases(ids)
    current = store.read_current().release_id
    rows: list[dict[str, Any]] = [
        {"id": rid, "created": docs[rid].created, "files": len(docs[rid].manifest),
         "bytes": docs[rid].manifest.total_bytes, "current": rid == current} for rid in ids]
    if as_json:
        run.emit({"target": storage.description, "current": current, "releases": rows})
        return
    if not rows:
        click.echo(f"No releases in {storage.description} under {settings.prefix!r}")
    for row in rows:
        mark = "*" if row["current"] else " "
        click.echo(f"{mark} {row['id']}  {row['created'] or '?':<24} {row['files']:>7} files "
                   f"{format_size(row['bytes']):>10}")
    if rows and current not in ids:
        click.echo(f"The current manifest names no listed release ({current or 'no release id'})")


#: ``verify --app``: for a repair, the app's folders as the deploy took them.
_REPAIR_APP_OPTION = click.option(
    "--app", metavar="MODULE:FACTORY",
    help="With --repair: the Flask app whose static folder and blueprints' folders the "
         "deploy took (as flask --app loads it); pass the deploy's --include/--exclude too.")


@click.command("verify", context_settings=_CONTEXT)
@common_options(WORKERS_OPTION, STATIC_DIR_OPTION, STATIC_URL_PATH_OPTION)
@click.option("--release", "release_id", metavar="ID",
              help="Check this release instead of the current one.")
@click.option("--repair", is_flag=True,
              help="Re-upload missing or wrong objects from the deployed folders (--static-dir, "
                   "or --app's) and image variants from --variant-cache.")
@_REPAIR_APP_OPTION
@stacked(*FILTER_OPTIONS)
@click.option("--full", is_flag=True,
              help="Check every object's headers and download it to compare its SHA-256, not a "
                   "sample.")
@click.option("--hash-cache", type=click.Path(dir_okay=False), help="Hash cache for --repair.")
@click.option("--variant-cache", type=click.Path(file_okay=False),
              help="Encoded image variants for --repair [CDN_VARIANT_CACHE; default: "
                   "build/variants].")
@click.pass_context
def verify_command(ctx: click.Context, /, as_json: bool, quiet: bool, release_id: str | None,
                   repair: bool, full: bool, **options: Any) -> None:
    """Check that every object of a release exists with the right size, checksum and headers."""
    # Only a repair reads the files, so only a repair loads the app for its folders.
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="checking",
                    settings=resolve_for(ctx, options, load_app=repair))
    settings = run.settings
    if release_id:
        validate_release_id(release_id)
    storage = open_storage(settings)
    storage.check()
    store = ReleaseStore(storage, settings.prefix)
    report = verify(store, release_id=release_id, full=full)
    fixed: RepairResult | None = None
    if repair and report.problems:
        fixed = _repair(store, settings, report)
        report = verify(store, release_id=release_id, full=full)
    if as_json:
        run.emit(_verify_json(report, fixed))
    else:
        _print_verify(report, fixed)
    if report.problems:
        ctx.exit(1)


def _repair(store: ReleaseStore, settings: DeploySettings, report: VerifyReport
            ) -> RepairResult:
    """The repair from the folders and with the filters the deploy resolves (one source)."""
    return repair(store, report, folders=deploy_folders(settings),
                  options=deploy_options(settings),
                  variant_cache=variant_cache_dir(settings.variant_cache,
                                                  settings.manifest_path))


def _verify_json(report: VerifyReport, fixed: RepairResult | None) -> dict[str, Any]:
    return {
        "release": report.release_id, "current": report.is_current, "ok": report.ok,
        "checked": report.checked, "inspected": report.inspected,
        "problems": [{"key": p.key, "path": p.path, "problem": p.kind, "expected": p.expected,
                      "actual": p.actual} for p in report.problems],
        "repaired": list(fixed.uploaded) if fixed else None,
        "server_types": dict(report.server_types),
    }


def _print_verify(report: VerifyReport, fixed: RepairResult | None) -> None:
    if fixed is not None:
        click.echo(f"Repaired {len(fixed.uploaded)} object(s) from the local files")
    label = f"{report.release_id or '(no release id)'}{' (current)' if report.is_current else ''}"
    for problem in report.problems:
        click.echo(f"problem: {problem.describe()}")
    if report.server_types:
        key, served = report.server_types[0]
        click.echo(f"note: {len(report.server_types)} object(s) stored as "
                   f"{DEFAULT_CONTENT_TYPE} are served with a type the server derives from "
                   f"the name (first: {key}: {served!r}); accepted, not a problem")
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    click.echo(f"Release {label}: {report.checked} objects checked, {report.inspected} "
               f"inspected in detail: {verdict}")
    if report.problems and fixed is None:
        click.echo("Run again with --repair to re-upload them from --static-dir")


@click.command("rollback", context_settings=_CONTEXT)
@common_options(MANIFEST_OPTION)
@click.argument("release_id", metavar="[ID]", required=False)
@INVALIDATE_OPTION
@UNSAFE_WRITES_OPTION
@click.pass_context
def rollback_command(ctx: click.Context, /, as_json: bool, quiet: bool, release_id: str | None,
                     **options: Any) -> None:
    """Make release ID (default: the one before the current) current again; copies nothing."""
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="switching")
    settings = run.settings
    if release_id:
        validate_release_id(release_id)
    check_writable(settings.manifest_path, "the local manifest")  # before switching, as a deploy
    storage = open_storage(settings)
    storage.check()
    result = rollback(ReleaseStore(storage, settings.prefix), release_id=release_id,
                      unsafe_no_conditional_writes=settings.unsafe_no_conditional_writes)
    key = manifest_key(settings.prefix)
    write_published_manifest(
        settings.manifest_path, result.doc, manifest_key=key,
        redo=f"run `{command_hint(ctx, 'rollback', result.doc.release_id or '')}` (it changes "
             "nothing remotely and writes the manifest)")
    invalidation = invalidate_after_publish(
        settings.distribution_id, [key], release_id=result.doc.release_id,
        max_attempts=settings.max_attempts) if result.changed else None
    if as_json:
        run.emit({"release": result.doc.release_id, "previous": result.previous,
                  "changed": result.changed, "files": len(result.doc.manifest),
                  "manifest": str(settings.manifest_path), "manifest_key": key,
                  "invalidation": invalidation})
        return
    verb = "Rolled back" if result.changed else "Already current:"
    click.echo(f"{verb} {result.previous or 'none'} -> {result.doc.release_id} "
               f"({len(result.doc.manifest)} files); manifest: {settings.manifest_path}")


@click.command("prune", context_settings=_CONTEXT)
@common_options()
@click.option("--keep", default=5, show_default=True,
              help="Keep the objects of the newest N releases.")
@click.option("--grace", default="7d", show_default=True,
              help="Never delete objects written more recently (7d, 12h, 30m).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--max-deletes", type=int,
              help="Safety limit on deletions [default: 25% of the objects].")
@click.option("--force", is_flag=True, help="Delete even past the safety limit.")
@click.pass_context
def prune_command(ctx: click.Context, /, as_json: bool, quiet: bool, keep: int, grace: str,
                  max_deletes: int | None, force: bool, **options: Any) -> None:
    """Delete objects that none of the newest N releases names and that are older than --grace."""
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="pruning")
    settings = run.settings
    keep = validate_int(keep, "--keep", 1, 10_000)
    if max_deletes is not None:
        max_deletes = validate_int(max_deletes, "--max-deletes", 0, 10**9)
    grace_period = parse_duration(grace, "--grace")
    storage = open_storage(settings)
    storage.check()
    result = prune(ReleaseStore(storage, settings.prefix), keep=keep, grace=grace_period,
                   dry_run=settings.dry_run, max_deletes=max_deletes, force=force)
    failed = bool(result.outcome and result.outcome.failures)
    if as_json:
        run.emit(_prune_json(result, keep, grace_period.total_seconds()))
    else:
        _print_prune(result, run)
    if failed:
        ctx.exit(1)


def _prune_json(result: PruneResult, keep: int, grace_seconds: float) -> dict[str, Any]:
    plan, outcome = result.plan, result.outcome
    return {
        "dry_run": result.dry_run, "keep": keep, "grace_seconds": grace_seconds,
        "kept_releases": list(plan.kept_releases), "objects": plan.total_objects,
        "candidates": len(plan.candidates), "in_grace": plan.in_grace, "limit": plan.limit,
        "over_limit": plan.over_limit, "keys": list(plan.candidates),
        "deleted": len(outcome.deleted) if outcome else 0,
        "requests": outcome.requests if outcome else 0,
        "failures": [asdict(f) for f in outcome.failures] if outcome else [],
    }


def _print_prune(result: PruneResult, run: Run) -> None:
    plan, outcome = result.plan, result.outcome
    if result.dry_run:
        for key in plan.candidates:
            click.echo(f"would delete {key}")
        note = " (over the safety limit: needs --force or --max-deletes)" if plan.over_limit else ""
        click.echo(f"Dry run: {len(plan.candidates)} of {plan.total_objects} objects would be "
                   f"deleted{note}; {plan.in_grace} unreferenced but inside the grace period; "
                   f"kept releases: {', '.join(plan.kept_releases) or 'none'}")
        return
    if outcome is None:
        click.echo(f"Nothing to delete: {plan.total_objects} objects, {plan.in_grace} "
                   "unreferenced but inside the grace period")
        return
    for failure in outcome.failures:
        click.echo(f"error: could not delete {failure.key}: {failure.message}", err=True)
    click.echo(f"Deleted {len(outcome.deleted)} of {plan.total_objects} objects in "
               f"{outcome.requests} request(s); {plan.in_grace} unreferenced but inside the "
               f"grace period; kept releases: {', '.join(plan.kept_releases) or 'none'}")


@click.command("private", context_settings=_CONTEXT)
@common_options(WORKERS_OPTION)
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--private-prefix", default="private", show_default=True,
              help="Key prefix of the private objects; must not overlap --prefix.")
@click.option("--force", is_flag=True,
              help="Upload even though the bucket policy could not be read as JSON.")
@click.pass_context
def private_command(ctx: click.Context, /, as_json: bool, quiet: bool, folder: str,
                    private_prefix: str, force: bool, **options: Any) -> None:
    """Upload a folder of private images: no ACL, never under the public prefix.

    Refuses (exit 2) when the bucket policy lets anyone read the private prefix, so a
    policy written for the CDN can never expose them, and when a request without
    credentials for the first uploaded file succeeds (at the S3 endpoint, and through
    --cdn-url if set): that file is deleted and nothing else uploaded. Readers get
    presigned URLs.
    """
    run = start_run(ctx, options, as_json=as_json, quiet=quiet, action="uploading to",
                    needs_bucket="a local folder is served publicly, private images are not")
    settings = run.settings
    prefix = _private_prefix(private_prefix, public=settings.prefix)
    from ..storage.s3 import S3Storage

    storage = open_storage(settings)
    assert isinstance(storage, S3Storage) and settings.bucket  # needs_bucket made sure
    storage.check()
    try:
        grants = public_grants(storage.bucket_policy(), bucket=settings.bucket,
                               key=f"{prefix}/any-image.png")
    except UnreadablePolicy as exc:
        if not force:
            raise ConfigError(
                f"cannot tell whether bucket {settings.bucket!r} lets anyone read {prefix}/: "
                f"{exc}; the server may not support bucket policies. Check who can read the "
                "bucket yourself, then pass --force"
            ) from exc
        run.say(f"warning: {exc}; uploading anyway (--force)")
        grants = []
    if grants:
        raise ConfigError(
            f"the policy of bucket {settings.bucket!r} lets anyone read {prefix}/ "
            f"({grants[0]}): private images would be public; narrow the policy to the "
            "public prefix or use another bucket"
        )
    checks: list[PrivacyCheck] = []
    keys = upload_private(Path(folder), storage, prefix, check_first=lambda key: checks.append(
        check_unreadable(storage, key, cdn_base=settings.cdn_url)))
    if as_json:
        run.emit({"target": storage.description, "prefix": prefix, "uploaded": len(keys),
                  "unsigned_reads": {where: status for check in checks
                                     for where, status in check.answers},
                  "private_confirmed": bool(checks) and checks[0].confirmed})
        return
    confirmed = bool(checks) and checks[0].confirmed
    claim = (" (no ACL; an unsigned GET was refused: readable only through presigned URLs)"
             if confirmed else "")
    click.echo(f"Uploaded {len(keys)} private file(s) to {storage.description} under "
               f"{prefix}/{claim}")
    if checks and not confirmed:
        shown = ", ".join(f"{status or 'no answer'} from {where}"
                          for where, status in checks[0].answers)
        click.echo(f"warning: could not confirm that {prefix}/ is private: an unsigned GET of "
                   f"{checks[0].key!r} got {shown} (expected 401 or 403); check who can read "
                   "the bucket", err=True)


def _private_prefix(value: str, *, public: str) -> str:
    prefix = validate_prefix(value)
    if not prefix:
        raise ConfigError("--private-prefix must not be empty: private images need their own "
                          "prefix")
    if not public or prefix == public or prefix.startswith(public + "/") \
            or public.startswith(prefix + "/"):
        raise ConfigError(f"--private-prefix {prefix!r} overlaps the public prefix "
                          f"{public or '(whole bucket)'!r}: private images would be public")
    return prefix
