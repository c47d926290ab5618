"""CSS reference rewriting: finding, resolving, rewriting, hashing order, cycles, SRI."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

import pytest

from pipeline.build.css import (
    CSSBuild,
    MissingReferenceError,
    build_css,
    css_unescape,
    find_references,
    relative_url,
    resolve,
    split_url,
    sri_hash,
    strongly_connected,
)
from pipeline.build.fingerprint import hash_file, hashed_name
from pipeline.errors import ConfigError
from pipeline.localfs import collect_files

FIXTURE = Path(__file__).parent / "data" / "css" / "static"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(
    tree: Mapping[str, str | bytes], *, strict: bool = True, static_url_path: str = "/static/"
) -> CSSBuild:
    """Run build_css over an in-memory tree; non-CSS hashes are the real sha256."""
    data = {path: body.encode() if isinstance(body, str) else body for path, body in tree.items()}
    hashes = {path: sha(body) for path, body in data.items() if not path.endswith(".css")}
    return build_css(
        data, read=data.__getitem__, hashes=hashes, strict=strict, static_url_path=static_url_path
    )


def text(result: CSSBuild, path: str) -> str:
    return result.files[path].content.decode()


def urls(css: str) -> list[str]:
    return [ref.url for ref in find_references(css)]


# --- finding references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("css", "expected"),
    [
        ('a { b: url("x.png") }', ["x.png"]),
        ("a { b: url('x.png') }", ["x.png"]),
        ("a { b: url(x.png) }", ["x.png"]),
        ("a { b: url(  x.png\n  ) }", ["x.png"]),
        ('a { b: url(  "x.png"  ) }', ["x.png"]),
        ("a { b: URL(x.png) }", ["x.png"]),
        ('@import "x.css";', ["x.css"]),
        ("@import 'x.css' screen;", ["x.css"]),
        ("@IMPORT url(x.css);", ["x.css"]),
        ('@import url("x.css") print;', ["x.css"]),
        ('a { b: image-set("a.png" 1x, "b.png" 2x) }', ["a.png", "b.png"]),
        ("a { b: image-set(url(a.png) 1x, url('b.png') 2x) }", ["a.png", "b.png"]),
        ('a { b: -webkit-image-set("a.png" 1x) }', ["a.png"]),
        (
            'a { b: image-set("a.avif" type("image/avif"), "a.jpg" type("image/jpeg")) }',
            ["a.avif", "a.jpg"],
        ),
        ('@font-face { src: url(f.eot?#iefix) format("embedded-opentype") }', ["f.eot?#iefix"]),
        ("a { b: url(x.png), url(y.png) }", ["x.png", "y.png"]),
    ],
)
def test_finds_every_reference_form(css: str, expected: list[str]) -> None:
    assert urls(css) == expected


@pytest.mark.parametrize(
    "css",
    [
        "/* url(x.png) */ a { color: red }",
        "/* multi\n line @import 'x.css';\n url(y.png) */",
        "a { b: red } /* unterminated url(x.png)",
        'a { content: "url(x.png)" }',
        "a { content: 'image-set(\"x.png\" 1x)' }",
        '@charset "UTF-8"; a { font-family: "x.png" }',
        "a { b: myurl(x.png) }",
        'a { b: format("woff2") }',
        '@font-face { src: local("x.woff") }',
        "a { b: url(x y.png) }",  # invalid CSS (bad-url): not something a browser fetches
    ],
)
def test_ignores_comments_strings_and_non_urls(css: str) -> None:
    assert urls(css) == []


def test_reference_records_span_quote_kind_and_line() -> None:
    css = ("/* one\ntwo */\n@import \"a.css\";\nb { c: url( d.png ) }\n"
           "e { f: image-set(\n  'g.png' 1x) }")
    refs = find_references(css)
    assert [(r.line, r.quote, r.kind) for r in refs] == [
        (3, '"', "import"),
        (4, "", "url"),
        (6, "'", "image-set"),
    ]
    assert [css[r.start : r.end] for r in refs] == ["a.css", "d.png", "g.png"]


def test_css_escapes_are_decoded() -> None:
    assert urls(r"a { b: url(a\(1\)\ b.png) }") == ["a(1) b.png"]
    assert css_unescape(r"\26 x\41\42") == "&xAB"
    assert css_unescape("a\\\nb") == "ab"
    assert css_unescape(r"\0 \D800 \110000 ") == "\ufffd\ufffd\ufffd"


@pytest.mark.parametrize(
    ("css", "expected"),
    [
        # The whitespace runs and values the tokenizer takes whole (never gives back).
        ("a{b:url(" + " " * 5000 + "}c{d:url(x.png)}", ["x.png"]),  # unclosed, then a url
        ("a{b:url(" + "\n\t " * 2000 + "y.png" + " " * 2000 + ")}", ["y.png"]),
        ("a{b:url(" + " " * 2000 + ")}", [""]),  # an empty url() is still a reference
        ("a{b:url(" + "x" * 5000 + " z)}e{f:url(w.png)}", ["w.png"]),  # bad-url, then a url
        (r"a{b:url(p\41 )}", ["pA"]),  # the hex escape swallows the blank before ")"
        (r"a{b:url(p\41  )}", ["pA"]),
        ('a{b:url("q\\"r.png" )}', ['q"r.png']),  # an escaped quote stays in the string
        ("a{b:url('unterminated" + " " * 3000 + "\nc{d:url(v.png)}", ["v.png"]),
    ],
)
def test_long_runs_and_unclosed_values_are_read_once(css: str, expected: list[str]) -> None:
    """Each of these once made the whitespace on both sides of a value try every split
    (``url(`` + 40,000 blanks took a second); the references found are unchanged."""
    assert urls(css) == expected


def test_broken_parentheses_do_not_leak_image_set_context() -> None:
    assert urls('a { b: image-set("x.png" 1x; } c { font-family: "y.png" }') == ["x.png"]


# --- resolving ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,AAAA",
        "DATA:image/svg+xml;utf8,<svg/>",
        "http://example.com/x.png",
        "https://example.com/x.png",
        "//cdn.example.com/x.png",
        "#filter",
        "",
        "   ",
        "?v=1",
        "about:blank",
        "blob:https://example.com/1234",
        "/other/x.png",
        "/staticfiles/x.png",
    ],
)
def test_leaves_foreign_references_alone(url: str) -> None:
    assert resolve(url, "css/site.css", static_url_path="/static/") is None


@pytest.mark.parametrize(
    ("url", "css_path", "expected"),
    [
        ("../img/bg.png", "css/site.css", "img/bg.png"),
        ("bg.png", "css/site.css", "css/bg.png"),
        ("./sub/./bg.png", "css/site.css", "css/sub/bg.png"),
        ("img/bg.png", "site.css", "img/bg.png"),
        ("../../x.png", "a/b/c.css", "x.png"),
        ("a/../b.png?x#y", "c.css", "b.png"),
        ("/static/img/x.png", "css/deep/site.css", "img/x.png"),
        ("a%20b%2Bc%23d%25e%C3%A9.png", "s.css", "a b+c#d%eé.png"),
        ("a+b.png", "s.css", "a+b.png"),  # '+' in a path is a plus, not a space
        ("%2e%2e/x.png", "css/s.css", "x.png"),  # browsers treat %2e%2e as '..'
    ],
)
def test_resolves_relative_to_the_css_file(url: str, css_path: str, expected: str) -> None:
    assert resolve(url, css_path, static_url_path="/static/") == expected


def test_root_absolute_references_need_a_static_url_path() -> None:
    assert resolve("/static/x.png", "s.css", static_url_path=None) is None
    assert resolve("/assets/x.png", "s.css", static_url_path="/assets/") == "x.png"


@pytest.mark.parametrize(
    ("url", "path", "suffix"),
    [("f.eot?#iefix", "f.eot", "?#iefix"), ("a.svg#x?y", "a.svg", "#x?y"), ("a.png", "a.png", "")],
)
def test_split_url_keeps_the_suffix_verbatim(url: str, path: str, suffix: str) -> None:
    assert split_url(url) == (path, suffix)


@pytest.mark.parametrize(
    ("from_path", "to_path", "expected"),
    [
        ("css/site.css", "css/bg.1.png", "bg.1.png"),
        ("css/site.css", "img/bg.1.png", "../img/bg.1.png"),
        ("css/a/b/site.css", "img/x/bg.png", "../../../img/x/bg.png"),
        ("site.css", "img/bg.png", "img/bg.png"),
        ("css/site.css", "bg.png", "../bg.png"),
        ("css/site.css", "css/sub/bg.png", "sub/bg.png"),
        ("a/site.css", "ab/x.png", "../ab/x.png"),
        ("css/s.css", "img/a b+c#d%e?f:g é.png", "../img/a%20b%2Bc%23d%25e%3Ff%3Ag%20%C3%A9.png"),
    ],
)
def test_relative_url_between_folders(from_path: str, to_path: str, expected: str) -> None:
    assert relative_url(from_path, to_path) == expected


# --- rewriting ----------------------------------------------------------------------------


def test_rewrites_references_and_keeps_quotes_suffixes_and_layout() -> None:
    img, font = b"image bytes", b"font bytes"
    css = (
        "/* url(../img/bg.png) stays */\n"
        "a { background: url( \"../img/bg.png?v=1\" ), url('/static/img/bg.png#frag'); }\n"
        '@font-face { src: url(../fonts/f.eot?#iefix) format("embedded-opentype"); }\n'
        'b { background: image-set("../img/bg.png" 1x), url(data:x), url(#f), url(//h/x); }\n'
    )
    result = build({"css/site.css": css, "img/bg.png": img, "fonts/f.eot": font})
    bg = "../" + hashed_name("img/bg.png", sha(img))
    eot = "../" + hashed_name("fonts/f.eot", sha(font))
    assert text(result, "css/site.css") == (
        "/* url(../img/bg.png) stays */\n"
        f"a {{ background: url( \"{bg}?v=1\" ), url('{bg}#frag'); }}\n"
        f'@font-face {{ src: url({eot}?#iefix) format("embedded-opentype"); }}\n'
        f'b {{ background: image-set("{bg}" 1x), url(data:x), url(#f), url(//h/x); }}\n'
    )
    assert result.warnings == ()


def test_file_names_with_spaces_unicode_plus_hash_and_percent() -> None:
    name = "img/a b+c#d%eé.png"
    css = (
        "x { a: url(\"../img/a%20b+c%23d%25e%C3%A9.png\"); b: url('../img/a b+c%23d%25eé.png'); "
        r"c: url(../img/a\ b+c%23d%25eé.png?q) }"
    )
    result = build({"css/s.css": css, name: b"png"})
    encoded = "../img/" + "a%20b%2Bc%23d%25e%C3%A9." + sha(b"png")[:12] + ".png"
    assert text(result, "css/s.css") == (
        f"x {{ a: url(\"{encoded}\"); b: url('{encoded}'); c: url({encoded}?q) }}"
    )
    assert unquote(encoded.removeprefix("../")) == hashed_name(name, sha(b"png"))


def test_suffix_needing_escapes_is_escaped_for_its_quoting() -> None:
    css = r"a { b: url(x.png?a\(b\)) ; c: url('x.png?it\'s') }"
    out = text(build({"s.css": css, "x.png": b"x"}), "s.css")
    new = hashed_name("x.png", sha(b"x"))
    assert out == rf"a {{ b: url({new}?a\(b\)) ; c: url('{new}?it\'s') }}"
    assert urls(out) == [f"{new}?a(b)", f"{new}?it's"]
    assert urls(r"a { b: url(x\28 y\29 .png) }") == ["x(y).png"]


def test_css_without_references_is_unchanged() -> None:
    css = "a { color: red }\n"
    result = build({"s.css": css}).files["s.css"]
    assert result.content == css.encode()
    assert result.sha256 == result.name_hash == sha(css.encode())
    assert result.hashed_name == hashed_name("s.css", sha(css.encode()))


def test_bytes_that_are_not_utf8_survive() -> None:
    css = b"/* caf\xe9 */ a { b: url(x.png) } \xff"
    out = build({"s.css": css, "x.png": b"x"}).files["s.css"].content
    assert (
        out == b"/* caf\xe9 */ a { b: url(" + hashed_name("x.png", sha(b"x")).encode() + b") } \xff"
    )


# --- missing references -------------------------------------------------------------------


def test_missing_reference_names_file_and_line() -> None:
    css = "a { color: red }\n\nb { background: url(../img/missing.png) }\n"
    with pytest.raises(MissingReferenceError) as info:
        build({"css/site.css": css})
    message = str(info.value)
    assert "css/site.css:3:" in message
    assert "'../img/missing.png'" in message and "'img/missing.png'" in message
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    assert info.value.problems == (
        (
            "css/site.css:3: '../img/missing.png' points to 'img/missing.png', "
            "which is not in the static folder"
        ),
    )


def test_every_problem_is_listed_in_one_error() -> None:
    tree = {"a.css": "x { y: url(m1.png) }", "b.css": "\n@import 'm2.css';"}
    with pytest.raises(MissingReferenceError) as info:
        build(tree)
    assert [p.split(" ")[0] for p in info.value.problems] == ["a.css:1:", "b.css:2:"]


def test_reference_escaping_the_static_root_is_an_error() -> None:
    with pytest.raises(
        MissingReferenceError, match=r"css/s\.css:1: '\.\./\.\./x\.png' points outside"
    ):
        build({"css/s.css": "a { b: url(../../x.png) }", "x.png": b"x"})
    with pytest.raises(MissingReferenceError, match="outside the static folder"):
        build({"s.css": "a { b: url(/static/../x.png) }"})


def test_non_strict_warns_and_leaves_the_reference_unchanged() -> None:
    css = "a { b: url(gone.png) }\nc { d: url(here.png) }\ne { f: url(../../up.png) }\n"
    result = build({"css/s.css": css, "css/here.png": b"h"}, strict=False)
    assert result.warnings == (
        "css/s.css:1: 'gone.png' points to 'css/gone.png', which is not in the static folder",
        "css/s.css:3: '../../up.png' points outside the static folder",
    )
    here = posixpath.basename(hashed_name("css/here.png", sha(b"h")))
    assert text(result, "css/s.css") == css.replace("url(here.png)", f"url({here})")


def test_referenced_file_without_a_hash_is_a_caller_bug() -> None:
    data = {"s.css": b"a { b: url(x.png) }", "x.png": b"x"}
    with pytest.raises(ValueError, match=r"no hash given for 'x.png'"):
        build_css(data, read=data.__getitem__, hashes={})


def test_unreadable_css_is_a_config_error() -> None:
    def read(path: str) -> bytes:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(ConfigError, match=r"cannot read 's.css'.*Permission denied"):
        build_css(["s.css"], read=read, hashes={})


def test_static_url_path_is_validated_and_normalised() -> None:
    with pytest.raises(ConfigError, match="static URL path 'static' is not valid"):
        build({"s.css": ""}, static_url_path="static")
    out = text(
        build({"c/s.css": "a{b:url(/assets/x.png)}", "x.png": b"x"}, static_url_path="/assets"),
        "c/s.css",
    )
    assert out == "a{b:url(../" + hashed_name("x.png", sha(b"x")) + ")}"


# --- hashing order ------------------------------------------------------------------------


CHAIN: dict[str, str | bytes] = {
    "css/a.css": '@import "b.css";\nx { y: url(../img/a.png) }',
    "css/b.css": "@import url(lib/c.css);",
    "css/lib/c.css": "z { w: url('../../img/c.png') }",
    "css/other.css": "q { r: url(../img/a.png) }",
    "img/a.png": b"a",
    "img/c.png": b"c",
}


def test_imports_are_rewritten_to_the_final_names_of_their_targets() -> None:
    result = build(CHAIN)
    c = result.files["css/lib/c.css"]
    b = result.files["css/b.css"]
    assert text(result, "css/b.css") == f"@import url({c.hashed_name.removeprefix('css/')});"
    assert f'@import "{b.hashed_name.removeprefix("css/")}";' in text(result, "css/a.css")
    assert b.dependencies == ("css/lib/c.css",)
    for item in result.files.values():
        assert item.sha256 == item.name_hash == sha(item.content)


def test_changing_an_image_renames_every_css_that_reaches_it() -> None:
    before = build(CHAIN)
    after = build({**CHAIN, "img/c.png": b"c, edited"})
    renamed = {p for p in before.files if before.files[p].hashed_name != after.files[p].hashed_name}
    assert renamed == {"css/lib/c.css", "css/b.css", "css/a.css"}


def test_output_is_deterministic_whatever_the_input_order() -> None:
    first = build(CHAIN)
    second = build(dict(reversed(list(CHAIN.items()))))
    assert first == second
    assert list(first.files) == sorted(first.files)


def test_only_css_files_are_read() -> None:
    data = {p: v.encode() if isinstance(v, str) else v for p, v in CHAIN.items()}
    read: list[str] = []

    def reader(path: str) -> bytes:
        read.append(path)
        return data[path]

    hashes = {p: sha(v) for p, v in data.items() if not p.endswith(".css")}
    build_css(set(data), read=reader, hashes=hashes)
    assert sorted(read) == sorted(p for p in data if p.endswith(".css"))


# --- cycles -------------------------------------------------------------------------------


CYCLE: dict[str, str | bytes] = {
    "css/a.css": '@import "b.css";\na { x: url(../img/a.png) }',
    "css/b.css": '@import "a.css";\nb { x: url(../img/b.png) }',
    "css/main.css": '@import url("a.css");',
    "img/a.png": b"a",
    "img/b.png": b"b",
}


def test_cycle_terminates_with_a_shared_group_hash() -> None:
    result = build(CYCLE)
    a, b, main = (result.files[f"css/{n}.css"] for n in ("a", "b", "main"))
    assert a.name_hash == b.name_hash
    assert a.sha256 == sha(a.content) != a.name_hash
    assert text(result, "css/a.css").startswith(f'@import "{b.hashed_name.removeprefix("css/")}";')
    assert text(result, "css/b.css").startswith(f'@import "{a.hashed_name.removeprefix("css/")}";')
    assert text(result, "css/main.css") == f'@import url("{a.hashed_name.removeprefix("css/")}");'
    assert main.name_hash == sha(main.content)
    assert build(CYCLE) == result


def test_change_below_a_cycle_renames_every_member_and_dependant() -> None:
    before = build(CYCLE)
    after = build({**CYCLE, "img/b.png": b"b, edited"})
    for path in ("css/a.css", "css/b.css", "css/main.css"):
        assert before.files[path].hashed_name != after.files[path].hashed_name


def test_self_reference_and_three_file_cycle() -> None:
    result = build(
        {
            "s.css": "a { b: url(s.css) }",
            "x.css": "@import 'y.css';",
            "y.css": "@import 'z.css';",
            "z.css": "@import 'x.css';",
        }
    )
    s = result.files["s.css"]
    assert text(result, "s.css") == f"a {{ b: url({s.hashed_name}) }}"
    assert len({result.files[n].name_hash for n in ("x.css", "y.css", "z.css")}) == 1
    assert text(result, "z.css") == f"@import '{result.files['x.css'].hashed_name}';"


def test_strongly_connected_components_come_dependencies_first() -> None:
    graph = {"a": ["b"], "b": ["c", "d"], "c": ["b"], "d": [], "e": ["e"]}
    assert strongly_connected(graph) == [["d"], ["b", "c"], ["a"], ["e"]]


def test_long_import_chain_does_not_hit_the_recursion_limit() -> None:
    tree: dict[str, str | bytes] = {f"c{i}.css": f"@import 'c{i + 1}.css';" for i in range(3000)}
    tree["c3000.css"] = "a { b: url(x.png) }"
    tree["x.png"] = b"x"
    assert len(build(tree).files) == 3001


# --- the fixture tree, through the real local-file helpers --------------------------------


def test_fixture_tree_every_rewritten_reference_names_a_deployed_object() -> None:
    files = collect_files(FIXTURE)
    by_path = {item.logical_path: item.path for item in files}
    hashes = {p: hash_file(path) for p, path in by_path.items() if not p.endswith(".css")}
    result = build_css(by_path, read=lambda p: by_path[p].read_bytes(), hashes=hashes, strict=True)
    deployed = {hashed_name(p, h) for p, h in hashes.items()}
    deployed |= {item.hashed_name for item in result.files.values()}
    local = 0
    for item in result.files.values():
        for ref in find_references(item.content.decode()):
            if re.match(r"[a-z]+:|#|//", ref.url):
                continue
            path = split_url(ref.url)[0]
            target = posixpath.normpath(posixpath.join(posixpath.dirname(item.hashed_name), path))
            assert unquote(target) in deployed, (item.logical_path, ref.url)
            local += 1
    assert local == 10
    site = result.files["css/site.css"].content.decode()
    assert "url(not-a-reference.png)" in site and "url(#shadow)" in site
    assert "url(data:image/gif;base64,R0lGODlhAQABAAAAACw=)" in site
    assert (
        "https://fonts.example.com/icons.woff" in result.files["css/base/type.css"].content.decode()
    )


# --- SRI ----------------------------------------------------------------------------------


def test_sri_hash_is_base64_sha384() -> None:
    assert (
        sri_hash(b"") == "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
    )
    data = b"body { color: red }"
    assert sri_hash(data) == "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
