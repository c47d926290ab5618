"""Splitting the variant encodes across N independent jobs (a CI matrix), with no coordinator.

Every shard computes the same assignment from the same inputs, so none needs to talk to the
others: the inputs are the planned sources of the files and settings (the same in every job of
one commit), never the bucket listing, which changes while the shards run (a shard that lists
after another one uploaded would see a different set of missing variants, split it
differently, and skip or repeat work). Each shard then encodes what the listing lacks of its
own part only.

The split is greedy longest-processing-time (LPT): units sorted by weight (output pixels,
which is what encoding time follows), largest first, each to the shard with the least weight
so far; ties go by the unit's name and the lowest shard number, so the result is a pure
function of the units. LPT's worst case is 4/3 of the optimum; with many units of
photo-like sizes it comes within a few percent of the mean (see ``bench/``).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError

#: More shards than this is a typo (a CI matrix of thousands of jobs).
MAX_SHARDS = 1000

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based, as a CI matrix numbers its jobs) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str, what: str = "--shard") -> Shard:
    """``i/N`` with 1 <= i <= N <= :data:`MAX_SHARDS`, else :class:`ConfigError` (exit 2)."""
    match = _SHARD_RE.match(value or "")
    if not match:
        raise ConfigError(f"{what} {value!r} is not a shard: use i/N, e.g. 1/4 for the first "
                          "of four jobs")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"{what} {value!r}: the number of shards must be 1..{MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ConfigError(f"{what} {value!r}: the shard number must be 1..{count} (shards are "
                          "numbered from 1)")
    return Shard(index, count)


def assign(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """Unit name -> shard number (1-based), balancing the summed weights (LPT)."""
    loads = [(0, shard) for shard in range(1, count + 1)]  # (weight so far, shard): a min-heap
    assigned: dict[str, int] = {}
    for name, weight in sorted(weights.items(), key=lambda item: (-item[1], item[0])):
        load, shard = heapq.heappop(loads)
        assigned[name] = shard
        heapq.heappush(loads, (load + weight, shard))
    return assigned


def loads(weights: Mapping[str, int], assigned: Mapping[str, int], count: int) -> list[int]:
    """The summed weight of each shard (index 0 is shard 1): what the benchmark compares."""
    totals = [0] * count
    for name, shard in assigned.items():
        totals[shard - 1] += weights[name]
    return totals


def part(names: Iterable[str], assigned: Mapping[str, int], shard: Shard) -> set[str]:
    """The names ``shard`` owns."""
    return {name for name in names if assigned[name] == shard.index}
