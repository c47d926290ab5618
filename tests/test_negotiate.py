"""Accept-Encoding negotiation (pipeline.negotiate): which stored representation a request gets."""

from __future__ import annotations

import pytest

from pipeline.negotiate import MAX_ELEMENTS, choose_encoding, parse_accept_encoding

BOTH = ("br", "gzip")


@pytest.mark.parametrize(("header", "available", "chosen"), [
    (None, BOTH, None),                            # absent: identity (curl, old proxies)
    ("", BOTH, None),                              # empty: identity only
    ("identity", BOTH, None),
    ("gzip", BOTH, "gzip"),
    ("br", BOTH, "br"),
    ("gzip, deflate, br, zstd", BOTH, "br"),       # a browser: the smaller one
    ("gzip, deflate, br, zstd", ("gzip",), "gzip"),  # the 95% rule left no br
    ("br;q=0", BOTH, None),                        # br excluded, nothing else offered
    ("br;q=0, gzip", BOTH, "gzip"),
    ("gzip;q=1.0, br;q=0.5", BOTH, "gzip"),        # q outranks our preference
    ("*", BOTH, "br"),
    ("*;q=0.5, gzip", BOTH, "gzip"),
    ("*, br;q=0", BOTH, "gzip"),                   # a listed coding is not matched by *
    ("*;q=0", BOTH, None),                         # nothing acceptable: identity anyway
    ("identity;q=0", (), None),
    ("identity;q=1, br;q=0.5", BOTH, None),        # identity preferred when it says so
    ("x-gzip", BOTH, "gzip"),                      # RFC 9110 8.4.1.3: x-gzip is gzip
    ("GZIP ; Q=0.8", BOTH, "gzip"),                # case-insensitive, spaces allowed
    ("br;q=2, gzip", BOTH, "gzip"),                # not a qvalue: that element is ignored
    ("br;q=abc", BOTH, None),
    ("br;q=0.0001", BOTH, None),                   # at most 3 decimals
    ("zstd, deflate", BOTH, None),                 # codings we do not store
])
def test_choice(header: str | None, available: tuple[str, ...], chosen: str | None) -> None:
    assert choose_encoding(header, available) == chosen


def test_parse_gives_each_coding_its_weight() -> None:
    assert parse_accept_encoding("gzip;q=0.5, br, *;q=0") == {"gzip": 0.5, "br": 1.0, "*": 0.0}


def test_work_per_request_is_bounded() -> None:
    """A header of 100,000 elements is read up to MAX_ELEMENTS; what follows is not seen."""
    header = ", ".join(["zstd"] * 100_000 + ["br"])
    assert len(parse_accept_encoding(header)) == 1
    assert choose_encoding(header, BOTH) is None
    assert choose_encoding(", ".join(["zstd"] * (MAX_ELEMENTS - 1) + ["br"]), BOTH) == "br"
