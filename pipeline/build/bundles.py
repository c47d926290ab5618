"""Building webassets bundles before a deploy, so their outputs are fingerprinted too.

The bundles are declared once, in a Python file with a ``BUNDLES`` dict (the demo:
``site/assets.py``); Flask-Assets registers the same dict in the app. Building here
uses a plain :class:`webassets.Environment`, so the deploy needs no Flask app.
"""

from __future__ import annotations

import fcntl
import io
import os
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import ConfigError
from ..extras import needs_extra
from ..validate import DEFAULT_STATIC_URL_PATH


def load_bundles(assets_file: Path) -> Mapping[str, Any]:
    """Read the ``BUNDLES`` mapping (name -> ``webassets.Bundle``) from a Python file."""
    if not assets_file.is_file():
        raise ConfigError(f"assets file {str(assets_file)!r} does not exist")
    try:
        # An assets file imports webassets itself: a missing one names the extra.
        with needs_extra(f"assets file {str(assets_file)!r}"):
            namespace = runpy.run_path(str(assets_file))
    except ConfigError:
        raise
    except Exception as exc:  # the file is user code: any failure is a config problem
        raise ConfigError(f"cannot load assets file {str(assets_file)!r}: {exc}") from exc
    bundles = namespace.get("BUNDLES")
    if not isinstance(bundles, Mapping):
        raise ConfigError(f"assets file {str(assets_file)!r} defines no BUNDLES dict")
    return bundles


def build_bundles(bundles: Mapping[str, Any], *, static_dir: Path,
                  static_url_path: str = DEFAULT_STATIC_URL_PATH) -> list[str]:
    """Build every bundle into ``static_dir``; return their outputs as logical paths.

    Outputs are built in production mode (joined and filtered, no debug), without
    webassets' own cache or version query strings: the content hash in the
    fingerprinted name already does that job. ``static_url_path`` is where the app
    serves ``static_dir``: ``cssrewrite`` computes the bundles' URLs from it.

    An output whose bytes are unchanged is left alone, and a changed one is replaced
    atomically: a deploy or a running app reading the static folder at the same time
    never sees a torn or rewritten file (webassets itself truncates and rewrites it
    in place on every build).
    """
    with needs_extra("building bundles"):
        from webassets import Environment
        from webassets.exceptions import BundleError

    env = Environment(directory=str(static_dir), url=static_url_path, debug=False,
                      cache=False, manifest=False, url_expire=False, auto_build=False)
    outputs: list[str] = []
    for name, bundle in bundles.items():
        env.register(name, bundle)
        if not bundle.output:
            raise ConfigError(f"bundle {name!r} has no output file to deploy")
        built = io.StringIO()
        try:
            bundle.build(force=True, output=built)
            _write_if_changed(static_dir / str(bundle.output), built.getvalue().encode())
        except (BundleError, OSError) as exc:
            raise ConfigError(f"cannot build bundle {name!r}: {exc}") from exc
        outputs.append(str(bundle.output))
    return outputs


def _write_if_changed(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` unless it already holds exactly those bytes.

    The compare and the replace hold an exclusive lock on the output's folder: two
    deploys building the same bundle at once (a CI retry beside a running job) would
    otherwise both find it stale and both replace it, and the second replace would swap
    the file under the first deploy's walk. Under the lock the second finds the bytes
    already there and leaves the file alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        try:
            if path.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        write_atomic(path, data, unique=True)
    finally:
        os.close(folder)  # closing the descriptor releases the lock
