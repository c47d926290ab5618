"""A JavaScript scanner: where the module specifiers and the comments of a file are.

Rewriting ``import "./util.js"`` needs to know what is code and what is not: the same
characters inside a comment, a string, a template literal or a regular expression are
data and must never change. That takes a tokenizer, not a full parser: strings,
comments and templates are unambiguous once their start is found, and the only hard
case, ``/`` (division or the start of a regular-expression literal), is decided the
way real tokenizers do it, by the previous significant token (``x / 2`` after a name,
a number, ``)`` or ``]``; ``/re/`` after an operator, ``(``, ``,``, a keyword such as
``return``). A ``)`` closing ``if (...)``/``while (...)``/``for (...)``/``with (...)``
and a ``}`` closing a block are followed by a regex, a ``}`` closing an object literal
by a division; both are tracked with stacks.

Speed: one C-level regular-expression search jumps from one character that matters
(quote, backtick, slash, bracket, ``import``/``export``) to the next, so the Python
loop runs per token of interest, not per character.

Module specifiers found (ES2015-ES2025): ``import x from "s"``, ``import {a as b} from
"s"``, ``import * as n from "s"``, ``import "s"``, ``export {a} from "s"``,
``export * from "s"``, ``export * as n from "s"`` and ``import("s")`` (also with a second
argument). A template-literal or computed ``import(...)`` is not a specifier: its value
is not known before the code runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Keywords after which ``/`` starts a regular expression (an expression follows them).
_EXPRESSION_KEYWORDS = frozenset({
    "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case",
    "do", "else", "yield", "await",
})
#: ``keyword (...)``: after the ``)`` a statement starts, so ``/`` is a regex.
_CONDITION_KEYWORDS = frozenset({"if", "while", "for", "with"})
#: A ``{`` after these words opens a block; after the expression keywords, an object.
_BLOCK = "block"
_OBJECT = "object"
_TEMPLATE = "template"

# The characters that matter; ``import``/``export`` only as whole words that are not a
# property (``a.import``), a private name (``#export``) or part of a longer name.
_SPECIAL = re.compile(r"""[/'"`{}()]|(?<![\w$.#\\])(import|export)(?![\w$\\])""")
_STRING = {
    q: re.compile(rf"{q}(?:[^{q}\\\n\r]|\\(?:\r\n|[\s\S]))*(?:{q}|(?=[\n\r])|\Z)")
    for q in "'\""
}
# A template chunk: up to the closing backtick or the next ``${``.
_TEMPLATE_CHUNK = re.compile(r"(?:[^`\\$]|\\[\s\S]|\$(?!\{))*(?:`|\$\{|\Z)")
_LINE_COMMENT = re.compile(r"//[^\n\r\u2028\u2029]*")
_HASHBANG = re.compile(r"#![^\n\r\u2028\u2029]*")
_BLOCK_COMMENT = re.compile(r"/\*[\s\S]*?(?:\*/|\Z)")
_REGEX = re.compile(r"/(?![*/])(?:[^/\\\[\n\r]|\\[^\n\r]|\[(?:[^\]\\\n\r]|\\[^\n\r])*\])+/[\w$]*")
_SPACE = frozenset(" \t\n\r\v\f\ufeff\xa0\u2028\u2029")
# For the short look-ahead after import/export: blanks and comments, then one token.
_GAP = re.compile(r"(?:\s+|//[^\n\r]*|/\*[\s\S]*?\*/)*")
_WORD = re.compile(r"[\w$]+")


@dataclass(frozen=True, slots=True)
class Specifier:
    """A module specifier string: ``start``/``end`` delimit its text inside the quotes."""

    start: int
    end: int
    quote: str
    #: "import", "export" or "dynamic" (``import("...")``).
    kind: str


@dataclass(frozen=True, slots=True)
class JSScan:
    specifiers: tuple[Specifier, ...]
    #: ``(start, end)`` of every comment, in order (for ``sourceMappingURL`` directives).
    comments: tuple[tuple[int, int], ...]


def scan(text: str) -> JSScan:
    """Find every module specifier and comment of a JavaScript source text."""
    return _Scanner(text).run()


class _Scanner:
    """One pass over ``text``; see the module docstring for the rules."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.braces: list[str] = []
        self.parens: list[bool] = []  # per open "(": is it a condition (if/while/for/with)?
        self.comments: list[tuple[int, int]] = []
        self.comment_start: dict[int, int] = {}  # end -> start, to step back over comments
        self.specifiers: list[Specifier] = []
        self.literal_end = -1  # just after the last string, template or regex
        self.closed_at = -1  # the last ")" or "}" (not a template's) and what may follow
        self.closed_regex_ok = False

    def run(self) -> JSScan:
        text = self.text
        pos = 0
        if text.startswith("#!"):  # a hashbang line is a comment
            pos = self._comment(_HASHBANG, 0)
        search = _SPECIAL.search
        while (match := search(text, pos)) is not None:
            start = match.start()
            char = text[start]
            if match.group(1) is not None:
                pos = match.end()
                if self._previous_char(start) != ".":  # "a . import" is a property too
                    self._keyword(match.group(1), pos)
            elif char in "'\"":
                pos = self._literal(_STRING[char].match(text, start))
            elif char == "`":
                pos = self._template(start + 1)
            elif char == "/":
                pos = self._slash(start)
            elif char == "{":
                self.braces.append(self._brace_kind(start))
                pos = start + 1
            elif char == "}":
                pos = self._close_brace(start)
            elif char == "(":
                # Only "if", "while", "for" and "with" matter: look for the word only after
                # one of their last letters (most "(" follow a name that ends otherwise).
                before = self._previous_char(start)
                self.parens.append(before in "ferh" and before != ""
                                   and self._word_before(start) in _CONDITION_KEYWORDS)
                pos = start + 1
            else:  # ")"
                self._closed(start, self.parens.pop() if self.parens else False)
                pos = start + 1
        return JSScan(tuple(self.specifiers), tuple(self.comments))

    # --- literals and comments ----------------------------------------------------------

    def _literal(self, match: re.Match[str] | None) -> int:
        assert match is not None  # the string patterns match any quote
        self.literal_end = match.end()
        return match.end()

    def _template(self, pos: int) -> int:
        """Scan a template from ``pos`` (after a backtick or a substitution's ``}``)."""
        match = _TEMPLATE_CHUNK.match(self.text, pos)
        assert match is not None  # the pattern can match the empty string
        if match.group().endswith("${"):
            self.braces.append(_TEMPLATE)
        else:
            self.literal_end = match.end()
        return match.end()

    def _comment(self, pattern: re.Pattern[str], start: int) -> int:
        match = pattern.match(self.text, start)
        assert match is not None
        end = match.end()
        self.comments.append((start, end))
        self.comment_start[end] = start
        return end

    def _slash(self, start: int) -> int:
        following = self.text[start + 1 : start + 2]
        if following == "/":
            return self._comment(_LINE_COMMENT, start)
        if following == "*":
            return self._comment(_BLOCK_COMMENT, start)
        if self._regex_may_start(start):
            match = _REGEX.match(self.text, start)
            if match is not None:
                return self._literal(match)
        return start + 1  # division (or a broken regex: carry on after it)

    # --- brackets -------------------------------------------------------------------------

    def _close_brace(self, start: int) -> int:
        kind = self.braces.pop() if self.braces else _BLOCK
        if kind == _TEMPLATE:  # "}" ends a substitution: the template goes on
            return self._template(start + 1)
        self._closed(start, kind == _BLOCK)
        return start + 1

    def _closed(self, at: int, regex_ok: bool) -> None:
        self.closed_at = at
        self.closed_regex_ok = regex_ok

    def _brace_kind(self, start: int) -> str:
        """Block or object literal, from what precedes the ``{``."""
        i = self._previous(start)
        if i < 0 or i + 1 == self.literal_end:
            return _BLOCK
        char = self.text[i]
        if char in ";{})":
            return _BLOCK
        if char == ">" and self.text[i - 1 : i] == "=":  # "=> {" is a function body
            return _BLOCK
        if char in "$_" or char.isalnum():
            return _OBJECT if self._word_at(i) in _EXPRESSION_KEYWORDS else _BLOCK
        return _OBJECT

    # --- the previous significant token -----------------------------------------------------

    def _previous(self, pos: int) -> int:
        """Index of the last character before ``pos`` that is neither blank nor comment."""
        text = self.text
        i = pos - 1
        while i >= 0:
            # Comments first: a line comment may end in a blank.
            if (begin := self.comment_start.get(i + 1)) is not None:
                i = begin - 1
            elif text[i] in _SPACE:
                i -= 1
            else:
                return i
        return -1

    def _previous_char(self, pos: int) -> str:
        i = self._previous(pos)
        return self.text[i] if i >= 0 else ""

    def _word_at(self, i: int) -> str:
        """The identifier (or number) ending at index ``i``, "" if it is a property name."""
        text = self.text
        start = i
        # A plain loop: keywords are short, and a backward regex search would try every start.
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "$_"):
            start -= 1
        return "" if self._previous_char(start) == "." else text[start : i + 1]

    def _word_before(self, pos: int) -> str:
        i = self._previous(pos)
        if i < 0 or i + 1 == self.literal_end:
            return ""
        char = self.text[i]
        return self._word_at(i) if char in "$_" or char.isalnum() else ""

    def _regex_may_start(self, start: int) -> bool:
        """Whether ``/`` at ``start`` begins a regular expression (see the module docstring)."""
        i = self._previous(start)
        if i < 0:
            return True
        if i + 1 == self.literal_end:  # after a string, template or regex: division
            return False
        char = self.text[i]
        if char in ")}":
            return i == self.closed_at and self.closed_regex_ok
        if char == "]":
            return False
        if char in "$_" or char.isalnum():
            return self._word_at(i) in _EXPRESSION_KEYWORDS
        if char in "+-":  # "a++ / b": a postfix operator ends an operand
            return self.text[i - 1 : i] != char
        if char == ".":  # "1./2": a number's trailing dot
            return not self.text[i - 1 : i].isdigit()
        return True

    # --- import / export --------------------------------------------------------------------

    def _keyword(self, word: str, pos: int) -> None:
        found = _import_specifier(self.text, pos) if word == "import" \
            else _export_specifier(self.text, pos)
        if found is not None:
            self.specifiers.append(found)


def _token(text: str, pos: int) -> tuple[str, int, int]:
    """The next token after blanks and comments: (kind, start, end).

    kind is "string", "word", a punctuation character, or "" at the end of the text.
    """
    gap = _GAP.match(text, pos)
    start = gap.end() if gap is not None else pos
    if start >= len(text):
        return "", start, start
    char = text[start]
    if char in "'\"":
        match = _STRING[char].match(text, start)
        assert match is not None
        return "string", start, match.end()
    word = _WORD.match(text, start)
    if word is not None:
        return "word", start, word.end()
    return char, start, start + 1


def _specifier(text: str, start: int, end: int, kind: str) -> Specifier | None:
    quote = text[start]
    if end - start < 2 or text[end - 1] != quote:  # unterminated
        return None
    return Specifier(start + 1, end - 1, quote, kind)


def _import_specifier(text: str, pos: int) -> Specifier | None:
    """After ``import``: a side-effect import, a dynamic import or a declaration's ``from``."""
    kind, start, end = _token(text, pos)
    if kind == "string":
        return _specifier(text, start, end, "import")
    if kind == "(":
        kind, start, end = _token(text, end)
        if kind != "string":
            return None
        after = _token(text, end)[0]
        return _specifier(text, start, end, "dynamic") if after in (")", ",") else None
    if kind in ("word", "*", "{"):
        return _from_clause(text, start, "import")
    return None


def _export_specifier(text: str, pos: int) -> Specifier | None:
    """After ``export``: only ``export * ... from`` and ``export {...} from`` re-export."""
    kind, start, _ = _token(text, pos)
    return _from_clause(text, start, "export") if kind in ("*", "{") else None


#: Import/export clauses are short; this bounds the look-ahead on broken input.
_MAX_CLAUSE_TOKENS = 4096


def _from_clause(text: str, pos: int, kind_found: str) -> Specifier | None:
    """Read an import/export clause from ``pos`` up to ``from "specifier"``.

    Only names, ``*``, ``,``, braces and (inside braces) string names may come before
    ``from``; anything else means this is not a declaration with a specifier.
    """
    depth = 0
    for _ in range(_MAX_CLAUSE_TOKENS):
        kind, start, end = _token(text, pos)
        if kind == "word" and depth == 0 and text[start:end] == "from":
            after, s_start, s_end = _token(text, end)
            if after == "string":
                return _specifier(text, s_start, s_end, kind_found)
        elif kind == "{":
            depth += 1
        elif kind == "}":
            depth -= 1
            if depth < 0:
                return None
        elif not (kind in ("word", "*", ",") or (kind == "string" and depth == 1)):
            return None
        pos = end
    return None
