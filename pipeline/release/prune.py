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

Racing a deploy: just before deleting, the release listing and the current manifest
are read again, and keys named by any release that appeared meanwhile are spared.
A deploy that reuses an old, unreferenced object and has not yet written its
release object at that moment could still lose it; verify finds that and
``verify --repair`` fixes it. Run prune from the same pipeline as deploys to rule it out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import DeployError
from ..manifest import manifest_key
from ..storage.base import DeleteOutcome, Storage
from .documents import (
    Current,
    ReleaseDoc,
    read_current,
    read_releases,
    release_ids,
    release_key,
    releases_prefix,
)
from .plan import RemoteObject

#: Without ``--max-deletes``, refuse to delete more than this share of the objects.
DEFAULT_LIMIT_SHARE = 0.25


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
    unreferenced = [key for key in listing if key not in protected]
    old = [key for key in unreferenced if _older(listing[key], cutoff)]
    release_objects = sorted(key for key in old if key.startswith(releases_prefix(prefix) + "/"))
    objects = sorted(set(old) - set(release_objects))
    limit = max_deletes if max_deletes is not None else math.floor(
        len(listing) * DEFAULT_LIMIT_SHARE)
    return PrunePlan(tuple(release_objects + objects), tuple(sorted(kept)), len(listing),
                     len(unreferenced) - len(old), limit)


def referenced_keys(docs: Iterable[ReleaseDoc]) -> set[str]:
    # Variants included: an image's variants live as long as a kept release names it.
    return {key for doc in docs for key in doc.manifest.object_keys()}


def _older(remote: RemoteObject, cutoff: datetime) -> bool:
    """Unknown age counts as young: never delete what cannot be dated."""
    return remote.last_modified is not None and remote.last_modified < cutoff


def prune(
    storage: Storage, prefix: str, *, keep: int, grace: timedelta, dry_run: bool = False,
    max_deletes: int | None = None, force: bool = False, now: datetime | None = None,
) -> PruneResult:
    listing = storage.list_keys(prefix)
    current = read_current(storage, prefix)
    if current.doc is None:
        raise DeployError(
            f"no readable manifest at {manifest_key(prefix)!r} in {storage.description}: "
            "refusing to prune a prefix with nothing published (check --prefix)"
        )
    ids = release_ids(listing, prefix)
    kept = kept_releases(storage, prefix, ids, current, keep)
    cutoff = (now or datetime.now(UTC)) - grace
    plan = plan_prune(listing, prefix, kept=kept, current=current, cutoff=cutoff,
                      max_deletes=max_deletes)
    if dry_run or not plan.candidates:
        return PruneResult(plan, None, dry_run)
    if plan.over_limit and not force:
        raise DeployError(
            f"refusing to delete {len(plan.candidates)} of {plan.total_objects} objects: more "
            f"than the safety limit of {plan.limit}; check --prefix and --keep with --dry-run, "
            "then raise --max-deletes or pass --force"
        )
    spared = _named_by_new_releases(storage, prefix, set(ids), current)
    keys = [key for key in plan.candidates if key not in spared]
    return PruneResult(plan, storage.delete_keys(keys), dry_run)


def kept_releases(
    storage: Storage, prefix: str, ids: list[str], current: Current, keep: int
) -> dict[str, ReleaseDoc]:
    """The newest ``keep`` releases plus the current one (after a rollback it may be older)."""
    wanted = set(ids[-keep:])
    if current.release_id in ids:
        wanted.add(current.release_id)
    return read_releases(storage, prefix, wanted)


def _named_by_new_releases(
    storage: Storage, prefix: str, known: set[str], current: Current
) -> set[str]:
    """Keys named by releases (or a current manifest) that appeared since the listing."""
    fresh = set(release_ids(storage.list_keys(releases_prefix(prefix)), prefix)) - known
    now = read_current(storage, prefix)
    docs = list(read_releases(storage, prefix, fresh).values())
    if now.data != current.data and now.doc is not None:
        docs.append(now.doc)
    return referenced_keys(docs)
