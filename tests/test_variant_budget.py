"""--variant-budget: a deploy encodes what fits, publishes variants for the images whose every
variant is stored and originals for the rest, says how many are left, and the next run
continues from what the target already holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string
from PIL import Image

from pipeline import CDN
from pipeline.cli.main import main
from tests.helpers import run_json
from tests.installed import ROOT, InstalledTool
from tests.test_pictures import parse

CDN_BASE = "https://cdn.example.com"
WIDTHS = ["--variants", "--variant-widths", "320,640"]
#: A real photo (2560x1600): encoding its variants takes seconds, whatever the machine.
BIG_PHOTO = ROOT / "static" / "img" / "photos" / "forest-path.jpg"


def photo(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste(colour, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image.save(path, quality=90)


def deploy(capsys: Any, tmp_path: Path, *extra: str) -> dict[str, Any]:
    """Deploy ``tmp_path/static`` to the folder ``tmp_path/out`` in-process; its JSON."""
    code, out = run_json(capsys, ["--target-dir", str(tmp_path / "out"), "--static-dir",
                                  str(tmp_path / "static"), *WIDTHS, *extra])
    assert code == 0, out
    return out


def page(manifest: Path, *names: str) -> str:
    """A production page with picture() for each image, rendered from ``manifest``."""
    app = Flask(__name__, static_folder=None)
    app.config.update(CDN_URL=CDN_BASE, CDN_MANIFEST=str(manifest), CDN_ENABLED=True)
    CDN(app)
    template = "".join(f"{{{{ picture({name!r}, alt={name!r}) }}}}" for name in names)
    with app.test_request_context("/"):
        return render_template_string(f"<!doctype html><main>{template}</main>")


def test_budget_zero_publishes_originals_for_new_images_and_the_next_run_completes(
        capsys: Any, tmp_path: Path) -> None:
    photo(tmp_path / "static" / "img" / "old.jpg", (700, 450), (200, 40, 40))
    first = deploy(capsys, tmp_path)
    assert (first["encoded"], first["images_left"]) == (6, 0)
    photo(tmp_path / "static" / "img" / "new.jpg", (600, 400), (40, 40, 200))
    second = deploy(capsys, tmp_path, "--variant-budget", "0")
    # Nothing encoded; the new image is published with its original and said to be left.
    assert (second["encoded"], second["variant_uploads"]) == (0, 0)
    assert (second["images_left"], second["variants_left"], second["new_release"]) == (1, 6, True)
    manifest_path = Path(second["manifest"])
    files = json.loads(manifest_path.read_text())["files"]
    assert len(files["img/old.jpg"]["variants"]) == 6
    new = files["img/new.jpg"]
    assert (new["width"], new["height"], "variants" in new) == (600, 400, False)
    published = json.loads((tmp_path / "out" / "static" / "manifest.json").read_text())
    assert published["files"] == files

    # One page, both kinds: a <picture> with sources for the first, a plain sized <img> of the
    # original for the second.
    # (the DPR cap's <source media> of a lazy picture left aside: tests/test_first_paint.py)
    tags = [(tag, attrs) for tag, attrs in parse(page(manifest_path, "img/old.jpg",
                                                      "img/new.jpg")).tags
            if "media" not in attrs]
    names = [tag for tag, _ in tags]
    assert names == ["main", "picture", "source", "source", "img", "img"], tags
    assert [attrs["type"] for tag, attrs in tags if tag == "source"] == ["image/avif",
                                                                         "image/webp"]
    old_img, new_img = (attrs for tag, attrs in tags if tag == "img")
    assert old_img["src"].startswith(f"{CDN_BASE}/static/_v/") and old_img["srcset"]
    assert new_img["src"] == f"{CDN_BASE}/{new['key']}"
    assert (new_img["width"], new_img["height"], new_img["alt"]) == ("600", "400", "img/new.jpg")
    assert "srcset" not in new_img
    assert (tmp_path / "out" / new["key"]).is_file()  # the original it names is published

    third = deploy(capsys, tmp_path)  # no budget: the rest, and only the rest
    assert (third["encoded"], third["variant_uploads"], third["images_left"]) == (6, 6, 0)
    files = json.loads(manifest_path.read_text())["files"]
    assert len(files["img/new.jpg"]["variants"]) == 6
    for variant in files["img/new.jpg"]["variants"]:
        assert (tmp_path / "out" / variant["key"]).stat().st_size == variant["size"]


@pytest.mark.slow  # a big image by design: 15 variants of a 2560 px photo (~4 s of encoding)
def test_a_budget_stops_the_image_in_flight_and_the_next_run_encodes_only_the_rest(
        capsys: Any, tmp_path: Path) -> None:
    static = tmp_path / "static" / "img"
    static.mkdir(parents=True)
    shutil.copyfile(BIG_PHOTO, static / "big.jpg")
    widths = ["--variant-widths", "320,640,960,1280,1920"]
    cut = deploy(capsys, tmp_path, *widths, "--variant-budget", "1s")
    # Worker start-up alone takes a good part of a second: 15 variants of a 2560 px photo
    # never fit. The deploy still publishes, with the original.
    assert (cut["images_left"], cut["new_release"]) == (1, True)
    assert cut["variants_left"] == 15 - cut["variant_uploads"]
    big = json.loads(Path(cut["manifest"]).read_text())["files"]["img/big.jpg"]
    assert (big["width"], big["height"], "variants" in big) == (2560, 1600, False)
    stored = sorted((tmp_path / "out" / "static" / "_v").rglob("*.*"))
    assert len(stored) == cut["variant_uploads"]  # variants finished before the stop
    for path in stored:  # each complete: it decodes
        with Image.open(path) as image:
            image.load()
    assert not list((tmp_path / "build").rglob("*.tmp"))  # the killed worker's files are gone

    rest = deploy(capsys, tmp_path, *widths)
    assert rest["images_left"] == 0
    assert rest["encoded"] + cut["variant_uploads"] == 15  # none encoded twice
    variants = json.loads(Path(rest["manifest"]).read_text())["files"]["img/big.jpg"]["variants"]
    assert len(variants) == 15


def test_the_summary_says_what_is_left(capsys: Any, tmp_path: Path) -> None:
    photo(tmp_path / "static" / "a.jpg", (500, 300), (1, 2, 3))
    code = main(["--target-dir", str(tmp_path / "out"), "--static-dir", str(tmp_path / "static"),
                 *WIDTHS, "--variant-budget", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert ("1 image(s) left without variants (6 variant(s), first: a.jpg): the "
            "--variant-budget of 0 ran out") in out


@pytest.mark.parametrize("value", ["5", "soon", "-1m", "1.5h", ""])
def test_a_bad_budget_exits_2_before_anything_is_written(capsys: Any, tmp_path: Path,
                                                         value: str) -> None:
    photo(tmp_path / "static" / "a.jpg", (500, 300), (1, 2, 3))
    code = main(["--target-dir", str(tmp_path / "out"), "--static-dir", str(tmp_path / "static"),
                 *WIDTHS, "--variant-budget", value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "--variant-budget" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "build").exists()


def test_budget_from_the_table_and_the_environment_in_show_config(
        capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nvariant-budget = "90s"\n')
    assert main(["--show-config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]["variant-budget"]
    assert shown["value"] == "90s" and "pyproject.toml" in shown["source"]
    monkeypatch.setenv("CDN_VARIANT_BUDGET", "15m")
    assert main(["--show-config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]["variant-budget"]
    assert shown == {"value": "15m", "source": "env CDN_VARIANT_BUDGET"}
    monkeypatch.setenv("CDN_VARIANT_BUDGET", "ten minutes")
    assert main(["--show-config"]) == 2
    assert "env CDN_VARIANT_BUDGET" in capsys.readouterr().err


def test_installed_budget_then_variants_command_then_deploy_encodes_nothing(
        installed: InstalledTool, tmp_path: Path) -> None:
    """As a user runs it: a budget of 0 publishes originals at once, the variants command
    (publishing nothing) encodes them, and the next deploy finds them all."""
    project = tmp_path / "their-project"
    photo(project / "static" / "img" / "a.jpg", (700, 450), (200, 40, 40))
    photo(project / "static" / "img" / "b.png", (500, 300), (40, 200, 40))
    (project / "pyproject.toml").write_text(
        '[tool.flask-cdn-pipeline]\nvariants = true\nvariant-widths = [320, 640]\n'
        'target-dir = "out"\n')
    quick = installed.run("cdn-deploy", "--variant-budget", "0", "--json", cwd=project)
    assert quick.returncode == 0, quick.stderr
    assert json.loads(quick.stdout)["images_left"] == 2
    release = (project / "out" / "static" / "manifest.json").read_bytes()
    encode = installed.run("cdn-deploy", "variants", "--json", cwd=project)
    assert encode.returncode == 0 and "Traceback" not in encode.stderr, encode.stderr
    made = json.loads(encode.stdout)
    assert (made["encoded"], made["uploaded"], made["images_left"]) == (12, 12, 0)
    assert (project / "out" / "static" / "manifest.json").read_bytes() == release  # unpublished
    final = installed.run("cdn-deploy", "--json", cwd=project)
    assert final.returncode == 0, final.stderr
    done = json.loads(final.stdout)
    assert (done["encoded"], done["variant_uploads"], done["images_left"]) == (0, 0, 0)
    files = json.loads((project / "out" / "static" / "manifest.json").read_text())["files"]
    assert all(len(files[name]["variants"]) == 6 for name in ("img/a.jpg", "img/b.png"))
