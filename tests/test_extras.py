"""Install only what runs: the core works without the optional packages, and a missing one
names the extra to install.

A missing package is simulated in a fresh interpreter with a ``sitecustomize`` that puts
``None`` in ``sys.modules`` for it (what Python does for a module that cannot be imported).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_tree

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("boto3", "botocore", "PIL", "webassets", "flask_assets", "moto")


def run_python(args: list[str], *, cwd: Path, blocked: tuple[str, ...] = (),
               shim: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python with our tree first on the path and ``blocked`` modules made unimportable."""
    path = [str(ROOT)]
    if blocked:
        assert shim is not None
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(
            "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
        )
        path.insert(0, str(shim))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDN_"))}
    env.update({"PYTHONPATH": os.pathsep.join(path), "AWS_EC2_METADATA_DISABLED": "true"})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


#: Loaded by the commands that need them, never at start-up.
DEPLOY_MACHINERY = ("pipeline.manifest", "pipeline.build.css", "pipeline.release.publish",
                    "pipeline.storage", "pipeline.cli.commands", "concurrent.futures")
WEB_STACK = ("flask", "werkzeug", "jinja2")
AWS_STACK = ("boto3", "botocore", "s3transfer")

HELP = f"import runpy, sys\nsys.argv = ['deploy.py', '--help']\n" \
    f"try:\n    runpy.run_path({str(ROOT / 'deploy.py')!r}, run_name='__main__')\n" \
    "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"


def import_all(package: str) -> str:
    """Code that imports every module of ``package`` (found on disk, so none is forgotten)."""
    return (f"import importlib, pkgutil, {package} as package\n"
            "for info in pkgutil.iter_modules(package.__path__):\n"
            f"    importlib.import_module('{package}.' + info.name)\n")


#: A Flask app with the extension registered: what every app server does at start-up.
REGISTER_CDN = "from flask import Flask\nfrom pipeline import CDN\nCDN(Flask('app'))\n"

#: The layers, as a fresh interpreter sees them (the source-level rules are in
#: tests/test_layers.py). A name stands for the module and everything below it.
START_UPS = {
    "from pipeline import CDN": (
        "from pipeline import CDN",
        (*OPTIONAL, *AWS_STACK, "pipeline.cli", "pipeline.build.css", "pipeline.release.publish",
         "pipeline.images.views"),
    ),
    "CDN(app) and every flaskext module": (
        REGISTER_CDN + import_all("pipeline.flaskext"),
        (*AWS_STACK, "pipeline.cli", "pipeline.build.css", "pipeline.storage.s3"),
    ),
    "deploy.py --help": (HELP, (*OPTIONAL, *AWS_STACK, *WEB_STACK, *DEPLOY_MACHINERY)),
    "pipeline.manifest": (
        "import pipeline.manifest",
        ("pipeline.build", "pipeline.release", "pipeline.storage", "pipeline.cli",
         "pipeline.flaskext", *WEB_STACK, *AWS_STACK),
    ),
    "every storage module": (
        import_all("pipeline.storage"),
        ("pipeline.release", "pipeline.build", "pipeline.cli", "pipeline.flaskext",
         "pipeline.manifest", *WEB_STACK),
    ),
    "every build module": (
        import_all("pipeline.build"),
        ("pipeline.release", "pipeline.storage", "pipeline.cli", "pipeline.flaskext",
         *WEB_STACK, *AWS_STACK),
    ),
}


@pytest.mark.parametrize(("start", "not_loaded"), START_UPS.values(), ids=START_UPS.keys())
def test_start_up_loads_no_heavy_module_it_does_not_use(
    tmp_path: Path, start: str, not_loaded: tuple[str, ...]
) -> None:
    """A fresh interpreter: the Flask extension and ``deploy.py --help`` start without
    loading S3, image, bundle or deploy code (each is imported by the command using it),
    and no layer loads one above it."""
    probe = (
        "import importlib.util, sys, io, contextlib\n"
        # Every name must exist, so a renamed module fails here instead of passing silently.
        f"missing = [m for m in {not_loaded!r} if importlib.util.find_spec(m) is None]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in start.splitlines())
        + f"print(missing, sorted(m for m in {not_loaded!r} if any("
          "k == m or k.startswith(m + '.') for k in sys.modules)))"
    )
    result = run_python(["-c", probe], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


#: What only a deploy that uploads (or makes variants) runs: a re-deploy of unchanged files
#: never imports it, since compiling its frozen dataclasses at import is a fixed cost paid on
#: every run (the phase split made the warm re-run of 2,000 files 1.08x slower through it).
UPLOAD_PHASE = ("pipeline.release.transfer", "pipeline.release.early",
                "pipeline.release.variant_step", "pipeline.release.placeholder_step",
                "pipeline.release.confirm", "pipeline.release.markers",
                "pipeline.release.sibling_step", "pipeline.build.compress",  # only to compress
                "concurrent.futures",  # thread pools: only to hash or upload
                "pipeline.vitemanifest")  # only with a Vite build


@pytest.mark.parametrize("tree_record", ["kept", "removed"])
def test_a_no_change_re_deploy_loads_no_upload_or_variant_code(tmp_path: Path,
                                                                tree_record: str) -> None:
    """Answered from the tree record, or (a fresh checkout's case: no record that holds)
    through the full path, which finds every file unchanged."""
    project = tmp_path / "project"
    write_tree(project / "static", {"css/a.css": b"body{}", "img/x.png": b"\x89PNG x"})
    first = run_python([str(ROOT / "deploy.py"), "--no-assets"], cwd=project)
    assert first.returncode == 0, first.stderr
    uploaded = sorted(p.name for p in (project / "build" / "cdn").rglob("*") if p.is_file())
    records = list((project / "build").glob("*.tree"))
    assert len(records) == 1
    if tree_record == "removed":
        records[0].unlink()
    probe = (
        "import importlib.util, runpy, sys\n"
        f"missing = [m for m in {UPLOAD_PHASE!r} if importlib.util.find_spec(m) is None]\n"
        f"sys.argv = ['deploy.py', '--no-assets', '--json']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'deploy.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print(missing, sorted(m for m in {UPLOAD_PHASE!r} if m in sys.modules))\n"
    )
    again = run_python(["-c", probe], cwd=project)
    assert again.returncode == 0, again.stderr
    assert '"uploaded": 0' in again.stdout
    assert f'"from_tree_record": {"true" if tree_record == "kept" else "false"}' in again.stdout
    assert again.stdout.splitlines()[-1] == "[] []"
    assert sorted(p.name for p in (project / "build" / "cdn").rglob("*") if p.is_file()) == uploaded


def test_deploy_runs_with_runtime_dependencies_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_tree(project / "static", {"css/a.css": b"body{}", "img/x.png": b"\x89PNG x"})
    result = run_python(
        [str(ROOT / "deploy.py"), "--no-assets"],
        cwd=project,
        blocked=("PIL", "webassets", "flask_assets", "moto"),
        shim=tmp_path / "shim",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert list((project / "build" / "cdn" / "static" / "css").glob("a.*.css"))


def test_bundles_without_webassets_name_the_extra_and_exit_2(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_tree(project / "static", {"css/a.css": b"body{}"})
    (project / "assets.py").write_text(
        "from webassets import Bundle\n"
        "BUNDLES = {'css': Bundle('css/a.css', output='gen/a.css')}\n"
    )
    result = run_python([str(ROOT / "deploy.py"), "--assets", "assets.py"], cwd=project,
                        blocked=("webassets", "flask_assets"), shim=tmp_path / "shim")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'flask-cdn-pipeline[bundles]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "build").exists()


def test_building_bundles_without_webassets_names_the_extra(tmp_path: Path) -> None:
    probe = (
        "from pathlib import Path\nfrom pipeline.build.bundles import build_bundles\n"
        "from pipeline.errors import ConfigError\n"
        "try:\n    build_bundles({}, static_dir=Path('.'))\n"
        "except ConfigError as exc:\n    print(exc.exit_code, exc)\n"
    )
    result = run_python(["-c", probe], cwd=tmp_path, blocked=("webassets",),
                        shim=tmp_path / "shim")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 building bundles needs 'webassets'")
    assert "pip install 'flask-cdn-pipeline[bundles]'" in result.stdout


def test_image_code_without_pillow_is_an_import_error_naming_the_extra(tmp_path: Path) -> None:
    probe = (
        "try:\n    import pipeline.images.views\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = run_python(["-c", probe], cwd=tmp_path, blocked=("PIL",), shim=tmp_path / "shim")
    assert result.returncode == 0, result.stderr
    assert "pip install 'flask-cdn-pipeline[images]'" in result.stdout


def test_flask_bundles_without_flask_assets_names_the_extra(tmp_path: Path) -> None:
    probe = (
        "try:\n    import pipeline.flaskext.bundles\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = run_python(["-c", probe], cwd=tmp_path, blocked=("flask_assets",),
                        shim=tmp_path / "shim")
    assert result.returncode == 0, result.stderr
    assert "pip install 'flask-cdn-pipeline[bundles]'" in result.stdout


def test_extras_in_pyproject_match_the_features() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {dep.split(">")[0].split("[")[0].lower() for dep in project["dependencies"]}
    assert runtime == {"flask", "boto3", "click"}
    extras = project["optional-dependencies"]
    assert set(extras) >= {"images", "bundles", "demo", "dev"}
    assert any(dep.startswith("pillow") for dep in extras["images"])
    assert any(dep.startswith("flask-assets") for dep in extras["bundles"])
    assert any(dep.startswith("moto[server]") for dep in extras["demo"])
