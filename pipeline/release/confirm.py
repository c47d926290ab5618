"""Confirmation: after the release object is stored, every object it names still exists.

The upload observer lives here too: confirmation re-uploads what a concurrent prune deleted
and reports it through the same observer as the deploy's uploads, so the two belong together
(apart, each module would import the other).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from ..build.fingerprint import HashCache
from ..errors import DeployError
from ..manifest import Manifest
from ..storage.base import RemoteObject, Storage, Upload, UploadOutcome
from .markers import listing_after_prunes, pruned_since, server_now
from .plan import Plan, missing_keys
from .store import ReleaseStore

#: ``LastModified`` has a resolution of one second.
STAMP_SLACK = timedelta(seconds=2)


class DeployObserver(Protocol):
    """Receives progress; the CLI renders it, tests may record it."""

    def planned(self, plan: Plan) -> None: ...

    def stored(self, upload: Upload) -> None: ...

    def warned(self, message: str) -> None: ...

    def encoding(self, sources: int, variants: int, *, dry_run: bool) -> None: ...

    def encoded(self, logical_path: str, done: int, total: int) -> None: ...

    def variants_ready(self, uploads: int, size: int) -> None: ...


class Silent:
    """The observer when none is given: progress goes nowhere."""

    def planned(self, plan: Plan) -> None:
        pass

    def stored(self, upload: Upload) -> None:
        pass

    def warned(self, message: str) -> None:
        pass

    def encoding(self, sources: int, variants: int, *, dry_run: bool) -> None:
        pass

    def encoded(self, logical_path: str, done: int, total: int) -> None:
        pass

    def variants_ready(self, uploads: int, size: int) -> None:
        pass


def upload_all(storage: Storage, uploads: Sequence[Upload], observer: DeployObserver,
            cache: HashCache | None = None) -> dict[str, RemoteObject]:
    """Upload ``uploads`` (no early start); the objects stored, or :class:`DeployError`."""
    outcome = storage.upload_files(uploads, on_stored=observer.stored)
    return checked(outcome, {upload.key: upload for upload in uploads}, cache)


def checked(outcome: UploadOutcome, queued: Mapping[str, Upload],
             cache: HashCache | None) -> dict[str, RemoteObject]:
    """The objects stored, or :class:`DeployError` naming the first failure."""
    for failure in outcome.failures:
        if failure.content_changed and cache is not None:
            cache.forget(queued[failure.key].source)  # rewritten in place: hash it afresh
    if outcome.failures:
        first = outcome.failures[0]
        raise DeployError(
            f"{len(outcome.failures)} upload(s) failed after retries "
            f"({outcome.not_attempted} not attempted), first: {first.key}: {first.message}; "
            "nothing was published, the previous manifest is still current"
        )
    return outcome.stored


def confirm_release(
    store: ReleaseStore, manifest: Manifest, by_key: Mapping[str, Upload],
    observer: DeployObserver, *, release_id: str | None, started: float,
) -> None:
    """After the release object is stored, make sure every object it names still exists.

    One listing of ``releases/`` shows whether a prune may have deleted anything since
    this deploy began (``started``, a ``time.monotonic()`` taken before its listing):
    if not, what the deploy listed and uploaded is still there. If so, it waits out
    live prune markers, lists the whole prefix, re-uploads what is missing and lists
    again. Raises :class:`DeployError` if something is still missing.
    """
    recent = store.list_releases()
    since = server_now(recent, store) - _seconds(time.monotonic() - started) - STAMP_SLACK
    if not pruned_since(recent, store.prefix, since):
        return
    listing = listing_after_prunes(store, list(by_key))
    missing = missing_keys(manifest, listing)
    if not missing:
        return
    observer.warned(f"{len(missing)} object(s) disappeared during the deploy (a concurrent "
                    f"prune?), first: {missing[0]}; uploading them again")
    # A variant this run did not upload has no local source here: the check below reports it.
    upload_all(store.storage, [by_key[key] for key in missing if key in by_key], observer)
    still = missing_keys(manifest, listing_after_prunes(store, list(by_key)))
    if still:
        raise DeployError(
            f"{len(still)} object(s) of the new release keep disappearing from "
            f"{store.description}, first: {still[0]}; nothing was published, the previous "
            f"manifest is still current (release {release_id} was recorded but not made "
            "current; is a prune with --force running?)"
        )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
