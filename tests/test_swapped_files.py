"""A file swapped for a symlink after the walk is never read through the link (issue 19,
item 1), and hard links to files outside the folder are refused.

The swaps happen at exact points of a real deploy: right after the walk (a hook on the
``scan_files`` the deploy's folders are walked with), or right after the victim was hashed
and before it is uploaded (a hook on the build's hashing; with the bucket listed first, the
upload starts at once). Either way the deploy fails naming the file and no stored object
holds the link target's bytes. A last test races a swapping thread against the installed
``cdn-deploy``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.build import assemble, mounts
from pipeline.errors import FileChangedError, UnsafePathError
from pipeline.localfs import LocalFile, collect_files
from pipeline.walked import open_walked
from tests.helpers import S3Env, run_json, target_args, write_tree
from tests.imagecraft import progressive_jpeg
from tests.installed import InstalledTool

SECRET = b"AWS_SECRET_ACCESS_KEY=never-on-a-cdn\n"
FILES = {"img/a.png": b"\x89PNG\r\n\x1a\n a", "img/b.png": b"\x89PNG\r\n\x1a\n b",
         "js/app.js": b"console.log(1);\n", "css/site.css": b"body { color: red }\n"}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the static folder, and a folder holding it under the victims' names."""
    outside = write_tree(tmp_path / "outside", {name.split("/")[-1]: SECRET for name in FILES})
    return outside


def swap_file(static: Path, logical: str, secret: Path) -> None:
    """Replace the file by a symlink to the secret, atomically (rename over it)."""
    link = static / (logical + ".swap")
    link.symlink_to(secret / logical.split("/")[-1])
    os.replace(link, static / logical)


def swap_folder(static: Path, logical: str, secret: Path) -> None:
    """Replace the file's folder by a symlink to a folder with the same names."""
    folder = static / logical.split("/")[0]
    os.rename(folder, folder.with_name(".moved"))
    folder.symlink_to(secret, target_is_directory=True)


SWAPS: dict[str, Callable[[Path, str, Path], None]] = {"file": swap_file, "folder": swap_folder}


def after_walk(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    """Swap once the deploy's walk (pipeline.build.mounts walks every folder) returns."""
    real = mounts.scan_files

    def walked(*args: Any, **kwargs: Any) -> Any:
        scan = real(*args, **kwargs)
        swap()
        return scan

    monkeypatch.setattr(mounts, "scan_files", walked)


def after_hashing(monkeypatch: pytest.MonkeyPatch, victim: str, swap: Callable[[], None]) -> None:
    real = assemble._hash_local

    def hashed(item: LocalFile, *rest: Any) -> str:
        digest = real(item, *rest)
        if item.logical_path == victim:
            swap()
        return digest

    monkeypatch.setattr(assemble, "_hash_local", hashed)


def folder_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def assert_refused(code: int, result: dict[str, Any], victim: str, kind: str) -> None:
    """Exit 1 or 2, one line naming the victim (or, for a folder, a file in it)."""
    assert code in (1, 2), result
    error = str(result["error"])
    folder = victim.split("/")[0]
    names = [victim] if kind == "file" else [n for n in FILES if n.startswith(folder + "/")]
    assert any(repr(name) in error for name in names) and "\n" not in error, error


def arm_swap(monkeypatch: pytest.MonkeyPatch, static: Path, victim: str, secret: Path, *,
             kind: str, when: str) -> None:
    """Swap ``victim`` (the way ``kind`` names) for a link to ``secret`` at the moment
    ``when`` names: once the walk is done, or once the file is hashed."""
    def swap() -> None:
        SWAPS[kind](static, victim, secret)

    if when == "after the walk":
        after_walk(monkeypatch, swap)
    else:
        after_hashing(monkeypatch, victim, swap)


@pytest.mark.parametrize("kind", sorted(SWAPS))
@pytest.mark.parametrize("when", ["after the walk", "after hashing"])
def test_a_swap_to_a_symlink_fails_a_folder_deploy_and_publishes_nothing_of_the_target(
    tmp_path: Path, secret: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, kind: str, when: str,
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    victim = "img/b.png"
    arm_swap(monkeypatch, static, victim, secret, kind=kind, when=when)
    code, result = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(static), "--manifest", str(tmp_path / "m.json")])
    assert_refused(code, result, victim, kind)
    # A folder is swapped in two steps (moved away, then the link made): an upload running
    # in between finds the file gone, which refuses the deploy as surely.
    allowed = ("symlink", "was removed") if kind == "folder" else ("symlink",)
    assert any(word in str(result["error"]) for word in allowed), result["error"]
    assert SECRET not in folder_bytes(tmp_path / "cdn")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("kind", sorted(SWAPS))
@pytest.mark.parametrize("when", ["after the walk", "after hashing"])
def test_a_swap_to_a_symlink_fails_an_s3_deploy_and_the_bucket_never_holds_the_target(
    s3: S3Env, tmp_path: Path, secret: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, kind: str, when: str,
) -> None:
    """No hash cache: files are read, the bucket is listed first and each verbatim file is
    uploaded as soon as it is hashed, so "after hashing" is the early-upload path."""
    static = write_tree(tmp_path / "static", FILES)
    victim = "img/b.png"
    arm_swap(monkeypatch, static, victim, secret, kind=kind, when=when)
    code, result = run_json(capsys, [*target_args(s3, tmp_path, static), "--no-hash-cache"])
    assert_refused(code, result, victim, kind)
    for key in s3.keys():
        assert s3.get(key)["Body"].read() != SECRET, key
    assert "static/manifest.json" not in s3.keys()


def test_a_file_swapped_after_the_walk_is_never_opened_through_the_link(
    tmp_path: Path, secret: Path,
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    files = {item.logical_path: item for item in collect_files(static)}
    swap_file(static, "img/a.png", secret)
    swap_folder(static, "js/app.js", secret)
    with pytest.raises(UnsafePathError, match=r"'img/a.png'.*symlink"):
        open_walked(files["img/a.png"])
    with pytest.raises(UnsafePathError, match=r"'js/app.js'.*symlink"):
        open_walked(files["js/app.js"], same_stamp=False)


def test_a_fifo_swapped_in_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    item = {i.logical_path: i for i in collect_files(static)}["img/a.png"]
    os.unlink(static / "img/a.png")
    os.mkfifo(static / "img/a.png")  # an open for reading would wait for a writer
    with pytest.raises(UnsafePathError, match=r"'img/a\.png'"):
        open_walked(item)


def test_a_file_replaced_or_rewritten_since_the_walk_is_not_hashed(tmp_path: Path) -> None:
    static = write_tree(tmp_path / "static", FILES)
    files = {item.logical_path: item for item in collect_files(static)}
    fresh = static / "img/new.png"
    fresh.write_bytes(b"another file, same folder")
    os.replace(fresh, static / "img/a.png")  # an editor's save: a new inode at the path
    with pytest.raises(FileChangedError, match=r"'img/a\.png' was replaced"):
        open_walked(files["img/a.png"])
    (static / "img/b.png").write_bytes(b"rewritten in place, longer than before")
    with pytest.raises(FileChangedError, match=r"'img/b\.png' was modified"):
        open_walked(files["img/b.png"])
    with open_walked(files["img/b.png"], same_stamp=False) as handle:  # uploads check bytes
        assert handle.read() == b"rewritten in place, longer than before"



def test_a_file_or_folder_removed_since_the_walk_is_a_changed_file_naming_it(
        tmp_path: Path) -> None:
    """Not an OSError that an upload loop retries and reports by key: a walked file that is
    gone (also for a moment, while its folder is swapped in two steps) is a changed folder."""
    static = write_tree(tmp_path / "static", FILES)
    files = {item.logical_path: item for item in collect_files(static)}
    (static / "js/app.js").unlink()
    with pytest.raises(FileChangedError, match=r"'js/app\.js' was removed"):
        open_walked(files["js/app.js"], same_stamp=False)
    os.rename(static / "img", static / ".moved")
    with pytest.raises(FileChangedError, match=r"'img/a\.png' was removed"):
        open_walked(files["img/a.png"])

# -- hard links --------------------------------------------------------------------------------

def test_a_hard_link_to_a_file_outside_is_refused_before_any_upload(
    tmp_path: Path, secret: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    os.link(secret / "a.png", static / "img" / "passwd.png")
    args = ["--target-dir", str(tmp_path / "cdn"), "--static-dir", str(static),
            "--manifest", str(tmp_path / "m.json")]
    code, result = run_json(capsys, args)
    assert code == 2, result
    assert "'img/passwd.png' (2 links, 1 here)" in result["error"]
    assert "--allow-hard-links" in result["error"]
    assert folder_bytes(tmp_path / "cdn") == []

    code, result = run_json(capsys, [*args, "--allow-hard-links"])  # the operator's decision
    assert code == 0, result
    assert SECRET in folder_bytes(tmp_path / "cdn")


def test_hard_links_whose_names_are_all_deployed_are_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    static = write_tree(tmp_path / "static", FILES)
    os.link(static / "img/a.png", static / "img/a-copy.png")
    (static / "alias.png").symlink_to(static / "img/a.png")  # the same name again, via a link
    code, result = run_json(capsys, ["--target-dir", str(tmp_path / "cdn"), "--static-dir",
                                     str(static), "--manifest", str(tmp_path / "m.json")])
    assert code == 0, result
    files = json.loads((tmp_path / "m.json").read_text())["files"]
    assert files["img/a-copy.png"]["hash"] == files["img/a.png"]["hash"] == (
        files["alias.png"]["hash"])


def test_the_installed_deploy_refuses_a_hard_link_from_outside(
    installed: InstalledTool, project: Path, tmp_path: Path,
) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    os.link(secret, project / "static" / "img" / "shadow.png")
    result = installed.run("cdn-deploy", "--target-dir", "out", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "'img/shadow.png' (2 links, 1 here)" in result.stderr
    assert not (project / "out").exists()


# -- a real race against the installed command -------------------------------------------------

def test_a_thread_swapping_a_file_and_a_symlink_never_gets_the_target_published(
    installed: InstalledTool, project: Path, tmp_path: Path,
) -> None:
    """What the report did with inotify: replace a static file by a link to a secret and
    back, over and over, while the deploy runs. Whatever each run sees, it either deploys
    the real bytes or fails cleanly; the secret is never in the target."""
    secret = tmp_path / "environ"
    secret.write_bytes(SECRET)
    static = project / "static"
    images = {f"img/{i:02d}.png": f"image {i}".encode() * 100 for i in range(40)}
    write_tree(static, images)
    victim, real = static / "img/17.png", images["img/17.png"]
    swaps = 0
    for run in range(3):
        stop = threading.Event()
        thread = threading.Thread(target=swap_until, args=(stop, victim, secret, real))
        thread.start()
        try:
            result = installed.run("cdn-deploy", "--target-dir", f"out{run}", "--no-hash-cache",
                                   cwd=project)
        finally:
            stop.set()
            thread.join()
        swaps += 1
        assert result.returncode in (0, 1, 2), result.stderr
        assert "Traceback" not in result.stderr
        stored = folder_bytes(project / f"out{run}")
        assert SECRET not in stored
        if result.returncode == 0:
            assert real in stored
        else:
            assert "img/17.png" in result.stderr, result.stderr
    assert swaps == 3


def swap_until(stop: threading.Event, victim: Path, secret: Path, real: bytes) -> None:
    """Replace ``victim`` by a link to ``secret`` and back until ``stop`` (bounded)."""
    link, copy = victim.with_name(".link"), victim.with_name(".copy")
    for _ in range(1_000_000):
        if stop.is_set():
            return
        link.symlink_to(secret)
        os.replace(link, victim)
        copy.write_bytes(real)
        os.replace(copy, victim)


def test_a_variant_is_never_made_from_an_image_swapped_in_after_the_walk(
    tmp_path: Path,
) -> None:
    """Variants are encoded from a descriptor open_walked gave (a path would follow the link:
    a private image elsewhere would come out resized under a public key)."""
    from pipeline.build.variant_codec import probe
    from pipeline.build.variants import VariantSettings

    static = tmp_path / "static"
    (static / "img").mkdir(parents=True)
    (static / "img/photo.jpg").write_bytes(progressive_jpeg((64, 48)))
    outside = tmp_path / "private.jpg"
    outside.write_bytes(progressive_jpeg((640, 480), (200, 10, 10)))
    item = collect_files(static)[0]
    assert probe(item, VariantSettings()).width == 64  # read through the descriptor
    swap = static / "img/.swap"
    swap.symlink_to(outside)
    os.replace(swap, static / "img/photo.jpg")
    with pytest.raises(UnsafePathError, match=r"'img/photo\.jpg'.*symlink"):
        probe(item, VariantSettings())
