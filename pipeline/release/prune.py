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
(``<stem>.<12 hex>.<ext>``, and their ``.br``/``.gz`` siblings) under ``<prefix>/`` and
release objects. The current manifest, anything else under the prefix, and another
deploy's prefix nested inside this one (a folder with its own ``manifest.json``) are never
candidates, so a wrong ``--prefix`` cannot turn prune on objects it did not make.

Racing a deploy, why no release can name a deleted object:

* prune never deletes an object written less than :data:`MIN_GRACE` ago (unless
  forced), so what a running deploy uploads is out of reach;
* before its final check, prune writes a marker ``<prefix>/releases/pruning-*.json``;
  it starts no delete request later than :data:`PRUNE_SEND_DEADLINE` after writing
  it, and when done writes a record ``pruned-*.json`` and then removes the marker;
* the final check (right before deleting) reads the releases again and spares
  every key a release written meanwhile names, the target of a rollback under way
  (its intent object), and what the current manifest names if it moved;
* a deploy writes its release object, then lists ``releases/``: if a prune may have
  deleted since the deploy started (:func:`~.markers.pruned_since`), it waits while a
  marker younger than :data:`~.markers.PRUNE_WINDOW` is listed, lists the whole
  prefix, and re-uploads whatever is missing before the release becomes current;
* a rollback writes its intent, waits out live markers the same way, and checks the
  target against a listing taken after that, before switching (:mod:`.markers`).

Either the prune's final check comes after the release object (or rollback intent)
was written and spares its keys, or its marker was written before it and the
deploy's or rollback's listing sees it (and waits until the deletes are done, then
confirms).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..build.fingerprint import is_hashed_name
from ..errors import ConfigError, DeployError
from ..keys import (
    MANIFEST_NAME,
    identity_key,
    manifest_key,
    release_id_of,
    release_key,
    releases_prefix,
)
from ..releasedoc import ReleaseDoc
from ..storage.base import DeleteOutcome, RemoteObject, Storage, UploadFailure
from ..validate import format_duration
from .documents import Current
from .markers import announced, rollback_targets, stale_records
from .store import ReleaseStore, require_prefix

#: Without ``--max-deletes``, refuse to delete more than this share of the objects.
DEFAULT_LIMIT_SHARE = 0.25

#: The shortest ``--grace`` accepted without ``--force``. Longer than any deploy takes
#: from its upload to its release, so an object a running deploy just stored is
#: never a candidate; and HTML cached for less than this still finds its assets.
MIN_GRACE = timedelta(hours=1)

#: Prune starts no delete request later than this after writing its marker (a deploy
#: or rollback waits while one younger than :data:`~.markers.PRUNE_WINDOW` is listed).
PRUNE_SEND_DEADLINE = timedelta(minutes=2)

#: Keys per delete call from prune (the S3 maximum per DeleteObjects request).
DELETE_CHUNK = 1000



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

    Release objects, and fingerprinted names (and their ``.br``/``.gz`` siblings) under
    ``<prefix>/`` outside ``releases/`` and outside any nested folder that holds its own
    manifest (another prefix's deploy).
    """
    require_prefix(prefix)
    keys = list(listing)
    head, releases = prefix + "/", releases_prefix(prefix) + "/"
    nested = {key[:-len(MANIFEST_NAME)] for key in keys
              if key.endswith("/" + MANIFEST_NAME) and key != manifest_key(prefix)}
    return [key for key in keys if release_id_of(key, prefix) or (
        key.startswith(head) and not key.startswith(releases)
        and is_hashed_name(identity_key(key).rpartition("/")[2])
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
    stale = stale_records(listing, store.prefix, now or datetime.now(UTC))
    with announced(store, stale=stale) as started:
        # The final check comes after the marker is stored: see the module docstring.
        spared = _spared_at_final_check(store, set(ids), current)
        keys = [key for key in plan.candidates if key not in spared]
        outcome = _delete_in_time(store.storage, keys, started)
    return PruneResult(plan, outcome, dry_run)


def check_grace(grace: timedelta, *, force: bool) -> None:
    if grace < MIN_GRACE and not force:
        raise ConfigError(
            f"--grace {format_duration(grace)} is shorter than the floor of "
            f"{format_duration(MIN_GRACE)}: a "
            "deploy running now, or a page cached a moment ago, could lose objects it needs; "
            "use a longer --grace, or --force if no deploy can be running"
        )


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


def _spared_at_final_check(
    store: ReleaseStore, known: set[str], current: Current
) -> set[str]:
    """Keys that became needed since the listing: named by releases written meanwhile, by
    the target of a rollback under way (and its release object), or by the current
    manifest if it moved. ``releases/`` is listed before the current manifest is read, so
    a rollback whose intent is already gone has already switched (see :mod:`.markers`)."""
    listing = store.list_releases()
    ids = set(store.release_ids(listing))
    targets = rollback_targets(listing, store.prefix) & ids
    now = store.read_current()
    docs = list(store.read_releases((ids - known) | targets).values())
    spared = {store.release_key(rid) for rid in targets}
    if now.data != current.data and now.doc is not None:
        docs.append(now.doc)
        if now.release_id:
            spared.add(store.release_key(now.release_id))
    return spared | referenced_keys(docs)
