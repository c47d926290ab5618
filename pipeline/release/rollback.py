"""``rollback [ID]``: make an earlier release current again, copying and deleting nothing.

The target's objects are checked against one listing first (presence, size and
recorded ETag), because a rollback to a release whose objects were pruned would
break every page. The switch itself is one conditional PUT of the release's own
bytes over the current manifest: if another deploy or rollback moved it since it
was read, nothing is changed and the operator is told (no retry: the request was
made against a state that no longer holds).

Racing a prune: the rollback first stores an intent naming its target (a prune's final
check spares that release), then waits out any live prune marker and only then lists
the objects it checks, so a prune that checked before the intent existed has finished
deleting by the time of the listing (:mod:`pipeline.release.markers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeployError
from ..releasedoc import ReleaseDoc
from .documents import Current
from .markers import listing_after_prunes, rollback_intent
from .store import ReleaseStore
from .verify import listing_problems, unique_entries, variant_problems


@dataclass(frozen=True)
class RollbackResult:
    doc: ReleaseDoc
    previous: str | None
    changed: bool


def rollback(store: ReleaseStore, *, release_id: str | None = None,
             unsafe_no_conditional_writes: bool = False) -> RollbackResult:
    """Make ``release_id`` (default: the one before the current) current if its objects
    are all there; raise :class:`DeployError` if not, :class:`ConflictError` if the
    current manifest moved meanwhile."""
    store.require_conditional_writes(unsafe=unsafe_no_conditional_writes)
    current = store.read_current()
    target = release_id or previous_release(store.release_ids(store.list_releases()), current)
    doc = store.read_release(target)
    if current.data == doc.to_json():
        return RollbackResult(doc, current.release_id, changed=False)
    with rollback_intent(store, target):
        _check_objects(store, doc)
        store.point_current(doc, expected=current, retry=False)
    return RollbackResult(doc, current.release_id, changed=True)


def _check_objects(store: ReleaseStore, doc: ReleaseDoc) -> None:
    """Every object of ``doc`` present with its size and ETag, in a listing taken when no
    prune is deleting (variants included: a page asks for them too)."""
    entries = unique_entries(doc)
    variants = [v.key for entry in doc.manifest.files.values() for v in entry.variants]
    listing = listing_after_prunes(store, [*entries, *variants])
    problems = list(listing_problems(entries, listing, doc.etags))
    problems += variant_problems(doc, listing)
    if problems:
        target = doc.release_id
        shown = "; ".join(p.describe() for p in problems[:3])
        raise DeployError(
            f"release {target} cannot be made current: {len(problems)} of its objects are "
            f"missing or wrong ({shown}); run `cdn-deploy verify --release {target} --repair` "
            "or pick another release"
        )


def previous_release(ids: list[str], current: Current) -> str:
    """The release just before the current one (the newest, if the current is unknown)."""
    now = current.release_id
    older = [rid for rid in ids if rid < now] if now in ids else ids
    if not older:
        raise DeployError(
            "there is no earlier release to roll back to"
            + (f" (the current one, {now}, is the oldest)" if now else "")
            + "; see `cdn-deploy releases`"
        )
    return older[-1]
