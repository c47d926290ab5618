"""A Vite build among the static files: found by its manifest, deployed under Vite's names.

Vite already names its chunks, stylesheets and imported assets by content
(``assets/main-BRBmoGS9.js``) and its chunks import each other by those names
(``import "./shared-B7PI925R.js"``), its stylesheets ``url()`` them. A second fingerprint
would break every such reference, and rewriting them would change bytes Vite already named.
So the files Vite's manifest lists keep their names as keys (the static prefix plus the path
as Vite wrote it), are stored byte for byte (never parsed for references), and still get
their SHA-256 (and SRI value) in our manifest, so ``verify`` checks them like any object.
Everything else in the output folder (``public/`` copies such as ``favicon.svg``) is
fingerprinted as usual.

Found by the manifest's presence: ``<folder>/.vite/manifest.json`` at the root of a deployed
folder or of a folder directly inside it (``static/dist/``), or the file the
``vite-manifest`` setting names. The manifest itself is a dotfile and never uploaded: it
lists source paths; our manifest records the chunks an app needs (:mod:`pipeline.vitemanifest`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, ManifestError
from ..jsondoc import parse_document
from ..localfs import display_name
from .mounts import Mounts

if TYPE_CHECKING:  # loaded when a Vite manifest is found: most deploys have none
    from ..vitemanifest import ViteManifest

#: Where ``build.manifest: true`` writes it, relative to Vite's output folder.
VITE_MANIFEST = Path(".vite") / "manifest.json"
#: A larger "manifest" is not Vite's (its manifests take ~200 bytes per chunk).
MAX_VITE_MANIFEST_BYTES = 16 * 1024 * 1024
#: Vite's ``[hash]`` (8 URL-safe base64 characters by default, longer when configured)
#: after a ``-`` or ``.`` at the end of the name, before the extension.
_VITE_HASHED = re.compile(r"[-.][A-Za-z0-9_-]{8,}(?:\.[^./]+)+$")


@dataclass(frozen=True)
class ViteOutput:
    """The Vite build of one deploy: its chunks and the files that keep their names."""

    manifest: ViteManifest
    keep: frozenset[str]


def find_vite(mounts: Mounts, *, present: Collection[str],
              manifest_path: Path | None = None) -> ViteOutput | None:
    """The Vite build among the deployed folders, or ``None``. ``present``: the logical
    paths being deployed; ``manifest_path``: the setting (``None``: look for it)."""
    found = ([_locate(mounts, manifest_path)] if manifest_path is not None
             else list(_candidates(mounts)))
    if not found:
        return None
    if len(found) > 1:
        raise ConfigError(
            f"found {len(found)} Vite manifests ({', '.join(str(p) for _, p in found)}): "
            "name the one to deploy with --vite-manifest")
    base, path = found[0]
    manifest = _read(path, base)
    return ViteOutput(manifest, keep_names(manifest, present))


def keep_names(manifest: ViteManifest, present: Collection[str]) -> frozenset[str]:
    """The deployed files Vite named by content, and their source maps.

    A listed file without a hash in its name (custom ``entryFileNames``) is refused: under
    its own name it would be cached for a year and never change; with our fingerprint
    added, Vite's chunks importing it would ask for a name that does not exist.
    """
    keep = set()
    for path in sorted(manifest.outputs()):
        if path not in present:
            continue  # --exclude'd: what the app cannot find is reported there
        if not _VITE_HASHED.search(path.rpartition("/")[2]):
            raise ConfigError(
                f"Vite's manifest lists {display_name(path)}, whose name has no content hash: "
                "keep [hash] in Vite's output file names (build.rollupOptions.output)")
        keep.add(path)
        if path + ".map" in present:
            keep.add(path + ".map")  # named after its file; the file's comment names it
    return frozenset(keep)


def _candidates(mounts: Mounts) -> Iterator[tuple[str, Path]]:
    """``(logical prefix of the output folder, manifest)`` for every manifest found at a
    folder's root or one level down."""
    for mount in mounts.items:
        if (mount.folder / VITE_MANIFEST).is_file():
            yield mount.logical_prefix, mount.folder / VITE_MANIFEST
        try:
            children = sorted(os.scandir(mount.folder), key=lambda e: e.name)
        except OSError:
            continue  # the walk reports an unreadable folder
        for child in children:
            if child.is_dir() and not child.name.startswith(".") \
                    and (Path(child.path) / VITE_MANIFEST).is_file():
                yield f"{mount.logical_prefix}{child.name}/", Path(child.path) / VITE_MANIFEST


def _locate(mounts: Mounts, manifest_path: Path) -> tuple[str, Path]:
    """The output folder's logical prefix for the configured manifest: the folder holding
    ``.vite/`` (or the manifest itself), which must be inside a deployed folder."""
    if not manifest_path.is_file():
        raise ConfigError(f"--vite-manifest {str(manifest_path)!r} is not a file: build with "
                          "build.manifest: true, or fix the path")
    out_dir = manifest_path.resolve().parent
    if out_dir.name == ".vite":
        out_dir = out_dir.parent
    for mount in mounts.items:
        root = mount.folder.resolve()
        if out_dir == root or out_dir.is_relative_to(root):
            relative = out_dir.relative_to(root).as_posix()
            prefix = "" if relative == "." else relative + "/"
            return mount.logical_prefix + prefix, manifest_path
    raise ConfigError(f"--vite-manifest {str(manifest_path)!r} is not inside a deployed "
                      f"folder ({', '.join(str(m.folder) for m in mounts.items)}): set Vite's "
                      "build.outDir inside the static folder")


def _read(path: Path, base: str) -> ViteManifest:
    source = f"Vite manifest {str(path)!r}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_VITE_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from exc
    if len(data) > MAX_VITE_MANIFEST_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_VITE_MANIFEST_BYTES} bytes")
    from ..vitemanifest import ViteManifest

    try:
        return ViteManifest.from_document(parse_document(data, source=source),
                                          base=base, source=source)
    except ManifestError as exc:
        raise ConfigError(f"{exc}: build again with Vite (build.manifest: true)") from exc



def local_vite_manifest(folder: Path) -> ViteManifest | None:
    """The Vite build in ``folder`` (an app's static folder with the CDN off), with logical
    paths as a deploy of that folder would name them; ``None`` when there is none."""
    found = list(_candidates(Mounts.single(folder)))
    return _read(found[0][1], found[0][0]) if len(found) == 1 else None
