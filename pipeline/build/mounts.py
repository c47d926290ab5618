"""Several folders deployed as one: each mounted at the URL path the app serves it at.

A Flask app serves its own static folder at ``static_url_path`` (``/static``) and each
blueprint's at the URL of its ``<name>.static`` rule (``/admin/static``). One manifest
holds them all: the app's files keep their plain logical paths (``img/cat.jpg``, as a
folder deploy always named them) and a blueprint's files sit under its URL path without
the leading slash (``admin/static/css/admin.css``), the name ``url_for('admin.static',
filename='css/admin.css')`` looks up.

The rest of the deploy works on logical paths only, so fingerprinting, CSS rewriting,
variants, releases and early uploads are unchanged. Two things depend on the mounts:

* the walk (:meth:`Mounts.scan`): each folder is walked with its own path-safety root,
  so a symlink in a blueprint's folder cannot reach outside that folder either;
* CSS references (:class:`UrlRoots`): a root-absolute ``/admin/static/x.png`` names the
  blueprint's file, and a relative ``../`` never climbs out of the folder it starts in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..localfs import Scan, check_hard_links, scan_files
from ..pathfilter import PathFilter
from ..validate import DEFAULT_STATIC_URL_PATH, validate_static_url_path
from .gitindex import clean_blob_ids


@dataclass(frozen=True)
class Mount:
    """One folder and the URL path its files are served at.

    ``logical_prefix`` is what its files' manifest names start with: ``""`` for the
    app's own folder, ``"admin/static/"`` for a blueprint served at ``/admin/static``.
    ``label`` says whose folder it is, for messages.
    """

    folder: Path
    url_path: str
    logical_prefix: str = ""
    label: str = "the static folder"

    @classmethod
    def blueprint(cls, name: str, folder: Path, url_path: str) -> Mount:
        """A blueprint's folder: its files are named by the URL path they are served at."""
        url_path = validate_static_url_path(url_path)
        prefix = url_path.strip("/") + "/" if url_path != "/" else ""
        return cls(folder, url_path, prefix, f"blueprint {name!r} ({folder})")


@dataclass(frozen=True)
class UrlRoots:
    """Where URLs land among logical paths: ``(url prefix, logical prefix)`` pairs.

    ``/static/`` -> ``""`` for a folder deploy; one more pair per blueprint folder. A
    reference resolves inside the longest matching root and may not climb above it.
    """

    roots: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, value: str | UrlRoots | None) -> UrlRoots:
        """Roots from Flask's ``static_url_path`` (``None``: no root-absolute URL is ours)."""
        if isinstance(value, UrlRoots):
            return value
        if value is None:
            return cls()
        return cls(((validate_static_url_path(value).rstrip("/") + "/", ""),))

    def for_url(self, path: str) -> tuple[str, str] | None:
        """``(logical prefix, rest of the path)`` of a root-absolute URL path, or ``None``."""
        best: tuple[str, str] | None = None
        for url_prefix, logical in self.roots:
            if path.startswith(url_prefix) and (best is None or len(url_prefix) > len(best[0])):
                best = (url_prefix, logical)
        return None if best is None else (best[1], path[len(best[0]):])

    def base_of(self, logical_path: str) -> str:
        """The logical prefix of the folder a logical path belongs to (``""``: the app's)."""
        return max((logical for _, logical in self.roots if logical_path.startswith(logical)),
                   key=len, default="")


@dataclass(frozen=True)
class Mounts:
    """The folders of one deploy; the first is the app's own (or the only one)."""

    items: tuple[Mount, ...]

    @classmethod
    def single(cls, folder: Path, url_path: str = DEFAULT_STATIC_URL_PATH) -> Mounts:
        """A plain folder deploy: its files keep their paths relative to the folder."""
        return cls((Mount(folder, validate_static_url_path(url_path)),))

    @classmethod
    def of(cls, main: Mount, extra: Iterable[Mount]) -> Mounts:
        """The app's folder plus blueprint folders, refusing two that claim one URL path.

        A blueprint folder inside the app's folder is deployed with it already, under its
        path there (:func:`pipeline.flaskext.mounts.blueprint_prefix` looks it up the same
        way); any other is its own mount, even inside another blueprint's folder.
        """
        mounts = [main]
        for mount in extra:
            if _inside(mount.folder, main.folder):
                continue
            for other in mounts:
                if other.url_path == mount.url_path or (
                        other.logical_prefix == mount.logical_prefix):
                    raise ConfigError(
                        f"{other.label} and {mount.label} are both served at "
                        f"{mount.url_path!r}: Flask serves only one of them there; give one "
                        "a different static_url_path or url_prefix")
            mounts.append(mount)
        return cls(tuple(mounts))

    @property
    def main(self) -> Mount:
        return self.items[0]

    @property
    def url_roots(self) -> UrlRoots:
        return UrlRoots(tuple((m.url_path.rstrip("/") + "/", m.logical_prefix)
                              for m in self.items))

    @property
    def folders(self) -> Mapping[str, Path]:
        """Logical prefix -> folder (for git's blob ids and messages)."""
        return {m.logical_prefix: m.folder for m in self.items}

    def scan(self, filters: PathFilter | None = None, *, allow_hard_links: bool = False
             ) -> Scan:
        """Walk every folder; a file must belong to the folder its name says it is in.
        Hard links are checked over all folders at once (a link between two is fine)."""
        if len(self.items) == 1 and not self.main.logical_prefix:  # the folder deploy
            return scan_files(self.main.folder, filters, allow_hard_links=allow_hard_links)
        merged = Scan()
        roots = self.url_roots
        for mount in self.items:
            scan = scan_files(mount.folder, filters, prefix=mount.logical_prefix,
                              allow_hard_links=True)
            for identity, (count, linked) in scan.linked.items():
                merged.linked.setdefault(identity, (count, []))[1].extend(linked)
            for item in scan.files:
                if roots.base_of(item.logical_path) != mount.logical_prefix:
                    owner = next(m for m in self.items
                                 if m.logical_prefix == roots.base_of(item.logical_path))
                    raise ConfigError(
                        f"{item.logical_path!r} of {mount.label} would take the place of "
                        f"{owner.label}'s files (both under {owner.logical_prefix!r}): rename "
                        "the folder or give the blueprint another URL path")
            merged.files += scan.files
            merged.ignored += scan.ignored
        if not allow_hard_links:
            check_hard_links(merged)
        merged.files.sort(key=lambda item: item.logical_path)
        return merged


def _inside(folder: Path, other: Path) -> bool:
    real, container = folder.resolve(), other.resolve()
    return real == container or real.is_relative_to(container)


def git_blob_ids(mounts: Mounts) -> dict[str, str]:
    """Git's blob ids of every folder's clean files, by logical path (see
    :func:`pipeline.build.gitindex.clean_blob_ids`); a folder outside a work tree (an
    installed extension's) has none, so its files are always read."""
    blobs: dict[str, str] = {}
    for mount in mounts.items:
        found = clean_blob_ids(mount.folder)
        blobs.update((mount.logical_prefix + path, blob) for path, blob in found.items())
    return blobs
