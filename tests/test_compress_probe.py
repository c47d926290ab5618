"""The incompressible-bytes probe of :mod:`pipeline.build.compress` (issue 23's deploy budget).

A compressible name says nothing of the bytes: the 2,000-file benchmark's ``.svg`` files are
random, and brotli 11 took ~0.4 s of CPU a megabyte to find that out, four times the whole
deploy. The probe must skip the full encoders for bytes nothing can shrink, and only those.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from pipeline.build import compress

RANDOM = random.Random(23).randbytes(200_000)
TEXT = b"".join(b".card-%d { margin: %dpx; }\n" % (i, i % 7) for i in range(2000))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The full encoders, counted."""
    seen: list[str] = []

    def counted(name: str, encoder: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        def run(data: bytes) -> bytes:
            seen.append(name)
            return encoder(data)
        return run

    monkeypatch.setattr(compress, "_ENCODERS", {
        name: counted(name, encoder) for name, encoder in compress._ENCODERS.items()})
    return seen


def test_random_bytes_never_reach_the_full_encoders(calls: list[str]) -> None:
    assert compress.encode(RANDOM) == ()
    assert calls == []


def test_partly_compressible_bytes_get_the_full_encoders_and_the_95_percent_rule(
        calls: list[str]) -> None:
    data = RANDOM[:100_000] + TEXT  # the probe shrinks it a little; the 95% rule decides
    kept = compress.encode(data)
    assert calls == ["br", "gzip"]
    assert [e.encoding for e in kept] == ["br", "gzip"]
    assert all(len(e.data) * 100 <= len(data) * 95 for e in kept)


@pytest.mark.parametrize("with_brotli", [True, False])
def test_the_probe_tells_random_from_text_with_or_without_brotli(
        monkeypatch: pytest.MonkeyPatch, with_brotli: bool) -> None:
    if not with_brotli:  # gzip-only installs probe with zlib
        monkeypatch.setattr(compress, "_brotli", lambda: None)
    assert compress.incompressible(RANDOM)
    assert not compress.incompressible(TEXT)
    assert not compress.incompressible(RANDOM[:100_000] + TEXT)
