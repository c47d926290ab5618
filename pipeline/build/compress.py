"""Precompressed representations of one file: pure functions of bytes, no I/O.

Fingerprinted files never change, so each is compressed once, at maximum effort
(brotli quality 11, gzip level 9), instead of by a CDN on every cache fill at the
effort it can afford per request. A representation is kept only if it is at most
95% of the identity size (whitenoise's rule): a smaller saving is not worth a second
object, a request that must pick it, and a decoder's work.

The bytes are deterministic (gzip with mtime 0 and no file name in the header; brotli
has neither), so the same input gives the same sibling on every machine and a
re-deploy never sees a "changed" sibling.

brotli is an optional extra (``[compress]``); without it only gzip is produced
(:func:`brotli_available` says so, the deploy reports it once).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from ..media_types import content_type_for, is_compressible

#: Content-Encoding tokens in the order a client that accepts both gets them (smallest first).
ENCODINGS = ("br", "gzip")
BROTLI_QUALITY = 11
GZIP_LEVEL = 9
#: Keep a representation only if ``len(compressed) * 100 <= len(identity) * KEEP_PERCENT``.
KEEP_PERCENT = 95


@dataclass(frozen=True)
class Encoded:
    """One kept representation: its ``Content-Encoding`` token and bytes."""

    encoding: str
    data: bytes


@cache
def _brotli() -> ModuleType | None:
    """The ``brotli`` module, or ``None`` when the ``[compress]`` extra is not installed."""
    try:
        import brotli  # the extra; gzip needs nothing
    except ImportError:
        return None
    module: ModuleType = brotli
    return module


def brotli_available() -> bool:
    """Whether brotli siblings can be produced on this install."""
    return _brotli() is not None


def available_encodings() -> tuple[str, ...]:
    """The encodings this install can produce, in :data:`ENCODINGS` order."""
    return tuple(e for e in ENCODINGS if e != "br" or brotli_available())


def gzip_bytes(data: bytes) -> bytes:
    """gzip at level 9 with mtime 0 (``gzip.compress`` writes no file name): deterministic."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def brotli_bytes(data: bytes) -> bytes:
    """brotli at quality 11 (raises :class:`RuntimeError` when brotli is not installed)."""
    module = _brotli()
    if module is None:
        raise RuntimeError("brotli is not installed")
    result: bytes = module.compress(data, quality=BROTLI_QUALITY)
    return result


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"br": brotli_bytes, "gzip": gzip_bytes}


def worth_keeping(*, identity_size: int, compressed_size: int) -> bool:
    """The 95% rule, in integers (no float rounding at the edge)."""
    return compressed_size * 100 <= identity_size * KEEP_PERCENT


def incompressible(data: bytes) -> bool:
    """Whether the fastest pass (brotli quality 0, else zlib level 1) cannot shrink ``data``.

    Such bytes (random, or compressed already: a PNG saved as ``.svg``) would cost brotli 11
    about 0.4 s a megabyte to learn the same; brotli 0 takes a few milliseconds. Bytes it
    shrinks by any amount still get the full encoders and the 95% rule.
    """
    module = _brotli()
    fast: bytes = module.compress(data, quality=0) if module else zlib.compress(data, 1)
    return len(fast) >= len(data)


def compressible(path: str) -> bool:
    """Whether the file at ``path`` gets siblings, from its type (``media_types``)."""
    return is_compressible(content_type_for(path))


def encode(data: bytes, *, encodings: tuple[str, ...] | None = None) -> tuple[Encoded, ...]:
    """The representations of ``data`` worth keeping, in ``encodings`` order.

    ``encodings`` defaults to :func:`available_encodings`; the caller decides by type
    (:func:`compressible`) and may ask for only the ones its target lacks.
    """
    wanted = available_encodings() if encodings is None else encodings
    if wanted and incompressible(data):
        return ()
    kept = []
    for encoding in wanted:
        compressed = _ENCODERS[encoding](data)
        if worth_keeping(identity_size=len(data), compressed_size=len(compressed)):
            kept.append(Encoded(encoding=encoding, data=compressed))
    return tuple(kept)
