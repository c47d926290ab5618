"""nginx ``map`` blocks that weigh ``Accept-Encoding`` as :mod:`pipeline.negotiate` does.

nginx has no q-value parser and a ``map`` cannot compare numbers, so the choice is made in
three steps of maps, each a table nginx evaluates lazily per request:

1. the ``q`` of each coding's last well-formed element (``br``, ``gzip`` or ``x-gzip``,
   ``*``, ``identity``), as ``=Q`` (``=`` alone: listed without ``q``) or empty when not
   listed; a malformed ``q`` makes nginx skip the element, as the parser ignores it;
2. each weight as four digits (``q=0.5`` -> ``0500``, ``1`` -> ``1000``): br and gzip
   fall back to ``*`` when not listed, identity does not (RFC 9110 §12.5.3);
3. comparisons of two such weights (``X:Y``): equal-length digit strings compare
   digit by digit, so "X > Y" is "a common prefix, then a larger digit", a regular
   expression with one back-reference; then the suffix: br when acceptable and neither
   gzip nor identity weighs more, gzip when it weighs more than br and identity does not.

What the parser accepts that these maps do not: ``q`` written other than as RFC 9110's
qvalue (``q=0e0``), and more than 32 elements (the parser reads the first 32).
"""

from __future__ import annotations

#: RFC 9110's qvalue: ``0`` with up to three decimals, or ``1`` with up to three zeros.
_QVALUE = r"1(?:\.0?0?0?)?|0(?:\.[0-9]?[0-9]?[0-9]?)?"
#: One element of the header naming ``{name}``; its ``q`` (if any) captured as ``cdn_q``.
#: Parameters other than ``q`` may come before or after it.
_ELEMENT = (r"~*^(?:.*,)?[ \t]*(?:{name})[ \t]*(?:;(?![ \t]*q[ \t]*=)[^;,]*)*"
            r"(?:;[ \t]*q[ \t]*=[ \t]*(?<cdn_q>" + _QVALUE + r")[ \t]*(?:;[^,]*)?)?(?:,|$)")
_CODINGS = {"br": "br", "gzip": "(?:x-)?gzip", "star": r"\*", "identity": "identity"}
#: ``=Q`` -> four digits: (pattern of Q, value).
_WEIGHTS = ((r"(?:1[.0]*)?", "1000"), (r"0\.?", "0000"),
            (r"0\.(?<cdn_w>[0-9])", "0${cdn_w}00"), (r"0\.(?<cdn_w>[0-9][0-9])", "0${cdn_w}0"),
            (r"0\.(?<cdn_w>[0-9][0-9][0-9])", "0${cdn_w}"))
#: ``X:Y`` with X > Y, for two four-digit weights.
_GREATER = "~^([0-9]*)(?:" + "|".join(
    rf"{digit}[0-9]*:\1[0-{digit - 1}]" for digit in range(1, 10)) + ")"


def _map(source: str, target: str, rows: list[tuple[str, str]], default: str) -> list[str]:
    return [f'map "{source}" ${target} {{', f'    default "{default}";',
            *(f'    "{pattern}" {value};' for pattern, value in rows), "}"]


def accept_encoding_maps() -> str:
    """The maps that set ``$cdn_coding_suffix`` to ``.br``, ``.gz`` or ``""`` (identity)."""
    lines: list[str] = []
    for coding, name in _CODINGS.items():
        lines += _map("$http_accept_encoding", f"cdn_ae_{coding}",
                      [(_ELEMENT.format(name=name), "=$cdn_q")], "")
    for coding, fallback in (("br", "$cdn_ae_star"), ("gzip", "$cdn_ae_star"),
                             ("identity", "")):
        listed = [(f"~^={q}:", value) for q, value in _WEIGHTS]
        by_star = [(f"~^:={q}$", value) for q, value in _WEIGHTS] if fallback else []
        lines += _map(f"$cdn_ae_{coding}:{fallback}", f"cdn_w_{coding}",
                      listed + by_star, "0000")
    for winner, loser in (("gzip", "br"), ("identity", "br"), ("identity", "gzip")):
        lines += _map(f"$cdn_w_{winner}:$cdn_w_{loser}", f"cdn_{winner}_over_{loser}",
                      [(_GREATER, "1")], "0")
    weights = "$cdn_w_br:$cdn_w_gzip:$cdn_gzip_over_br:$cdn_identity_over_br"
    lines += _map(f"{weights}:$cdn_identity_over_gzip", "cdn_coding_suffix",
                  [("~^(?!0000)[0-9]+:[0-9]+:0:0:", ".br"),
                   ("~^[0-9]+:(?!0000)[0-9]+:1:[01]:0$", ".gz")], "")
    return "\n".join(lines)
