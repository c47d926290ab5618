"""The manifest: logical path -> fingerprinted object, as deterministic JSON.

Format (version 1)::

    {"version": 1,
     "files": {"img/cat.jpg": {"key": "static/img/cat.<h>.jpg", "hash": "<sha256 hex>",
                               "size": 1234, "content_type": "image/jpeg"}}}

Version 2 adds, to each source image that has them, its intrinsic ``width`` and ``height``
(as displayed, after EXIF orientation) and its responsive ``variants``, each
``{"key", "width", "height", "content_type", "size"}`` (see :mod:`pipeline.build.variants`).
A manifest with no image fields is still written as version 1, so readers of version 1 keep
reading every deploy that does not use variants; this module reads both versions.

Version 3 adds, to an opaque source image that has variants, its optional ``placeholder``
(computed at deploy, :mod:`pipeline.build.variant_placeholder`), shown behind the image until
it loads: ``{"color": "#rrggbb", "preview": "data:image/webp;base64,..."}`` (the average colour,
and the image shrunk to at most 16x16 pixels, at most :data:`MAX_PREVIEW_CHARS` characters).
Both are validated strictly on reading, as they end up in pages' CSS. A manifest is written as
the lowest version that can express it: no placeholder, version 2 (or 1).

Version 3 also adds, to a compressible entry, ``encodings``: ``{"br": {"key", "size"},
"gzip": {"key", "size"}}``, its stored precompressed siblings (key: the entry's key plus
``.br``/``.gz``, see :func:`pipeline.keys.encoded_key`), each kept only when at most 95% of
the identity size; an empty object means "compressed, nothing worth keeping", so the next
deploy need not compress the file again (:mod:`pipeline.build.compress`). Without either
version-3 field, a manifest is still version 2 (or 1).

Keys are sorted and the output has no timestamps, so the same input gives the same
bytes on every machine and an unchanged deploy is recognisable by its manifest.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ManifestError
from .jsondoc import parse_document, whole_number
from .keyrule import key_problem
from .keys import ENCODING_SUFFIXES, encoded_key
from .localfs import display_name, write_atomic

if TYPE_CHECKING:  # loaded with a Vite build only (its dataclasses cost ~1 ms at import)
    from .vitemanifest import ViteManifest

#: The newest format written; :data:`READABLE_VERSIONS` are all read.
MANIFEST_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: Bounds of a stored object's ``size`` (S3's largest object is 5 TiB) and of an image's
#: ``width``/``height``: a number outside them was not written by a deploy.
MAX_OBJECT_SIZE = 5 * 1024**4
MAX_IMAGE_SIDE = 1 << 20
#: Bound of a placeholder's ``preview`` data URI (a 16x16 WebP is a few hundred characters).
MAX_PREVIEW_CHARS = 2048
_COLOR_RE = re.compile(r"#[0-9a-f]{6}")
#: Only base64 after a fixed head: the value goes into CSS ``url("...")`` unchanged.
_PREVIEW_RE = re.compile(r"data:image/webp;base64,[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True, slots=True)
class Variant:
    """One stored responsive variant of a source image (manifest version 2)."""

    key: str
    width: int
    height: int
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Placeholder:
    """What a page shows behind an image until it loads (manifest version 3): its average
    colour (``#rrggbb``) and a tiny blurred-to-be preview (a ``data:image/webp`` URI)."""

    color: str
    preview: str

    def __post_init__(self) -> None:
        if not _COLOR_RE.fullmatch(self.color):
            raise ValueError(f"placeholder color must be #rrggbb, got {self.color[:20]!r}")
        if len(self.preview) > MAX_PREVIEW_CHARS or not _PREVIEW_RE.fullmatch(self.preview):
            raise ValueError("placeholder preview must be a data:image/webp;base64 URI of at "
                             f"most {MAX_PREVIEW_CHARS} characters")

    @classmethod
    def from_json(cls, raw: Any) -> Placeholder:
        if not isinstance(raw, dict) or set(raw) != {"color", "preview"}:
            raise TypeError("placeholder must be an object with color and preview")
        if not isinstance(raw["color"], str) or not isinstance(raw["preview"], str):
            raise TypeError("placeholder color and preview must be strings")
        return cls(raw["color"], raw["preview"])

    def to_json(self) -> dict[str, str]:
        return {"color": self.color, "preview": self.preview}


@dataclass(frozen=True, slots=True)
class Sibling:
    """A stored precompressed representation of an entry (manifest version 3)."""

    encoding: str
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One deployed file: the object key it lives at and what is known of its bytes.

    Slots: a deploy of 100,000 files holds two manifests' worth, ~300 bytes less each.
    """

    key: str
    hash: str
    size: int
    content_type: str
    #: Subresource Integrity value (``sha384-...``) of the stored bytes, for CSS and JS.
    integrity: str | None = None
    #: Intrinsic (displayed) size of a raster image, when known (version 2).
    width: int | None = None
    height: int | None = None
    #: Responsive variants, narrowest first; modern formats before the fallback per width.
    variants: tuple[Variant, ...] = ()
    #: Shown behind the image until it loads (version 3); opaque images with variants only.
    placeholder: Placeholder | None = None
    #: Precompressed siblings, ``br`` before ``gzip`` (version 3); ``None``: never compressed
    #: (not a compressible type, or precompression off), ``()``: none worth keeping.
    encodings: tuple[Sibling, ...] | None = None

    @property
    def has_image_fields(self) -> bool:
        return self.width is not None or bool(self.variants)

    def sibling(self, encoding: str) -> Sibling | None:
        """The stored ``encoding`` representation, if one was kept."""
        return next((s for s in self.encodings or () if s.encoding == encoding), None)


class Summarised(Mapping[str, Entry]):
    """Entries whose total size and first path are known before they are loaded (a re-run
    answered from its record decodes its manifest only if a caller looks at it:
    :mod:`pipeline.release.tree_run`)."""

    total_bytes: int
    first: tuple[str, str] | None


@dataclass(frozen=True)
class Manifest:
    files: Mapping[str, Entry]
    #: The chunks of a Vite build among the files (optional ``vite`` member; see
    #: :mod:`pipeline.vitemanifest`), for tags naming an entry.
    vite: ViteManifest | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def get(self, logical_path: str) -> Entry | None:
        return self.files.get(logical_path)

    def object_keys(self) -> set[str]:
        """Every object key this manifest names: the files' and their variants'."""
        keys = {entry.key for entry in self.files.values()}
        keys.update(v.key for entry in self.files.values() for v in entry.variants)
        keys.update(s.key for entry in self.files.values() for s in entry.encodings or ())
        return keys

    @property
    def total_bytes(self) -> int:
        if isinstance(self.files, Summarised):
            return self.files.total_bytes
        return sum(entry.size for entry in self.files.values())

    def first(self) -> tuple[str, str] | None:
        """The first logical path (in path order) and its key: the summary's example."""
        if isinstance(self.files, Summarised):
            return self.files.first
        path = min(self.files, default=None)
        return None if path is None else (path, self.files[path].key)

    def to_json(self) -> bytes:
        return dump_json(self.json_document())

    def document(self) -> dict[str, Any]:
        """The JSON document :meth:`to_json` encodes, as plain dicts."""
        files = {name: _entry_json(self.files[name]) for name in sorted(self.files)}
        return {**self.json_document(), "files": files}

    def json_document(self) -> dict[str, Any]:
        """What :func:`dump_json` encodes (a release adds its fields to it); the entries are
        turned into JSON objects one at a time as they are encoded, never all at once."""
        document: dict[str, Any] = {"version": self.lowest_version(),
                                    "files": _EntryDocuments(self.files)}
        if self.vite is not None:  # an optional member: older readers ignore it
            document["vite"] = self.vite.document()
        return document

    def lowest_version(self) -> int:
        """The lowest format version that can express this manifest, so older readers keep
        reading every deploy that does not use the newer fields."""
        entries = self.files.values()
        if any(entry.placeholder is not None or entry.encodings is not None
               for entry in entries):
            return 3
        return 2 if any(entry.has_image_fields for entry in entries) else 1

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "manifest") -> Manifest:
        return cls.from_document(parse_json(data, source=source), source=source)

    @classmethod
    def from_document(cls, document: Any, *, source: str = "manifest") -> Manifest:
        """The manifest in an already parsed document (extra top-level fields are ignored)."""
        version = document.get("version") if isinstance(document, dict) else None
        if type(version) is not int or version not in READABLE_VERSIONS:
            *older, newest = map(str, READABLE_VERSIONS)
            raise ManifestError(f"{source} is not a version {', '.join(older)} or {newest} "
                                "manifest")
        raw_files = document.get("files")
        if not isinstance(raw_files, dict):
            raise ManifestError(f"{source} has no 'files' object")
        files: dict[str, Entry] = {}
        #: One string object per content type, not one per entry (100,000 entries: -7 MiB).
        types: dict[str, str] = {}
        for name, raw in raw_files.items():
            try:
                content_type = str(raw["content_type"])
                # Positional: keyword arguments made the frozen dataclass's __init__ 2x slower.
                entry = files[name] = Entry(
                    str(raw["key"]),
                    str(raw["hash"]),
                    whole_number(raw["size"], low=0, high=MAX_OBJECT_SIZE),
                    types.setdefault(content_type, content_type),
                    str(raw["integrity"]) if raw.get("integrity") else None,
                    **(_image_fields(raw) if version >= 2 and _has_image_fields(raw) else {}),
                    **(_encodings(raw, entry_key=str(raw["key"]))
                       if version >= 3 and "encodings" in raw else {}),
                )
                if version >= 3 and "placeholder" in raw:  # rare: not worth a keyword per entry
                    entry = files[name] = replace(
                        entry, placeholder=Placeholder.from_json(raw["placeholder"]))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ManifestError(f"{source}: entry {name!r} is malformed ({exc})") from exc
            _check_keys(entry, name, source)
        vite = document.get("vite")
        if vite is None:
            return cls(files)
        from .vitemanifest import ViteManifest

        return cls(files, ViteManifest.from_document(vite, source=f"{source} (vite)"))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {str(path)!r}: {exc.strerror}") from exc
        return cls.from_json(data, source=f"manifest {str(path)!r}")

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write leaves the previous manifest intact."""
        try:
            write_atomic(path, self.to_json())
        except OSError as exc:
            raise ManifestError(f"cannot write manifest {str(path)!r}: {exc.strerror}") from exc


def _check_keys(entry: Entry, name: str, source: str) -> None:
    for key in (entry.key, *(v.key for v in entry.variants)) if entry.variants else (entry.key,):
        problem = unsafe_key_reason(key)
        if problem is not None:
            raise ManifestError(f"{source}: entry {name!r} has an unsafe key "
                                f"{display_name(key)} (it {problem}); deploy again")


def unsafe_key_reason(key: str) -> str | None:
    """Why ``key`` could not be a deployed object's key, or ``None`` if it is fine.

    The rule is :func:`pipeline.keyrule.key_problem`, the same one the deploy applies to file
    names before it uploads anything: a manifest with such a key was edited or forged.
    """
    return key_problem(key)


#: Compact and sorted; without ``indent`` the json module uses its C encoder, which is
#: ~10x faster than the indenting Python one (a 2,000-file manifest: 8 ms, not 85 ms).
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def dump_json(document: Mapping[str, Any]) -> bytes:
    """The canonical encoding: sorted keys, UTF-8, a final newline, one entry per line.

    Top-level objects (``files``, ``etags``) get one member per line, so the file stays
    readable and diffs well, while every entry is encoded by the fast C encoder.
    """
    out = io.BytesIO()  # getvalue() hands over its buffer: the document is held once
    for chunk in iter_json(document):
        out.write(chunk)
    return out.getvalue()


def iter_json(document: Mapping[str, Any]) -> Iterator[bytes]:
    """:func:`dump_json`'s bytes piece by piece (a digest of 100,000 entries needs no copy)."""
    yield b"{\n"
    separator = ""
    for key in sorted(document):
        value = document[key]
        head = f"{separator}  {_ENCODER.encode(key)}: "
        separator = ",\n"
        if isinstance(value, Mapping) and value:
            yield (head + "{\n").encode()
            member_separator = ""
            for name in sorted(value):
                yield (f"{member_separator}    {_ENCODER.encode(name)}: "
                       f"{_ENCODER.encode(value[name])}").encode()
                member_separator = ",\n"
            yield b"\n  }"
        else:  # a scalar, or an empty object ({}, or an empty _EntryDocuments)
            yield (head + _ENCODER.encode({} if isinstance(value, Mapping) else value)).encode()
    yield b"\n}\n"


class _EntryDocuments(Mapping[str, dict[str, object]]):
    """Entries as JSON objects, made on access, so encoding a manifest never holds them all."""

    def __init__(self, files: Mapping[str, Entry]) -> None:
        self._files = files

    def __getitem__(self, name: str) -> dict[str, object]:
        return _entry_json(self._files[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def parse_json(data: bytes | str, *, source: str) -> Any:
    """The one parser of every manifest and release document (:mod:`pipeline.jsondoc`):
    any failure, however odd the input, is a :class:`ManifestError`."""
    return parse_document(data, source=source)


def _has_image_fields(raw: Mapping[str, Any]) -> bool:
    """Whether :func:`_image_fields` would find anything (most entries are not images)."""
    return raw.get("width") is not None or bool(raw.get("variants"))


def _image_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``width``, ``height`` and ``variants`` of a version 2 entry (all optional)."""
    fields: dict[str, Any] = {}
    if raw.get("width") is not None:
        fields["width"], fields["height"] = _positive(raw["width"]), _positive(raw["height"])
    variants = raw.get("variants") or []
    if not isinstance(variants, list):
        raise TypeError("variants must be a list")
    fields["variants"] = tuple(
        Variant(key=str(v["key"]), width=_positive(v["width"]), height=_positive(v["height"]),
                content_type=str(v["content_type"]),
                size=whole_number(v["size"], low=0, high=MAX_OBJECT_SIZE))
        for v in variants)
    return fields


def _encodings(raw: Mapping[str, Any], *, entry_key: str) -> dict[str, Any]:
    """``encodings`` of a version 3 entry: each sibling's key must be the entry's key plus the
    encoding's suffix (a document naming any other key was not written by a deploy)."""
    encodings = raw["encodings"]
    if not isinstance(encodings, dict):
        raise TypeError("encodings must be an object")
    siblings = []
    for encoding in ENCODING_SUFFIXES:  # the order a client that accepts both prefers
        if encoding not in encodings:
            continue
        sibling = encodings[encoding]
        if str(sibling["key"]) != encoded_key(entry_key, encoding):
            raise ValueError(f"the {encoding} sibling's key is not the entry's key "
                             f"plus {ENCODING_SUFFIXES[encoding]!r}")
        siblings.append(Sibling(encoding, encoded_key(entry_key, encoding),
                                whole_number(sibling["size"], low=1, high=MAX_OBJECT_SIZE)))
    unknown = set(encodings) - set(ENCODING_SUFFIXES)
    if unknown:
        raise ValueError(f"unknown encoding {sorted(unknown)[0]!r}")
    return {"encodings": tuple(siblings)}


def _positive(value: Any) -> int:
    return whole_number(value, low=1, high=MAX_IMAGE_SIDE)


def _entry_json(entry: Entry) -> dict[str, object]:
    # Spelled out rather than dataclasses.asdict, whose deep copy costs 10x more per entry.
    document: dict[str, object] = {"key": entry.key, "hash": entry.hash, "size": entry.size,
                                   "content_type": entry.content_type}
    if entry.integrity is not None:
        document["integrity"] = entry.integrity
    if entry.width is not None:
        document["width"], document["height"] = entry.width, entry.height
    if entry.variants:
        document["variants"] = [{"key": v.key, "width": v.width, "height": v.height,
                                 "content_type": v.content_type, "size": v.size}
                                for v in entry.variants]
    if entry.placeholder is not None:
        document["placeholder"] = entry.placeholder.to_json()
    if entry.encodings is not None:
        document["encodings"] = {s.encoding: {"key": s.key, "size": s.size}
                                 for s in entry.encodings}
    return document
