"""``flask cdn ...``: the deploy and release commands with the app's settings as defaults, and
a status view.

``flask cdn deploy`` is :data:`pipeline.cli.main.deploy_command` itself (same options, same
output), and ``releases``, ``verify``, ``rollback`` and ``prune`` are the CLI's too; the group
only adds the app's settings to the precedence, so the deploy writes the manifest the app
reads and a rollback rewrites it. Precedence: command line > the app's
``CDN_MANIFEST``/``CDN_URL`` > environment > ``pyproject.toml`` > the app's static
folder > built-in default.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..errors import PipelineError
from ..manifest import Manifest
from ..urls import cdn_url
from .appsettings import app_layers
from .mounts import blueprint_mounts
from .state import CDNState, get_state
from .status import status_command

#: ``flask cdn`` subcommands that are the deploy CLI's own commands: imported when run or
#: listed, so registering the extension never loads the deploy machinery.
CLI_COMMANDS = {
    "deploy": ("pipeline.cli.main", "deploy_command"),
    "releases": ("pipeline.cli.commands", "releases_command"),
    "verify": ("pipeline.cli.commands", "verify_command"),
    "rollback": ("pipeline.cli.commands", "rollback_command"),
    "prune": ("pipeline.cli.commands", "prune_command"),
    "serve": ("pipeline.cli.serve", "serve_command"),
}
#: The CLI commands that take the app's settings as defaults: each reads or writes the
#: release the app follows (``serve`` serves a folder and needs none of them).
WITH_APP_SETTINGS = frozenset({"deploy", "releases", "verify", "rollback", "prune"})


class CDNGroup(AppGroup):
    """Maps the package's errors to their exit codes instead of a traceback, and loads the
    CLI's commands only when one of them is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *CLI_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in CLI_COMMANDS:
            module, name = CLI_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Read before invoking: the group hands its arguments on and clears them.
        as_json = "--json" in ctx.args
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            if as_json:  # the same one JSON object as ``deploy.py --json``
                from ..cli.main import report_failure

                raise click.exceptions.Exit(report_failure(True, str(exc), exc.exit_code)) from exc
            raise  # a ClickException: click shows ``Error: ...`` and exits with its code


@click.group("cdn", cls=CDNGroup)
@with_appcontext
def cdn_group() -> None:
    """Deploy static files to the CDN and inspect the manifest this app reads."""
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in WITH_APP_SETTINGS:  # the app's settings are their defaults
        from ..cli.common import APP_LAYERS, APP_MOUNTS

        ctx.meta[APP_LAYERS] = app_layers(current_app)
        ctx.meta[APP_MOUNTS] = blueprint_mounts(current_app)


cdn_group.add_command(status_command, "status")


@cdn_group.command("check")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="Also require every file in this deployed manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_command(manifest_path: str | None, as_json: bool) -> None:
    """Check that every static file the templates name exists, before a deploy ships.

    Parses each template of the app and its blueprints (Jinja's parser) and resolves every
    url_for('static' or '<blueprint>.static', filename=...), picture(), srcset() and
    asset_tags() call with literal arguments; calls known only when rendering are counted.
    Exits 1 listing template:line for each missing file.
    """
    from .check import check_templates, report_json

    manifest = Manifest.load(Path(manifest_path)) if manifest_path else None
    report = check_templates(current_app, manifest=manifest, relative_to=Path.cwd())
    if as_json:
        click.echo(json.dumps(report_json(report), sort_keys=True))
    else:
        for problem in report.problems:
            click.echo(str(problem))
        against = " and the manifest" if manifest is not None else ""
        click.echo(f"Checked {report.templates} template(s): {report.checked} static "
                   f"reference(s) against the folders{against}, {len(report.problems)} "
                   f"missing; {len(report.dynamic)} dynamic call(s) not checked (their "
                   "arguments are known only when rendering)")
    if report.problems:
        raise click.exceptions.Exit(1)


@cdn_group.command("manifest")
@click.argument("names", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Look up every file in the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def manifest_command(names: Sequence[str], show_all: bool, as_json: bool) -> None:
    """Show whether the CDN is on, which manifest the app reads, and where NAMES resolve.

    Exits 1 when a NAME is not in the manifest, so CI can check references.
    """
    state = get_state(current_app)
    path = state.settings.manifest_path
    if state.refresher is not None:  # a bucket or CDN source: the table served now
        manifest = state.manifest
    else:  # a local file: as deployed now, whether or not it was reloaded yet
        manifest = Manifest.load(path) if path.is_file() else None
    wanted = [*sorted(manifest or ()), *names] if show_all else list(names)
    lookups = {name: lookup(state, manifest, name) for name in wanted}
    report = status_report(state, manifest, lookups)
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        print_report(report)
    if any(url is None for url in lookups.values()):
        raise click.exceptions.Exit(1)


def lookup(state: CDNState, manifest: Manifest | None, name: str) -> str | None:
    """The CDN URL of ``name`` (its object key when no CDN_URL is set); None when absent."""
    entry = manifest.get(name) if manifest is not None else None
    if entry is None:
        return None
    base = state.settings.cdn_url
    return cdn_url(base, entry.key) if base else entry.key


def status_report(
    state: CDNState, manifest: Manifest | None, lookups: dict[str, str | None]
) -> dict[str, Any]:
    settings = state.settings
    refresher = state.refresher
    return {
        "enabled": settings.enabled,
        "reason": settings.reason,
        "cdn_url": settings.cdn_url,
        # A bucket or CDN source, and its last-known-good copy (a local file is both).
        "source": refresher.source.description if refresher else str(settings.manifest_path),
        "manifest": str(settings.manifest_path),
        "manifest_exists": manifest is not None,
        "files": len(manifest) if manifest is not None else 0,
        "bytes": manifest.total_bytes if manifest is not None else 0,
        "strict": settings.strict,
        "reload": settings.reload,
        "lookups": lookups,
    }


def print_report(report: Mapping[str, Any]) -> None:
    click.echo(f"CDN: {'enabled' if report['enabled'] else 'disabled'} ({report['reason']})")
    click.echo(f"CDN URL: {report['cdn_url'] or '(not set)'}")
    if report["manifest_exists"]:
        from ..cli.reporting import format_size

        size = format_size(report["bytes"])
        click.echo(f"Manifest: {report['source']} ({report['files']} files, {size})")
    else:
        click.echo(f"Manifest: {report['source']} (missing)")
    if report["source"] != report["manifest"]:
        click.echo(f"Last-known-good copy: {report['manifest']}")
    click.echo(f"Strict: {'on' if report['strict'] else 'off'}; "
               f"reload on change: {'on' if report['reload'] else 'off'}")
    for name, url in report["lookups"].items():
        shown = url if url is not None else "not in the manifest (served locally)"
        click.echo(f"{name} -> {shown}")
