"""Content-coding negotiation (RFC 9110 §12.5.3): which stored representation to send.

The one parser of ``Accept-Encoding``, shared by ``cdn-deploy serve`` and the Flask
extension's development static route, so both answer a request alike. Framework-free
(Werkzeug has a parser, but the layers that negotiate may not all import it).

The rules, for the codings we store (:data:`pipeline.keys.ENCODING_SUFFIXES`):

- no ``Accept-Encoding`` at all: identity. RFC 9110 allows any coding then, but curl, old
  proxies and scripts send none and expect the bytes as stored;
- a coding is acceptable when listed with ``q`` > 0, or matched by ``*`` with ``q`` > 0
  and not listed itself (``br;q=0`` excludes br whatever ``*`` says); ``x-gzip`` is gzip;
- the acceptable coding with the highest ``q`` wins; a tie goes to the smaller encoding,
  br before gzip; identity wins only when listed with a higher ``q`` than every coding;
- identity is the fallback even when ``identity;q=0`` or ``*;q=0`` exclude it and no
  stored coding is acceptable: RFC 9110 lets the server send it rather than a 406, and a
  static asset nobody can read is worse than one a client did not ask for.
"""

from __future__ import annotations

from collections.abc import Iterable

from .keys import ENCODING_SUFFIXES

IDENTITY = "identity"
#: Preference among equal ``q``: smallest first.
PREFERENCE = tuple(ENCODING_SUFFIXES)
#: Elements of the header looked at: bounded work per request (browsers send 4 or 5).
MAX_ELEMENTS = 32
_ALIASES = {"x-gzip": "gzip"}


def parse_accept_encoding(header: str) -> dict[str, float]:
    """Coding (lower case) -> ``q`` for each well-formed element of the header; an element
    with a malformed ``q`` is ignored (it states nothing we could rely on)."""
    weights: dict[str, float] = {}
    for element in header.split(",", MAX_ELEMENTS)[:MAX_ELEMENTS]:
        name, _, params = element.partition(";")
        coding = _ALIASES.get(name.strip().lower(), name.strip().lower())
        if not coding:
            continue
        q = _quality(params)
        if q is not None:
            weights[coding] = q
    return weights


def _quality(params: str) -> float | None:
    """The ``q`` parameter (1 when absent), or ``None`` when it is not a qvalue."""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() != "q":
            continue
        value = value.strip()
        try:
            q = float(value)
        except ValueError:
            return None
        # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        return q if 0 <= q <= 1 and len(value) <= 5 and value[0] in "01" else None
    return 1.0


def choose_encoding(header: str | None, available: Iterable[str]) -> str | None:
    """The coding of the representation to send among ``available`` (stored siblings), or
    ``None`` for identity; see the module docstring for the rules."""
    if header is None:
        return None
    weights = parse_accept_encoding(header)
    star = weights.get("*", 0.0)
    stored = set(available)
    best: tuple[float, int, str] | None = None
    for rank, coding in enumerate(PREFERENCE):
        q = weights.get(coding, star)
        if coding in stored and q > 0 and (best is None or q > best[0]):
            best = (q, rank, coding)
    if best is None:
        return None
    return None if weights.get(IDENTITY, 0.0) > best[0] else best[2]
