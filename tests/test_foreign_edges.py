"""Small promises of the real commands, checked from someone else's project folder.

Each test runs ``deploy.py`` as a subprocess with only the flags a user would type, in a tmp
folder with its own ``static/`` (the pattern of ``tests/test_foreign_project.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_tree
from tests.test_foreign_project import FILES, assert_clean_error, deploy_py


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "their-project"
    write_tree(project / "static", FILES)
    return project


def tree(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders), relative to it."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


# --- a dry run writes nothing anywhere ----------------------------------------------------

def test_a_dry_run_to_a_new_target_folder_creates_nothing(project: Path) -> None:
    before = tree(project)
    result = deploy_py("--dry-run", "--target-dir", "new/cdn", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Dry run: would upload 4 of 4 files" in result.stdout
    assert tree(project) == before  # neither new/ nor new/cdn/ nor build/
    real = deploy_py("--target-dir", "new/cdn", cwd=project)
    assert real.returncode == 0, real.stderr
    assert (project / "new" / "cdn" / "static" / "manifest.json").is_file()


def test_a_target_folder_that_cannot_be_created_is_exit_2_for_a_dry_run_too(
    project: Path
) -> None:
    (project / "NOTES").write_text("a file where the target's parent would be")
    before = tree(project)
    for flags in (["--dry-run"], []):
        result = deploy_py(*flags, "--target-dir", "NOTES/cdn", cwd=project)
        assert_clean_error(result, 2, "cannot create target folder 'NOTES/cdn'")
        assert tree(project) == before


# --- -q: no progress or notes; the result, warnings and errors remain ---------------------

def test_quiet_keeps_the_result_and_warnings_and_drops_every_progress_line(
    project: Path
) -> None:
    from PIL import Image

    Image.new("RGB", (640, 480), "teal").save(project / "static" / "img" / "photo.jpg")
    (project / "static" / "css" / "broken.css").write_text("a { background: url(gone.png) }\n")
    flags = ["--no-strict", "--variants", "--variant-widths", "320", "--variant-formats", "webp",
             "--variant-include", "**/*.jpg"]
    result = deploy_py(*flags, "-q", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deployed 6 files to local folder 'build/cdn': ")
    warnings = ["warning: css/broken.css:1: 'gone.png' points to 'css/gone.png', which is not in "
                "the static folder"]
    assert result.stderr.splitlines() == warnings  # no plan, variant or upload lines
    (project / "static" / "js" / "app.js").write_text("console.log(2);\n")
    loud = deploy_py(*flags, cwd=project)  # the same lines exist without -q
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.startswith("Using the embedded default")
    assert "6 files: 1 to upload" in loud.stderr and "image variants: " in loud.stderr
    assert set(warnings) <= set(loud.stderr.splitlines())
