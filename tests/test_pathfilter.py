"""gitignore-like --include/--exclude globs over logical paths, and the walk that applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.localfs import scan_files
from pipeline.pathfilter import PathFilter, compile_pattern
from tests.helpers import write_tree


@pytest.mark.parametrize(("pattern", "path", "is_dir", "expected"), [
    ("*.psd", "a.psd", False, True),
    ("*.psd", "img/raw/a.psd", False, True),          # no slash: any depth
    ("*.psd", "a.psd.png", False, False),
    ("img/*.png", "img/a.png", False, True),
    ("img/*.png", "img/x/a.png", False, False),       # * stays within one folder
    ("img/**/*.png", "img/a.png", False, True),       # ** may be no folder at all
    ("img/**/*.png", "img/x/y/a.png", False, True),
    ("**/drafts", "a/b/drafts", True, True),
    ("drafts/", "drafts", False, False),              # trailing slash: folders only
    ("drafts/", "x/drafts/notes.txt", False, True),   # a matched folder takes its contents
    ("/top.txt", "top.txt", False, True),             # leading slash: anchored
    ("/top.txt", "x/top.txt", False, False),
    ("img/**", "img/a/b.png", False, True),
    ("img/**", "img", True, False),
    ("file?.txt", "file1.txt", False, True),
    ("file?.txt", "file10.txt", False, False),
    ("[!a]*.js", "b.js", False, True),
    ("[!a]*.js", "a.js", False, False),
    ("caf\u00e9.png", "caf\u00e9.png", False, True),
    ("a+b (1).png", "a+b (1).png", False, True),      # regex characters are literal
])
def test_pattern_matching(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert compile_pattern(pattern).matches(path, is_dir=is_dir) is expected


@pytest.mark.parametrize("pattern", ["", "/", " *.psd", "*.psd ", "a\nb"])
def test_bad_patterns_are_config_errors(pattern: str) -> None:
    with pytest.raises(ConfigError, match="pattern"):
        compile_pattern(pattern)


def test_include_then_exclude() -> None:
    filters = PathFilter.from_globs(include=["img/**"], exclude=["*.psd"])
    assert filters.excluded_by("img/a.png", is_dir=False) is None
    assert filters.excluded_by("img/a.psd", is_dir=False) == "excluded by '*.psd'"
    assert filters.excluded_by("js/a.js", is_dir=False) == "matches no include pattern"
    assert filters.excluded_by("js", is_dir=True) is None  # folders are walked for includes


def test_the_walk_reports_what_it_leaves_out_and_prunes_excluded_folders(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {
        "a.png": b"a", "node_modules/x/y.js": b"y", ".git/config": b"c", "b.txt~": b"b",
        "keep/c.css": b"c",
    })
    scan = scan_files(root, PathFilter.from_globs(exclude=["node_modules"]))
    assert [f.logical_path for f in scan.files] == ["a.png", "keep/c.css"]
    assert {i.logical_path: i.reason for i in scan.ignored} == {
        ".git": "dotfile", "b.txt~": "OS or editor junk",
        "node_modules/": "excluded by 'node_modules'",
    }
