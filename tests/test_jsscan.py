"""The JavaScript scanner: every specifier form found, nothing inside comments, strings,
templates or regular expressions, and ``/`` decided the way JS tokenizers decide it."""

from __future__ import annotations

import pytest

from pipeline.build.jsscan import scan


def specifiers(source: str) -> list[str]:
    return [source[s.start : s.end] for s in scan(source).specifiers]


FORMS = {
    "default": 'import x from "./m.js";',
    "named": "import { a, b as c } from './m.js';",
    "default and named": 'import x, { y } from "./m.js"',
    "namespace": 'import * as ns from "./m.js"',
    "string name": 'import { "a-b" as ab } from "./m.js"',
    "attributes": 'import data from "./m.js" with { type: "json" };',
    "side effect": 'import "./m.js";',
    "export star": 'export * from "./m.js";',
    "export star as": 'export * as ns from "./m.js";',
    "export named": "export { a, default as b } from './m.js';",
    "dynamic": 'const m = await import("./m.js");',
    "dynamic with options": 'import("./m.js", { with: { type: "json" } })',
    "multi-line": 'import {\n  a,\n  b,\n} from\n  "./m.js"',
    "comment inside": 'import /* c */ x /* d */ from /* e */ "./m.js"',
    "name 'from'": 'import from from "./m.js"',
}


@pytest.mark.parametrize("source", FORMS.values(), ids=FORMS.keys())
def test_every_specifier_form_is_found(source: str) -> None:
    assert specifiers(source) == ["./m.js"]


@pytest.mark.parametrize("source", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize("wrap", [
    "// {}\n",
    "/* {} */",
    "'{}'",
    '"{}"',
    "`{}`",
    "`${{ '' }}{}`",
    "/{}/",
    "x = /[/]{}/g",
], ids=["line comment", "block comment", "single-quoted", "double-quoted", "template",
        "template after substitution", "regex", "regex class"])
def test_no_form_is_found_inside_comments_strings_templates_or_regexes(source: str,
                                                                       wrap: str) -> None:
    # Quotes and line breaks inside the wrapper would end it: keep the form on one line and
    # use the quote the wrapper does not.
    body = source.replace("\n", " ")
    if wrap.startswith(("'", '"')):
        other = '"' if wrap[0] == "'" else "'"
        body = body.replace(wrap[0], other)
    if wrap.startswith(("/", "x")):
        body = body.replace("/", "\\/")
    code = wrap.format(body) + '\nimport "./after.js"'
    assert specifiers(code) == ["./after.js"], code


def test_substitutions_of_a_template_are_code() -> None:
    code = 'const t = `a ${await import("./in.js")} b ${`c ${"}"}`}`; import "./out.js"'
    assert specifiers(code) == ["./in.js", "./out.js"]


NOT_SPECIFIERS = {
    "template dynamic": "import(`./m.js`)",
    "computed dynamic": 'import("./m" + ".js")',
    "variable dynamic": "import(name)",
    "property": 'api.import("./m.js"); a?.import("./m.js"); a . import("./m.js")',
    "object key": 'x = { import: "./m.js", export: "./m.js" }',
    "private name": 'this.#import("./m.js")',
    "import.meta": 'import.meta.resolve("./m.js")',
    "export default": 'export default "./m.js"',
    "export declaration": 'export const from = "./m.js"',
    "export without from": 'export { a }\n"./m.js"',
    "longer name": 'reimport("./m.js"); import_("./m.js")',
}


@pytest.mark.parametrize("source", NOT_SPECIFIERS.values(), ids=NOT_SPECIFIERS.keys())
def test_strings_that_are_not_specifiers_are_not_found(source: str) -> None:
    assert specifiers(source) == []


DIVISION_OR_REGEX = {
    # After a name, a number, ")" or "]": division, so the next "/" does not end a regex.
    "after name": 'a = b / 2; c = d / 3; import "./m.js"',
    "after number": 'a = 1 / 2 / 3; import "./m.js"',
    "after call": 'a = f() / 2 / g(); import "./m.js"',
    "after index": 'a = b[0] / 2 / c[1]; import "./m.js"',
    "after postfix": 'a = b++ / 2 / c--; import "./m.js"',
    "after object literal": 'a = {} / 2 / 3; import "./m.js"',
    "after string": 'a = "x" / 2 / 3; import "./m.js"',
    # After an operator, "(", ",", a keyword or a block: a regex, whose quotes are data.
    "after operator": 'a = b + /"/.source; import "./m.js"',
    "after paren": 'f(/"/); import "./m.js"',
    "after return": 'function f(){return /"/}import "./m.js"',
    "after typeof": 'x = typeof /"/; import "./m.js"',
    "after if (...)": 'if (a) /"/.test(b); import "./m.js"',
    "after a block": 'function f(){}\n/"/.test(a); import "./m.js"',
    "after arrow body": 'f = () => {}\n/"/.exec(a); import "./m.js"',
    "regex with slash in class": 'a = /[/"]/; import "./m.js"',
    "regex with escaped slash": 'a = /\\/"/; import "./m.js"',
}


@pytest.mark.parametrize("source", DIVISION_OR_REGEX.values(), ids=DIVISION_OR_REGEX.keys())
def test_division_and_regex_are_told_apart(source: str) -> None:
    assert specifiers(source) == ["./m.js"]


def test_minified_code_without_spaces() -> None:
    code = ('import{a as b}from"./a.js";import*as c from"./b.js";import"./c.js";'
            'export*from"./d.js";export{e}from"./e.js";const f=()=>import("./f.js"),'
            'g=1/2/3,h=/"/g;export default{b,c}')
    assert specifiers(code) == ["./a.js", "./b.js", "./c.js", "./d.js", "./e.js", "./f.js"]


def test_comments_are_reported_with_their_spans() -> None:
    code = 'a(); // one\n"// not a comment"; /* two */ `/* nor this */`\n#x'
    found = [code[s:e] for s, e in scan(code).comments]
    assert found == ["// one", "/* two */"]


def test_a_hashbang_line_is_a_comment() -> None:
    code = '#!/usr/bin/env node\nimport "./m.js"'
    assert specifiers(code) == ["./m.js"]
    assert [code[s:e] for s, e in scan(code).comments] == ["#!/usr/bin/env node"]


def test_unterminated_literals_end_at_the_line_or_file() -> None:
    assert specifiers('a = "open\nimport "./m.js"') == ["./m.js"]
    assert specifiers("a = `open ${") == []
    assert specifiers('a = /open\nimport "./m.js"') == ["./m.js"]
    assert specifiers('import "./m.js') == []
