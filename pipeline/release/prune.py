"""``prune``: delete objects no recent release needs, without breaking any cached page.

An object is deleted only if all of these hold:

* no release among the newest ``keep`` (and not the current one, whichever it is)
  names it, and the current manifest does not name it;
* it is not the current manifest nor the release object of a kept release;
* it was last written more than ``grace`` ago (``LastModified`` from the listing),
  so HTML that a browser or CDN cached during that time still finds its assets,
  and an object a running deploy just uploaded is never taken.

Past a safety limit (25% of the objects under the prefix, or ``--max-deletes``)
nothing is deleted without ``--force``: a wrong ``--prefix`` or ``--keep`` must not
empty a bucket. Release objects go first, then the objects, in batches of 1,000 keys
per request: a prune killed half-way leaves orphans (removed next time), never a
release naming deleted objects.

Only keys of the shapes a deploy creates are ever considered: fingerprinted names
(``<stem>.<12 hex>.<ext>``) under ``<prefix>/`` and release objects. The current
manifest, anything else under the prefix, and another deploy's prefix nested inside
this one (a folder with its own ``manifest.json``) are never candidates, so a
wrong ``--prefix`` cannot turn prune on objects it did not make.

Racing a deploy, why no release can name a deleted object:

* prune never deletes an object written less than :data:`MIN_GRACE` ago (unless
  forced), so what a running deploy uploads is out of reach;
* before its final check, prune writes a marker ``<prefix>/releases/pruning-*.json``;
  it starts no delete request later than :data:`PRUNE_SEND_DEADLINE` after writing
  it, and when done writes a record ``pruned-*.json`` and then removes the marker;
* the final check (right before deleting) reads the releases again and spares
  every key a release written meanwhile names;
* a deploy writes its release object, then lists ``releases/``: if a prune may have
  deleted since the deploy started (:func:`pruned_since`), it waits while a marker
  younger than :data:`PRUNE_WINDOW` is listed, lists the whole prefix, and
  re-uploads whatever is missing before the release becomes current.

Either the prune's final check comes after the release object was written (and
spares its keys), or its marker was written before the release object and the
deploy's listing sees it (and waits until the deletes are done, then confirms).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..build.fingerprint import is_hashed_name
from ..errors import ConfigError, DeployError
from ..keys import MANIFEST_NAME, manifest_key, release_id_of, release_key, releases_prefix
from ..storage.base import DeleteOutcome, RemoteObject, Storage, UploadFailure
from .documents import (
    Current,
    ReleaseDoc,
)
from .store import ReleaseStore, require_prefix

#: Without ``--max-deletes``, refuse to delete more than this share of the objects.
DEFAULT_LIMIT_SHARE = 0.25

#: The shortest ``--grace`` accepted without ``--force``. Longer than any deploy takes
#: from its upload to its release, so an object a running deploy just stored is
#: never a candidate; and HTML cached for less than this still finds its assets.
MIN_GRACE = timedelta(hours=1)

#: Prune starts no delete request later than this after writing its marker ...
PRUNE_SEND_DEADLINE = timedelta(minutes=2)
#: ... and a deploy waits while a marker younger than this is listed. The gap covers a
#: request that botocore is still retrying, and clock skew between client and server.
PRUNE_WINDOW = timedelta(minutes=10)

#: Keys per delete call from prune (the S3 maximum per DeleteObjects request).
DELETE_CHUNK = 1000

#: Done records older than this are removed by the next prune (deploys look back
#: no further than their own duration plus the window).
DONE_TTL = timedelta(days=1)

_MARKER_HEAD = "pruning-"
_DONE_HEAD = "pruned-"


@dataclass(frozen=True)
class PrunePlan:
    #: Keys to delete, release objects first.
    candidates: tuple[str, ...]
    kept_releases: tuple[str, ...]
    total_objects: int
    #: Unreferenced objects spared because they are younger than the grace period.
    in_grace: int
    limit: int

    @property
    def over_limit(self) -> bool:
        return len(self.candidates) > self.limit


@dataclass(frozen=True)
class PruneResult:
    plan: PrunePlan
    #: ``None`` when nothing was deleted (a dry run, or no candidates).
    outcome: DeleteOutcome | None
    dry_run: bool


def plan_prune(
    listing: Mapping[str, RemoteObject], prefix: str, *, kept: Mapping[str, ReleaseDoc],
    current: Current, cutoff: datetime, max_deletes: int | None,
) -> PrunePlan:
    """Pure: which keys of ``listing`` may go (see the module docstring)."""
    protected = {manifest_key(prefix), *(release_key(prefix, rid) for rid in kept)}
    docs = [*kept.values(), *([current.doc] if current.doc else [])]
    protected |= referenced_keys(docs)
    unreferenced = [key for key in owned_keys(listing, prefix) if key not in protected]
    old = [key for key in unreferenced if _older(listing[key], cutoff)]
    release_objects = sorted(key for key in old if key.startswith(releases_prefix(prefix) + "/"))
    objects = sorted(set(old) - set(release_objects))
    limit = max_deletes if max_deletes is not None else math.floor(
        len(listing) * DEFAULT_LIMIT_SHARE)
    return PrunePlan(tuple(release_objects + objects), tuple(sorted(kept)), len(listing),
                     len(unreferenced) - len(old), limit)


def owned_keys(listing: Iterable[str], prefix: str) -> list[str]:
    """The keys of ``listing`` whose shape a deploy under ``prefix`` creates.

    Release objects, and fingerprinted names under ``<prefix>/`` outside ``releases/``
    and outside any nested folder that holds its own manifest (another prefix's deploy).
    """
    require_prefix(prefix)
    keys = list(listing)
    head, releases = prefix + "/", releases_prefix(prefix) + "/"
    nested = {key[:-len(MANIFEST_NAME)] for key in keys
              if key.endswith("/" + MANIFEST_NAME) and key != manifest_key(prefix)}
    return [key for key in keys if release_id_of(key, prefix) or (
        key.startswith(head) and not key.startswith(releases)
        and is_hashed_name(key.rpartition("/")[2])
        and not any(key.startswith(root) for root in nested))]


def referenced_keys(docs: Iterable[ReleaseDoc]) -> set[str]:
    # Variants included: an image's variants live as long as a kept release names it.
    return {key for doc in docs for key in doc.manifest.object_keys()}


def _older(remote: RemoteObject, cutoff: datetime) -> bool:
    """Unknown age counts as young: never delete what cannot be dated."""
    return remote.last_modified is not None and remote.last_modified < cutoff


def prune(
    store: ReleaseStore, *, keep: int, grace: timedelta, dry_run: bool = False,
    max_deletes: int | None = None, force: bool = False, now: datetime | None = None,
) -> PruneResult:
    """Delete what no kept release needs (see the module docstring); ``force`` also allows
    a ``grace`` under :data:`MIN_GRACE`."""
    store.require_prefix()
    if keep < 1:  # the CLI says so too; a library caller must not delete every release
        raise ConfigError(f"keep={keep}: prune keeps at least the newest release (keep >= 1)")
    check_grace(grace, force=force)
    listing = store.list()
    current = store.read_current()
    if current.doc is None:
        raise DeployError(
            f"no readable manifest at {store.manifest_key!r} in {store.description}: "
            "refusing to prune a prefix with nothing published (check --prefix)"
        )
    ids = store.release_ids(listing)
    kept = kept_releases(store, ids, current, keep)
    cutoff = (now or datetime.now(UTC)) - grace
    plan = plan_prune(listing, store.prefix, kept=kept, current=current, cutoff=cutoff,
                      max_deletes=max_deletes)
    if dry_run or not plan.candidates:
        return PruneResult(plan, None, dry_run)
    if plan.over_limit and not force:
        raise DeployError(
            f"refusing to delete {len(plan.candidates)} of {plan.total_objects} objects: more "
            f"than the safety limit of {plan.limit}; check --prefix and --keep with --dry-run, "
            "then raise --max-deletes or pass --force"
        )
    stale = _stale_done_records(listing, store.prefix, now or datetime.now(UTC))
    with announced(store, stale=stale) as started:
        # The final check comes after the marker is stored: see the module docstring.
        spared = _named_by_new_releases(store, set(ids), current)
        keys = [key for key in plan.candidates if key not in spared]
        outcome = _delete_in_time(store.storage, keys, started)
    return PruneResult(plan, outcome, dry_run)


def check_grace(grace: timedelta, *, force: bool) -> None:
    if grace < MIN_GRACE and not force:
        raise ConfigError(
            f"--grace {_hours(grace)} is shorter than the floor of {_hours(MIN_GRACE)}: a "
            "deploy running now, or a page cached a moment ago, could lose objects it needs; "
            "use a longer --grace, or --force if no deploy can be running"
        )


def _hours(period: timedelta) -> str:
    return f"{period.total_seconds() / 3600:g}h"


@contextmanager
def announced(store: ReleaseStore, *, stale: Sequence[str] = ()) -> Iterator[float]:
    """Store a prune marker for the duration of the block; yield when it was written
    (``time.monotonic()`` just before the PUT, so the deadline errs early).

    When the block ends, a "done" record is written *before* the marker is removed, so
    a deploy always finds one of the two for any prune that deleted since it started.
    ``stale`` (old done records) are removed with the marker.
    """
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}.json"
    key = f"{store.releases_prefix}/{_MARKER_HEAD}{name}"
    body = json.dumps({"pruning": True, "window_seconds": PRUNE_WINDOW.total_seconds()})
    started = time.monotonic()
    storage = store.storage
    storage.put_bytes(key, body.encode(), content_type="application/json",
                      cache_control="no-store")
    try:
        yield started
    finally:
        storage.put_bytes(f"{store.releases_prefix}/{_DONE_HEAD}{name}", b"{}",
                          content_type="application/json", cache_control="no-store")
        storage.delete_keys([key, *stale])


def live_markers(listing: Mapping[str, RemoteObject], prefix: str, now: datetime) -> list[str]:
    """Prune markers in ``listing`` younger than :data:`PRUNE_WINDOW` at ``now``.

    A marker without a date counts as live; one from a prune killed by SIGKILL stops
    counting once the window has passed.
    """
    head = f"{releases_prefix(prefix)}/{_MARKER_HEAD}"
    return sorted(key for key, remote in listing.items() if key.startswith(head)
                  and (remote.last_modified is None or remote.last_modified > now - PRUNE_WINDOW))


def pruned_since(listing: Mapping[str, RemoteObject], prefix: str, since: datetime) -> bool:
    """Whether a prune may have deleted anything after ``since`` (server time).

    Its deletes land within :data:`PRUNE_WINDOW` of its marker, and it writes a done
    record after them: so a marker younger than ``since - PRUNE_WINDOW`` or a done
    record younger than ``since`` is listed for every such prune.
    """
    marker, done = (f"{releases_prefix(prefix)}/{head}" for head in (_MARKER_HEAD, _DONE_HEAD))
    for key, remote in listing.items():
        stamp = remote.last_modified
        if key.startswith(marker) and (stamp is None or stamp > since - PRUNE_WINDOW):
            return True
        if key.startswith(done) and (stamp is None or stamp > since):
            return True
    return False


def _stale_done_records(listing: Mapping[str, RemoteObject], prefix: str, now: datetime
                        ) -> list[str]:
    head = f"{releases_prefix(prefix)}/{_DONE_HEAD}"
    return [key for key, remote in listing.items() if key.startswith(head)
            and remote.last_modified is not None and remote.last_modified < now - DONE_TTL]


def _delete_in_time(storage: Storage, keys: Sequence[str], started: float) -> DeleteOutcome:
    """Delete in chunks, starting none after :data:`PRUNE_SEND_DEADLINE`; the rest fail."""
    outcome = DeleteOutcome()
    deadline = started + PRUNE_SEND_DEADLINE.total_seconds()
    for start in range(0, len(keys), DELETE_CHUNK):
        chunk = keys[start:start + DELETE_CHUNK]
        if time.monotonic() > deadline:
            outcome.failures += [UploadFailure(key, "not deleted: prune ran past its window; "
                                               "run it again") for key in keys[start:]]
            break
        part = storage.delete_keys(chunk)
        outcome.deleted += part.deleted
        outcome.failures += part.failures
        outcome.requests += part.requests
    return outcome


def kept_releases(
    store: ReleaseStore, ids: list[str], current: Current, keep: int
) -> dict[str, ReleaseDoc]:
    """The newest ``keep`` releases plus the current one (after a rollback it may be older)."""
    wanted = set(ids[-keep:])
    if current.release_id in ids:
        wanted.add(current.release_id)
    return store.read_releases(wanted)


def _named_by_new_releases(
    store: ReleaseStore, known: set[str], current: Current
) -> set[str]:
    """Keys named by releases (or a current manifest) that appeared since the listing."""
    fresh = set(store.release_ids(store.list_releases())) - known
    now = store.read_current()
    docs = list(store.read_releases(fresh).values())
    if now.data != current.data and now.doc is not None:
        docs.append(now.doc)
    return referenced_keys(docs)
