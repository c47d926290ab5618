"""How prune, deploys and rollbacks coordinate: small objects under ``<prefix>/releases/``.

No lock: a prune killed by SIGKILL must not block deploys forever, and a lock held
for a whole prune would stop every deploy. Instead each side writes an object first
and then looks for the other side's:

* ``pruning-<stamp>.json``: a prune is deleting; written before its final check,
  removed when it is done (its deletes start within ``PRUNE_SEND_DEADLINE`` of it);
* ``pruned-<stamp>.json``: a done record, written just before the marker goes, so a
  deploy still finds a prune that came and went while it ran;
* ``rollback-<release id>.<random>.json``: a rollback to that release is under way;
  written before the rollback checks the release's objects, removed after the switch.

Prune's final check (right before its deletes, after its marker is stored) lists
``releases/`` and spares every key named by a release written meanwhile, by the
current manifest, and by the target of a rollback intent. So for a rollback, either
the intent was written before that check (prune spares the target), or the prune's
marker was written before the intent and the rollback's listing after the intent
sees it: the rollback waits until the marker is gone (the deletes are over), then
lists the prefix and checks the target against that listing before switching. Either
way the release made current has all its objects.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from ..errors import ConflictError
from ..keys import (
    ROLLBACK_INTENT_HEAD,
    prune_done_key,
    prune_marker_key,
    releases_prefix,
    rollback_intent_key,
    rollback_intent_release,
)
from ..storage.base import RemoteObject
from .store import ReleaseStore

#: A deploy or rollback waits while a prune marker younger than this is listed. The
#: gap over prune's send deadline covers a request botocore is still retrying, and
#: clock skew between client and server.
PRUNE_WINDOW = timedelta(minutes=10)
#: Seconds between listings while waiting for a live prune marker to go.
MARKER_POLL_SECONDS = 0.5
#: How far the local clock may run ahead of the server's when no server time is at hand
#: (SigV4 refuses requests from clocks more than 15 minutes off).
CLOCK_SKEW = timedelta(minutes=15)
#: Done records and rollback intents older than this are removed by the next prune
#: (deploys look back no further than their own duration plus the window).
DONE_TTL = timedelta(days=1)

def _stamped_name() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}.json"


@contextmanager
def announced(store: ReleaseStore, *, stale: Sequence[str] = ()) -> Iterator[float]:
    """Store a prune marker for the duration of the block; yield when it was written
    (``time.monotonic()`` just before the PUT, so the deadline errs early).

    When the block ends, a "done" record is written *before* the marker is removed, so
    a deploy always finds one of the two for any prune that deleted since it started.
    ``stale`` (old done records and intents) are removed with the marker.
    """
    name = _stamped_name()
    key = prune_marker_key(store.prefix, name)
    body = json.dumps({"pruning": True, "window_seconds": PRUNE_WINDOW.total_seconds()})
    started = time.monotonic()
    storage = store.storage
    storage.put_bytes(key, body.encode(), content_type="application/json",
                      cache_control="no-store")
    try:
        yield started
    finally:
        storage.put_bytes(prune_done_key(store.prefix, name), b"{}",
                          content_type="application/json", cache_control="no-store")
        storage.delete_keys([key, *stale])


@contextmanager
def rollback_intent(store: ReleaseStore, release_id: str) -> Iterator[str]:
    """Store "a rollback to ``release_id`` is under way" for the block; yield its key.

    A prune whose final check lists it spares the release (see the module docstring).
    A rollback killed inside the block leaves it behind: prune then spares that
    release until the intent is older than :data:`DONE_TTL`, which costs nothing but
    storage.
    """
    key = rollback_intent_key(store.prefix, release_id, os.urandom(4).hex())
    store.storage.put_bytes(key, json.dumps({"release": release_id}).encode(),
                            content_type="application/json", cache_control="no-store")
    try:
        yield key
    finally:
        store.storage.delete_keys([key])


def rollback_targets(listing: Mapping[str, RemoteObject], prefix: str) -> set[str]:
    """Release ids named by rollback intents in a listing of ``releases/`` (any age)."""
    found = (rollback_intent_release(key, prefix) for key in listing)
    return {release_id for release_id in found if release_id is not None}


def live_markers(listing: Mapping[str, RemoteObject], prefix: str, now: datetime) -> list[str]:
    """Prune markers in ``listing`` younger than :data:`PRUNE_WINDOW` at ``now``.

    A marker without a date counts as live; one from a prune killed by SIGKILL stops
    counting once the window has passed.
    """
    head = prune_marker_key(prefix, "")
    return sorted(key for key, remote in listing.items() if key.startswith(head)
                  and (remote.last_modified is None or remote.last_modified > now - PRUNE_WINDOW))


def pruned_since(listing: Mapping[str, RemoteObject], prefix: str, since: datetime) -> bool:
    """Whether a prune may have deleted anything after ``since`` (server time).

    Its deletes land within :data:`PRUNE_WINDOW` of its marker, and it writes a done
    record after them: so a marker younger than ``since - PRUNE_WINDOW`` or a done
    record younger than ``since`` is listed for every such prune.
    """
    marker, done = prune_marker_key(prefix, ""), prune_done_key(prefix, "")
    for key, remote in listing.items():
        stamp = remote.last_modified
        if key.startswith(marker) and (stamp is None or stamp > since - PRUNE_WINDOW):
            return True
        if key.startswith(done) and (stamp is None or stamp > since):
            return True
    return False


def stale_records(listing: Mapping[str, RemoteObject], prefix: str, now: datetime) -> list[str]:
    """Done records and rollback intents older than :data:`DONE_TTL`: safe to remove."""
    heads = prune_done_key(prefix, ""), f"{releases_prefix(prefix)}/{ROLLBACK_INTENT_HEAD}"
    return [key for key, remote in listing.items() if key.startswith(heads)
            and remote.last_modified is not None and remote.last_modified < now - DONE_TTL]


def listing_after_prunes(store: ReleaseStore, hints: Sequence[str]) -> dict[str, RemoteObject]:
    """One listing of the prefix taken when no prune marker is live (bounded wait)."""
    started = time.monotonic()
    while True:
        listing = store.list(hints=hints)
        waited = time.monotonic() - started
        live = live_markers(listing, store.prefix,
                            server_now(listing, store) + timedelta(seconds=waited))
        if not live:
            return listing
        if waited > PRUNE_WINDOW.total_seconds():
            raise ConflictError(f"a prune marker ({live[0]}) did not go away in "
                                f"{PRUNE_WINDOW}; the current manifest was not changed")
        time.sleep(MARKER_POLL_SECONDS)


def server_now(listing: Mapping[str, RemoteObject], store: ReleaseStore) -> datetime:
    """The newest ``LastModified`` under ``releases/``: usually what the caller just wrote
    (a release object, a rollback intent), so the server's clock, which also dates the
    markers. Without one, the local clock minus :data:`CLOCK_SKEW`, erring towards waiting."""
    head = store.releases_prefix + "/"
    stamps = [remote.last_modified for key, remote in listing.items()
              if key.startswith(head) and remote.last_modified is not None]
    return max([*stamps, datetime.now(UTC) - CLOCK_SKEW])
