"""ES module specifiers on the CDN: rewritten to fingerprinted names, dependencies first,
cycles as a group, missing targets refused (strict) or warned; source-map directives only
where they are real trailing comments; files that are not UTF-8 reported."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path

import pytest

from pipeline.build.assemble import Build, build
from pipeline.build.css import MissingReferenceError, sri_hash
from pipeline.build.fingerprint import HashCache
from pipeline.build.textlinks import EncodingError
from pipeline.cli.main import main
from pipeline.localfs import collect_files
from tests.helpers import write_tree
from tests.installed import InstalledTool


def build_tree(tmp_path: Path, files: dict[str, bytes], **options: object) -> Build:
    root = write_tree(tmp_path / "static", files)
    return build(collect_files(root), prefix="static", cache=HashCache(None), **options)  # type: ignore[arg-type]


def text(result: Build, path: str, tmp_path: Path) -> str:
    data = result.bodies.get(path)
    return (data if data is not None else (tmp_path / "static" / path).read_bytes()).decode()


def name(result: Build, path: str) -> str:
    """The fingerprinted logical name (the key without the prefix)."""
    return result.manifest.files[path].key.removeprefix("static/")


def base(result: Build, path: str) -> str:
    return posixpath.basename(name(result, path))


APP = b"""\
import { util } from "./util.js";
import * as lib from "../lib/lib.mjs";
import "./side.js";
export * from "../lib/lib.mjs";
export { util as u } from './util.js';
const lazy = () => import("./lazy.js");
// import "./util.js" stays: a comment
const s = "import './util.js'", t = `import "./util.js" ${"./util.js"}`;
const r = /import "\\.\\/util.js"/;
"""


def test_every_specifier_form_points_at_the_fingerprinted_module(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {
        "js/app.js": APP, "js/util.js": b"export const util = 1;\n",
        "lib/lib.mjs": b"export const x = 2;\n", "js/side.js": b"window.side = 1;\n",
        "js/lazy.js": b"export default 3;\n",
    })
    app = text(result, "js/app.js", tmp_path)
    util, side, lazy = (base(result, f"js/{n}.js") for n in ("util", "side", "lazy"))
    lib = "../" + name(result, "lib/lib.mjs")
    assert app.splitlines()[:6] == [
        f'import {{ util }} from "./{util}";',
        f'import * as lib from "{lib}";',
        f'import "./{side}";',
        f'export * from "{lib}";',
        f"export {{ util as u }} from './{util}';",
        f'const lazy = () => import("./{lazy}");',
    ]
    # Comments, strings, templates and regular expressions keep their text.
    assert app.splitlines()[6:] == APP.decode().splitlines()[6:]
    entry = result.manifest.files["js/app.js"]
    assert entry.hash == hashlib.sha256(app.encode()).hexdigest()
    assert entry.integrity == sri_hash(app.encode())
    assert re.fullmatch(rf"js/app\.{entry.hash[:12]}\.js", name(result, "js/app.js"))


def test_query_and_fragment_are_kept(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {"a.js": b'import "./b.js?v=1#x";', "b.js": b""})
    assert text(result, "a.js", tmp_path) == f'import "./{base(result, "b.js")}?v=1#x";'


def test_static_url_path_specifiers_follow_the_setting(tmp_path: Path) -> None:
    files = {"js/app.js": b'import "/assets/lib/x.js"; import "/static/lib/x.js";',
             "lib/x.js": b"export {};"}
    result = build_tree(tmp_path, files, static_url_path="/assets")
    x = "../" + name(result, "lib/x.js")
    # /static/ is some other route of the site once the app serves its folder at /assets.
    assert text(result, "js/app.js", tmp_path) == f'import "{x}"; import "/static/lib/x.js";'


NOT_OURS = (b'import "lit"; import "lit/x.js"; import "https://cdn.example/x.js";\n'
            b'import "//cdn.example/x.js"; import "/api/x.js"; import(`./x.js`);\n'
            b'import("./" + name); import("data:text/javascript,1");\n')


def test_bare_names_urls_and_computed_imports_are_left_alone(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {"a.js": NOT_OURS, "x.js": b""})
    assert text(result, "a.js", tmp_path).encode() == NOT_OURS
    assert not result.warnings


def test_an_import_cycle_is_hashed_as_a_group(tmp_path: Path) -> None:
    files = {"a.js": b'import { b } from "./b.js"; export const a = 1;',
             "b.js": b'import { a } from "./a.js"; import "./c.js"; export const b = 2;',
             "c.js": b"export const c = 3;"}
    first = build_tree(tmp_path / "one", files)
    a, b = name(first, "a.js"), name(first, "b.js")
    assert a.split(".")[1] == b.split(".")[1]  # one group hash
    assert f'"./{b}"' in text(first, "a.js", tmp_path / "one")
    assert f'"./{a}"' in text(first, "b.js", tmp_path / "one")
    # A change below the cycle renames every member.
    second = build_tree(tmp_path / "two", {**files, "c.js": b"export const c = 4;"})
    assert name(second, "a.js") != a and name(second, "b.js") != b


def test_a_changed_dependency_renames_its_importers(tmp_path: Path) -> None:
    files = {"js/app.js": b'import "./mid.js";', "js/mid.js": b'import "../lib/dep.js";',
             "lib/dep.js": b"export const v = 1;", "js/other.js": b"export {};"}
    first = build_tree(tmp_path / "one", files)
    again = build_tree(tmp_path / "again", files)
    changed = build_tree(tmp_path / "two", {**files, "lib/dep.js": b"export const v = 2;"})
    assert again.manifest.files == first.manifest.files  # the same bytes, the same names
    for path in ("lib/dep.js", "js/mid.js", "js/app.js"):
        assert name(changed, path) != name(first, path), path
    assert name(changed, "js/other.js") == name(first, "js/other.js")
    assert base(changed, "js/mid.js") in text(changed, "js/app.js", tmp_path / "two")


MISSING = b'import "./ok.js";\n\nimport { x } from "./gone.js";\n// import "./also-gone.js"\n'


def test_a_missing_module_stops_a_strict_build_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(MissingReferenceError) as info:
        build_tree(tmp_path, {"js/app.js": MISSING, "js/ok.js": b""})
    assert info.value.problems == (
        "js/app.js:3: './gone.js' points to 'js/gone.js', which is not in the static folder",
    )


def test_a_missing_module_is_a_warning_when_not_strict(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {"js/app.js": MISSING, "js/ok.js": b""}, strict=False)
    app = text(result, "js/app.js", tmp_path)
    assert app == MISSING.decode().replace("./ok.js", "./" + base(result, "js/ok.js"))
    assert result.warnings == (
        "js/app.js:3: './gone.js' points to 'js/gone.js', which is not in the static folder",
    )


def test_deploy_refuses_a_missing_module_before_uploading(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    static = write_tree(tmp_path / "static", {"js/app.js": MISSING, "js/ok.js": b"",
                                              "img/a.png": b"png"})
    target = tmp_path / "cdn"
    code = main(["--static-dir", str(static), "--target-dir", str(target), "--no-hash-cache",
                 "--manifest", str(tmp_path / "m.json"), "--no-assets"])
    assert code == 2
    err = capsys.readouterr().err
    assert "js/app.js:3: './gone.js'" in err and "Traceback" not in err
    assert not target.exists() or not any(target.rglob("*.*"))


# --- source-map directives -------------------------------------------------------------------

MAP = b'{"version":3,"sources":[],"mappings":"AAAA"}'


def test_a_directive_after_code_on_the_same_line_is_rewritten(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {"app.js": b"var x; //# sourceMappingURL=app.js.map\n",
                                   "app.js.map": MAP})
    assert text(result, "app.js", tmp_path) == \
        f"var x; //# sourceMappingURL={base(result, 'app.js.map')}\n"


def test_a_directive_line_inside_a_template_literal_is_program_data(tmp_path: Path) -> None:
    source = (b"const banner = `first line\n//# sourceMappingURL=app.js.map\nlast line`;\n"
              b"console.log(banner);\n")
    result = build_tree(tmp_path, {"app.js": source, "app.js.map": MAP})
    assert text(result, "app.js", tmp_path).encode() == source
    assert not result.warnings


def test_a_css_directive_inside_a_content_string_is_page_text(tmp_path: Path) -> None:
    source = b'a::after { content: "/*# sourceMappingURL=gone.css.map */" }'
    result = build_tree(tmp_path, {"a.css": source})
    assert text(result, "a.css", tmp_path).encode() == source
    assert not result.warnings


def test_a_directive_followed_by_code_is_not_one(tmp_path: Path) -> None:
    source = b"a();\n//# sourceMappingURL=app.js.map\nb();\n"
    result = build_tree(tmp_path, {"app.js": source, "app.js.map": MAP})
    assert text(result, "app.js", tmp_path).encode() == source


def test_a_module_with_a_map_and_imports_names_both(tmp_path: Path) -> None:
    result = build_tree(tmp_path, {
        "app.js": b'import "./u.js";\n//# sourceMappingURL=app.js.map',
        "app.js.map": json.dumps({"version": 3, "sources": ["u.js"], "mappings": ""}).encode(),
        "u.js": b"export {};"})
    assert text(result, "app.js", tmp_path) == (
        f'import "./{base(result, "u.js")}";\n//# sourceMappingURL={base(result, "app.js.map")}')
    # u.js names nothing, so its name is stable and the map may point at it.
    assert json.loads(text(result, "app.js.map", tmp_path))["sources"] == [base(result, "u.js")]


# --- encodings -------------------------------------------------------------------------------

LATIN1 = "a::before { content: \"caf\u00e9\" }".encode("latin-1")


def test_css_that_is_not_utf8_stops_a_strict_build(tmp_path: Path) -> None:
    with pytest.raises(EncodingError, match=r"css/old\.css: byte 0xe9 at offset 25"):
        build_tree(tmp_path, {"css/old.css": LATIN1, "js/old.js": b"ok();"})


def test_css_and_js_that_are_not_utf8_are_warned_and_kept_when_not_strict(
        tmp_path: Path) -> None:
    js = "alert('\u00e9');".encode("latin-1")
    result = build_tree(tmp_path, {"css/old.css": LATIN1, "js/old.js": js}, strict=False)
    assert result.warnings == (
        "css/old.css: byte 0xe9 at offset 25 is not UTF-8: uploaded as it is, served as "
        "charset=utf-8",
        "js/old.js: byte 0xe9 at offset 7 is not UTF-8: uploaded as it is, served as "
        "charset=utf-8",
    )
    assert text_bytes(result, "css/old.css", tmp_path) == LATIN1


def text_bytes(result: Build, path: str, tmp_path: Path) -> bytes:
    data = result.bodies.get(path)
    return data if data is not None else (tmp_path / "static" / path).read_bytes()


# --- the installed command, from a foreign project ----------------------------------------


def test_installed_deploy_rewrites_modules_and_refuses_a_missing_one(
        installed: InstalledTool, project: Path) -> None:
    static = project / "static"
    write_tree(static, {
        "js/main.js": b'import { u } from "./util.js";\nimport "/static/lib/x.js";\n',
        "js/util.js": b"export const u = 1;\n", "lib/x.js": b"export {};\n"})
    # The import map's key in the table the deploy reads is accepted.
    (project / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nimportmap = { app = "js/main.js" }\n')
    result = installed.run("cdn-deploy", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    files = json.loads((project / "build" / "cdn-manifest.json").read_text())["files"]
    main_js = (project / "build" / "cdn" / files["js/main.js"]["key"]).read_text()
    assert main_js == (f'import {{ u }} from "./{posixpath.basename(files["js/util.js"]["key"])}";'
                       f'\nimport "../{files["lib/x.js"]["key"].removeprefix("static/")}";\n')

    (static / "js" / "late.js").write_bytes(b'\n\nexport * from "./gone.js";\n')
    before = sorted((project / "build" / "cdn").rglob("*"))
    refused = installed.run("cdn-deploy", cwd=project)
    assert refused.returncode == 2
    assert "js/late.js:3: './gone.js' points to 'js/gone.js'" in refused.stderr
    assert refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    assert sorted((project / "build" / "cdn").rglob("*")) == before


def test_redeploy_after_a_dependency_changed_renames_the_importer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    static = write_tree(tmp_path / "static", {"js/app.js": b'import { v } from "./dep.js";\n',
                                              "js/dep.js": b"export const v = 1;\n"})
    target, manifest_path = tmp_path / "cdn", tmp_path / "m.json"
    argv = ["--static-dir", str(static), "--target-dir", str(target), "--manifest",
            str(manifest_path), "--no-assets"]

    def deployed() -> dict[str, str]:
        assert main(argv) == 0, capsys.readouterr().err
        files = json.loads(manifest_path.read_text())["files"]
        return {path: files[path]["key"] for path in ("js/app.js", "js/dep.js")}

    first = deployed()
    (static / "js" / "dep.js").write_bytes(b"export const v = 2;\n")
    second = deployed()
    assert second["js/app.js"] != first["js/app.js"]
    app = (target / second["js/app.js"]).read_text()
    assert app == f'import {{ v }} from "./{posixpath.basename(second["js/dep.js"])}";\n'
    assert (target / first["js/app.js"]).is_file()  # pages cached with the old URL still load


def test_the_static_url_path_flag_decides_which_root_specifiers_are_ours(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    static = write_tree(tmp_path / "static", {
        "js/app.js": b'import "/assets/lib/x.js";\nimport "/static/lib/x.js";\n',
        "lib/x.js": b"export {};\n"})
    target, manifest_path = tmp_path / "cdn", tmp_path / "m.json"
    code = main(["--static-dir", str(static), "--target-dir", str(target), "--manifest",
                 str(manifest_path), "--no-assets", "--static-url-path", "/assets"])
    assert code == 0, capsys.readouterr().err
    files = json.loads(manifest_path.read_text())["files"]
    app = (target / files["js/app.js"]["key"]).read_text()
    x = files["lib/x.js"]["key"].removeprefix("static/")
    assert app == f'import "../{x}";\nimport "/static/lib/x.js";\n'
