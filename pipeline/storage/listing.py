"""Where to split a big listing so its ranges can be fetched in parallel."""

from __future__ import annotations

from collections.abc import Sequence

#: Keys per listing page (the S3 maximum); a range shorter than a few pages is not worth it.
PAGE_SIZE = 1000
MIN_KEYS_PER_PART = 2 * PAGE_SIZE


def partition_bounds(hints: Sequence[str], *, parts: int) -> list[str]:
    """Up to ``parts - 1`` keys that cut the sorted ``hints`` into equal ranges.

    The hints are the keys a caller expects (a manifest's objects): where they are
    dense the bucket is too. Fewer than two pages' worth per range gives no split.
    """
    keys = sorted(set(hints))
    parts = max(1, min(parts, len(keys) // MIN_KEYS_PER_PART))
    return [keys[len(keys) * i // parts] for i in range(1, parts)]
