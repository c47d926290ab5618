"""Vite's build manifest (``.vite/manifest.json``): its chunks, and the closure of an entry.

Vite names what it builds by content (``assets/main-BRBmoGS9.js``) and writes, with
``build.manifest: true``, one object per chunk::

    {"src/main.ts": {"file": "assets/main-BRBmoGS9.js", "isEntry": true,
                     "imports": ["_shared-B7PI925R.js"], "dynamicImports": ["src/lazy.ts"],
                     "css": ["assets/main-ChJ_j-JJ.css"], "assets": ["assets/logo-Dx9.svg"]}}

``imports``/``dynamicImports`` name other chunks by their key; ``file``, ``css`` and
``assets`` are paths in Vite's output folder. A deploy records the chunks in our manifest
(its ``vite`` member, same shape) with those paths made logical paths (the output folder's
place in the static folder in front), so an app that reads only our manifest can write an
entry's tags (:meth:`ViteManifest.closure`). A leaf: parsing and the closure only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ManifestError
from .keyrule import key_problem

#: The chunk fields kept, as Vite spells them; the others (``name``, ``src``, ...) are not
#: needed to write tags, and ``src`` would only add source paths to a public document.
_LISTS = {"imports": "imports", "dynamicImports": "dynamic_imports", "css": "css",
          "assets": "assets"}


@dataclass(frozen=True)
class ViteChunk:
    """One chunk: its output file and what it needs (logical paths; chunk keys for imports)."""

    file: str
    is_entry: bool = False
    imports: tuple[str, ...] = ()
    dynamic_imports: tuple[str, ...] = ()
    css: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()

    def outputs(self) -> Iterator[str]:
        """Every output file this chunk names itself."""
        yield self.file
        yield from self.css
        yield from self.assets


@dataclass(frozen=True)
class Closure:
    """What a page needs for one entry: its script, the modules it imports statically
    (transitively, dependencies first, as Vite's backend-integration guide orders them),
    and every stylesheet of those chunks (each once)."""

    script: str
    preloads: tuple[str, ...]
    css: tuple[str, ...]


@dataclass(frozen=True)
class ViteManifest:
    """Chunks by key (``src/main.ts``, ``_shared-B7PI925R.js``)."""

    chunks: Mapping[str, ViteChunk]

    def outputs(self) -> frozenset[str]:
        """Every logical path a chunk names (scripts, stylesheets, assets)."""
        return frozenset(path for chunk in self.chunks.values() for path in chunk.outputs())

    def closure(self, name: str) -> Closure | None:
        """The tags' contents for chunk ``name``, or ``None`` when there is no such chunk.

        ``dynamicImports`` are left out: they load on demand, and preloading them would
        fetch code the page may never run.
        """
        entry = self.chunks.get(name)
        if entry is None:
            return None
        imported = [self.chunks[key] for key in self._static_order(name) if key != name]
        css: dict[str, None] = dict.fromkeys(entry.css)
        for chunk in imported:
            css.update(dict.fromkeys(chunk.css))
        return Closure(entry.file, tuple(dict.fromkeys(c.file for c in imported)), tuple(css))

    def _static_order(self, name: str) -> list[str]:
        """Chunks reachable from ``name`` by static imports, each after its own imports (a
        cycle ends at a chunk seen before). A loop with an explicit stack, not recursion: a
        forged manifest's chain of 10,000 imports must not overflow the interpreter's stack;
        the work is one visit per chunk."""
        order: list[str] = []
        seen = {name}
        stack = [(name, iter(self.chunks[name].imports))]
        while stack:
            key, children = stack[-1]
            child = next((c for c in children if c not in seen), None)
            if child is None:
                order.append(key)
                stack.pop()
                continue
            seen.add(child)
            stack.append((child, iter(self.chunks[child].imports)))
        return order

    def document(self) -> dict[str, dict[str, Any]]:
        """The ``vite`` member of our manifest (sorted, only non-empty fields)."""
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(self.chunks):
            chunk = self.chunks[key]
            item: dict[str, Any] = {"file": chunk.file}
            if chunk.is_entry:
                item["isEntry"] = True
            for field, attribute in _LISTS.items():
                if values := getattr(chunk, attribute):
                    item[field] = list(values)
            out[key] = item
        return out

    @classmethod
    def from_document(cls, document: Any, *, base: str = "", source: str) -> ViteManifest:
        """Chunks of Vite's manifest (``base``: its output folder's logical path, ending
        in ``/`` or empty) or of our ``vite`` member (``base`` empty). Refuses paths an app
        would refuse (:func:`pipeline.keyrule.key_problem`) and imports of unknown chunks."""
        if not isinstance(document, dict):
            raise ManifestError(f"{source} is not a JSON object of chunks")
        chunks = {}
        for key, raw in document.items():
            try:
                chunks[str(key)] = _chunk(raw, base)
            except (KeyError, TypeError, ValueError) as exc:
                raise ManifestError(f"{source}: chunk {key!r} is malformed ({exc})") from exc
        for key, chunk in chunks.items():
            unknown = [name for name in (*chunk.imports, *chunk.dynamic_imports)
                       if name not in chunks]
            if unknown:
                raise ManifestError(f"{source}: chunk {key!r} imports unknown chunk "
                                    f"{unknown[0]!r}")
        return cls(chunks)


def _chunk(raw: Any, base: str) -> ViteChunk:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    lists = {attribute: _strings(raw.get(field) or [], field)
             for field, attribute in _LISTS.items()}
    for attribute in ("css", "assets"):
        lists[attribute] = tuple(_path(base, p) for p in lists[attribute])
    return ViteChunk(_path(base, _strings([raw["file"]], "file")[0]),
                     raw.get("isEntry") is True, **lists)


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{field} must be a list of strings")
    return tuple(value)


def _path(base: str, path: str) -> str:
    """``path`` (relative to Vite's output folder) as a logical path, refused if it could
    name anything outside that folder."""
    logical = base + path
    if (problem := key_problem(logical)) is not None or key_problem(path) is not None:
        raise ValueError(f"path {path!r} {problem or 'is not a plain relative path'}")
    return logical
