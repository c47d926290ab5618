"""Precompressed representations (pipeline.build.compress): which types, which bytes, which kept.

Each test checks what a client receives: the sibling decodes to the identity bytes, the bytes
are the same on every run (a re-deploy must not see a changed sibling), and a sibling that
saves less than 5% is not kept.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import brotli
import pytest

from pipeline.build import compress
from tests.test_extras import run_python

#: Repetitive enough to compress well with both encoders.
CSS = b"".join(b".c%d { color: #%06x; margin: 0 auto; }\n" % (i, i * 977) for i in range(400))


@pytest.mark.parametrize("path", ["app.css", "a/app.js", "m.mjs", "app.js.map", "data.json",
                                  "logo.svg", "feed.xml", "mod.wasm", "font.ttf", "font.otf",
                                  "readme.txt", "page.html", "notes.md", "site.webmanifest"])
def test_text_scripts_json_svg_xml_wasm_and_raw_fonts_are_compressible(path: str) -> None:
    assert compress.compressible(path)


@pytest.mark.parametrize("path", ["photo.jpg", "photo.png", "photo.webp", "photo.avif", "a.gif",
                                  "font.woff", "font.woff2", "doc.pdf", "clip.mp4", "song.mp3",
                                  "bundle.zip", "bundle.tar.gz", "unknown.bin", "noext"])
def test_images_compressed_fonts_media_archives_and_unknown_types_are_not(path: str) -> None:
    assert not compress.compressible(path)


def test_each_kept_representation_decodes_to_the_identity_bytes() -> None:
    kept = {e.encoding: e.data for e in compress.encode(CSS)}
    assert set(kept) == {"br", "gzip"}
    assert brotli.decompress(kept["br"]) == CSS
    assert gzip.decompress(kept["gzip"]) == CSS
    assert len(kept["br"]) < len(kept["gzip"]) < len(CSS)


def test_the_bytes_are_deterministic_gzip_has_no_mtime_and_no_name() -> None:
    first, second = compress.encode(CSS), compress.encode(bytes(CSS))
    assert first == second
    gz = dict((e.encoding, e.data) for e in first)["gzip"]
    assert gz[4:8] == b"\0\0\0\0"          # MTIME (RFC 1952 2.3): zero
    assert gz[3] & 0x08 == 0                # FLG.FNAME unset: no file name in the header
    assert gz[8] == 2                       # XFL 2: maximum compression (level 9)


def test_brotli_is_quality_11_and_gzip_level_9() -> None:
    kept = {e.encoding: e.data for e in compress.encode(CSS)}
    assert kept["br"] == brotli.compress(CSS, quality=11)
    assert kept["gzip"] == gzip.compress(CSS, compresslevel=9, mtime=0)


def test_a_representation_is_kept_only_at_95_percent_or_less() -> None:
    assert compress.worth_keeping(identity_size=100, compressed_size=95)
    assert not compress.worth_keeping(identity_size=100, compressed_size=96)
    assert not compress.worth_keeping(identity_size=0, compressed_size=20)
    assert compress.encode(os.urandom(4096)) == ()   # random bytes do not shrink
    assert compress.encode(b"") == ()                # a header alone is larger than nothing


def test_only_the_asked_encodings_are_produced() -> None:
    assert [e.encoding for e in compress.encode(CSS, encodings=("gzip",))] == ["gzip"]


def test_without_brotli_only_gzip_is_produced(tmp_path: Path) -> None:
    """The ``[compress]`` extra missing (its import fails): gzip still works, br is not offered."""
    code = ("import json, gzip\nfrom pipeline.build import compress\n"
            f"data = {CSS[:4000]!r}\n"
            "kept = compress.encode(data)\n"
            "print(json.dumps({'available': compress.brotli_available(),"
            " 'encodings': [e.encoding for e in kept],"
            " 'round_trip': gzip.decompress(kept[0].data) == data}))\n")
    result = run_python(["-c", code], cwd=tmp_path, blocked=("brotli",), shim=tmp_path / "shim")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"available": False, "encodings": ["gzip"],
                                         "round_trip": True}
