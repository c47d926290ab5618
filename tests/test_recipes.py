"""docs/precompressed.md shows the configs the end-to-end tests run, and no other.

Every line of its nginx and Caddy blocks must be a line of a config that
``site/cdn_servers.py`` renders (the ones tests/e2e/test_precompressed_nginx.py serves
with), with the document's placeholders; every list of extensions in it must be the
deploy's compressible types, so a type added to the table fails here until the
recipes follow.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "precompressed.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXTENSION_LIST = re.compile(r"\\\.\((css\|[a-z|]+)\)\$")


def load_cdn_servers() -> Any:
    spec = importlib.util.spec_from_file_location("recipe_cdn_servers",
                                                  ROOT / "site" / "cdn_servers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def lines(text: str) -> set[str]:
    """Stripped lines that say something (no blanks, no comments)."""
    return {line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")}


def rendered() -> dict[str, set[str]]:
    """The tested configs, rendered with the document's placeholders, by block language."""
    servers = load_cdn_servers()
    work = Path("/var/lib/nginx")
    nginx = (servers.s3_cdn_conf(work, listen="80", origin="S3_HOST", bucket="BUCKET")
             + servers.folder_cdn_conf(work, listen="80", root="/srv/cdn"))
    caddy = servers.caddyfile(listen="cdn.example.com", root="/srv/cdn")
    return {"nginx": lines(nginx), "caddyfile": lines(caddy)}


def test_every_config_line_the_recipes_show_is_one_the_tests_run() -> None:
    tested = rendered()
    shown: dict[str, set[str]] = {"nginx": set(), "caddyfile": set()}
    for language, body in BLOCK.findall(RECIPES.read_text()):
        if language in shown:
            shown[language] |= lines(body)
    for language, text in shown.items():
        assert text - tested[language] == set(), language
    # Not vacuous: the lines that do the work are among those checked.
    assert {"brotli_static on;", "gzip_static on;", "error_page 403 404 = @identity;",
            "proxy_pass http://S3_HOST/BUCKET$cdn_key$cdn_encoding_suffix;"} <= shown["nginx"]
    assert "precompressed br gzip" in shown["caddyfile"]


def test_every_extension_list_is_the_deploys_compressible_types() -> None:
    expected = "|".join(load_cdn_servers().PRECOMPRESSED_EXTENSIONS)
    found = EXTENSION_LIST.findall(RECIPES.read_text())
    assert len(found) == 3  # nginx, Caddy, Cloudflare
    assert set(found) == {expected}
    assert {"css", "js", "svg", "json", "map", "wasm"} <= set(expected.split("|"))
