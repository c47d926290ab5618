"""The DPR cap: ``sizes``/``srcset`` that never make a screen denser than ``max_dpr`` fetch
more pixels than a ``max_dpr`` screen would.

How a browser picks from a ``w``-descriptor ``srcset``: it takes the slot width ``S`` from
``sizes`` (the first entry whose media condition matches; ``auto``: the laid-out width of a
lazy image), gives each candidate the density ``w / S`` and picks the candidate whose density
is nearest the device pixel ratio ``d`` (Chromium rounds at the geometric mean of two
neighbours). So the choice depends only on ``d * S`` against the listed widths, and a 3x
phone wants 1.5 times the width (2.25 times the pixels) of a 2x one, for no visible gain.

Two ways to cap it, both with resolution media queries (a ``sizes`` entry and a
``<source media>`` take any media condition, ``(min-resolution: 2.01dppx)`` included):

* :func:`capped_sizes` (eager images, and whatever a preload must match): before the given
  entries, the same entries again under ``(min-resolution: ...)`` with their length scaled by
  ``max_dpr / d_hi``: ``d * S * max_dpr / d_hi <= max_dpr * S`` for every ``d`` of the bucket.
* :func:`scaled_srcset` (lazy images with ``sizes="auto"``, where ``sizes`` cannot be
  scaled): a ``<source media="(min-resolution: ...)">`` whose descriptors claim each file is
  ``d_hi / max_dpr`` times wider than it is, which lowers every density by the same factor.

Buckets are ``(max_dpr, next integer]`` and then whole numbers up to 4 (for 2: ``(2, 3]`` and
``(3, 4]``), so 3x and 4x screens get exactly the 2x choice and a 2.625x one a bit less (1.75x:
the factor is chosen for the top of its bucket, so nothing in it goes over). Limits: a screen
above 4x is capped at 4x's factor (2.5x pixels at 5x); a browser without ``min-resolution``
(Safari before 16) matches no bucket and picks as before; the scaled length is what the browser
believes the slot to be, which only changes layout for an image with neither ``width`` and
``height`` attributes nor a CSS width (``picture()`` always sets the attributes when it lists
variants); zooming in raises ``d``, so a zoomed 2x page is capped too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: No bucket above this density: no common screen is denser.
_TOP = 4


@dataclass(frozen=True)
class Bucket:
    """Screens denser than ``above`` (and at most the next bucket's ``above``): their slot
    lengths are multiplied by ``factor`` (or their descriptors divided by it)."""

    above: float
    factor: float

    @property
    def media(self) -> str:
        # dppx compares exactly: a 3x screen is 3dppx, so "above 2" starts at 2.01.
        return f"(min-resolution: {self.above + 0.01:g}dppx)"


def buckets(max_dpr: float | None) -> tuple[Bucket, ...]:
    """The cap's buckets, densest first (first match wins in ``sizes`` and ``<source>``);
    none without a cap or with one at or above 4."""
    if max_dpr is None:
        return ()
    tops = [top for top in range(math.floor(max_dpr) + 1, _TOP + 1) if top > max_dpr]
    if not tops:
        return ()
    bottoms = [max_dpr, *tops[:-1]]
    # Rounded down, so the scaled slot never asks for more than the cap.
    return tuple(Bucket(above=low, factor=math.floor(max_dpr / top * 10_000) / 10_000)
                 for low, top in reversed(list(zip(bottoms, tops, strict=True))))


def split_sizes(sizes: str) -> list[tuple[str, str]] | None:
    """``sizes`` as ``(media condition or "", length)`` entries, or ``None`` when it cannot be
    read (it is then used as given, uncapped). Commas inside parentheses do not split."""
    entries, depth, start = [], 0, 0
    for index, char in enumerate(sizes + ","):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            entries.append(sizes[start:index].strip())
            start = index + 1
    parsed = []
    for entry in entries:
        split = _split_entry(entry)
        if split is None:
            return None
        parsed.append(split)
    return parsed


#: A trailing math function (``calc(...)``, ``min(...)``...) or a plain token.
_FUNCTION = re.compile(r"[A-Za-z-]+$")


def _split_entry(entry: str) -> tuple[str, str] | None:
    if not entry:
        return None
    if not entry.endswith(")"):
        condition, _, length = entry.rpartition(" ")
        return condition.strip(), length
    depth = 0
    for index in range(len(entry) - 1, -1, -1):
        depth += (entry[index] == ")") - (entry[index] == "(")
        if depth == 0:
            name = _FUNCTION.search(entry[:index])
            if name is None:
                return None  # a condition with no length after it: not ours to fix
            return entry[:name.start()].strip(), entry[name.start():]
    return None


def _guarded(bucket: Bucket, condition: str) -> str:
    if not condition:
        return bucket.media
    # "a or b" and "not a" must be one operand of "and".
    wrapped = f"({condition})" if re.search(r"\bor\b|^not\b", condition) else condition
    return f"{bucket.media} and {wrapped}"


def capped_sizes(sizes: str, caps: Sequence[Bucket]) -> str:
    """``sizes`` with the cap's entries in front (see the module docstring); as given when
    there is no cap, it cannot be read, or it is ``auto`` only."""
    entries = split_sizes(sizes) if caps else None
    if not entries:
        return sizes
    scaled = [f"{_guarded(bucket, condition)} calc({length} * {bucket.factor:g})"
              for bucket in caps for condition, length in entries if length != "auto"]
    if not scaled:
        return sizes
    # "auto" is only valid first; the browsers that read it ignore the rest for lazy images.
    lead = ["auto"] if entries[0] == ("", "auto") else []
    rest = ", ".join(f"{c} {length}".strip() for c, length in entries[len(lead):])
    return ", ".join([*lead, *scaled, rest])


def scaled_srcset(candidates: Sequence[tuple[str, int]], bucket: Bucket) -> str:
    """A ``w`` ``srcset`` whose descriptors claim ``1 / factor`` times the real width (rounded
    up, so the claimed density errs low and the choice never goes over the cap)."""
    return ", ".join(f"{url} {math.ceil(width / bucket.factor)}w" for url, width in candidates)
