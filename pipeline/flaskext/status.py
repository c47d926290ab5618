"""Which release this process serves: ``flask cdn status`` and a mountable JSON view.

Mount the view for health checks and dashboards::

    from .status import status_blueprint
    app.register_blueprint(status_blueprint, url_prefix="/_cdn")   # GET /_cdn/status

It always answers 200: an app whose manifest source is down keeps serving its
last table (or local static URLs), and a load balancer that pulled every instance
because the bucket was unreachable would turn a CDN problem into an outage. Read
``ok``, ``failures`` and ``last_error`` instead.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
from flask import Blueprint, Flask, Response, current_app

from ..errors import ManifestError
from ..releasedoc import ReleaseDoc
from ..serving.source import FILE, PINNED
from .state import CDNState, get_state


def status_report(app: Flask) -> dict[str, Any]:
    """The status of the CDN extension in this process, as one JSON-ready dict."""
    state = get_state(app)
    settings = state.settings
    report = state.refresher.status.to_json() if state.refresher else file_status(state)
    report.update(enabled=settings.enabled, reason=settings.reason, cdn_url=settings.cdn_url,
                  refresher_running=bool(state.refresher and state.refresher.running))
    report["ok"] = not settings.enabled or (state.manifest is not None and not report["failures"])
    return report


def file_status(state: CDNState) -> dict[str, Any]:
    """A local manifest file (or a remote source while the CDN is off): no refresher."""
    path = state.settings.manifest_path
    try:  # the release id is not kept by Manifest: read it from the file as it is now
        release = ReleaseDoc.from_json(path.read_bytes(), source=str(path)).release_id
    except (OSError, ManifestError):
        release = None
    return {
        "mode": FILE, "source": str(path), "release": release,
        "files": len(state.manifest) if state.manifest is not None else 0,
        "loaded_from": FILE if state.manifest is not None else "none",
        "refresh_seconds": None, "reload_on_change": state.settings.reload,
        "last_refresh": None, "last_change": None, "last_error": None,
        "last_error_at": None, "failures": 0, "reading_since": None, "pid": os.getpid(),
    }


status_blueprint = Blueprint("cdn_status", __name__)


@status_blueprint.get("/status")
def status_view() -> Response:
    """``GET <prefix>/status``: :func:`status_report` as JSON, never cached."""
    body = json.dumps(status_report(current_app), sort_keys=True)
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status_command(as_json: bool) -> None:
    """Show which release this app serves, where from, and the last refresh and error.

    Exits 1 when the CDN is enabled but no manifest could be loaded.
    """
    report = status_report(current_app)
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        print_status(report)
    if report["enabled"] and report["loaded_from"] == "none":
        raise click.exceptions.Exit(1)


def refresh_schedule(report: dict[str, Any]) -> str:
    """When the source is read again: a pinned release never changes, so once loaded it
    is never re-read (until then it is retried like a followed manifest)."""
    seconds = report["refresh_seconds"]
    if report["mode"] == PINNED:
        if report["loaded_from"] != "none":
            return " (pinned: never refreshed, the release cannot change)"
        return f" (pinned: retried every {seconds:g} s until it loads)"
    return f" (every {seconds:g} s)" if seconds else ""


def print_status(report: dict[str, Any]) -> None:
    click.echo(f"CDN: {'enabled' if report['enabled'] else 'disabled'} ({report['reason']})")
    click.echo(f"Mode: {report['mode']}  Source: {report['source']}")
    release = report["release"] or "(none)"
    click.echo(f"Release: {release} ({report['files']} files, loaded from {report['loaded_from']})")
    click.echo(f"Last refresh: {report['last_refresh'] or 'never'}{refresh_schedule(report)}")
    if report.get("reading_since"):
        click.echo(f"Reading the source since {report['reading_since']}")
    if report["last_error"]:
        click.echo(f"Last error: {report['last_error']} at {report['last_error_at']} "
                   f"({report['failures']} failure(s) in a row)")
    else:
        click.echo("Last error: none")
