"""Optional features and the extra that installs each: one clear error when one is missing.

The runtime install is what the core imports (Flask, boto3, click). Image
uploads need Pillow (``[images]``), building webassets bundles needs webassets and
Flask-Assets (``[bundles]``). Code that needs one imports it through
:func:`needs_extra`, so a missing package says which extra to install instead of a
bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConfigError

#: The distribution name on PyPI (the import package is ``pipeline``).
DISTRIBUTION = "flask-cdn-pipeline"

#: Top-level import name -> the extra that installs it.
EXTRA_FOR = {
    "PIL": "images",
    "pyvips": "images",
    "webassets": "bundles",
    "flask_assets": "bundles",
}


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency is not installed (exit 2; still an ``ImportError`` for callers)."""


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


@contextmanager
def needs_extra(feature: str) -> Iterator[None]:
    """Turn a missing optional package imported in the block into :class:`MissingExtraError`.

    Any other missing module is not ours to explain and propagates unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        extra = EXTRA_FOR.get(top)
        if extra is None:
            raise
        raise MissingExtraError(
            f"{feature} needs {top!r}, which is not installed: {install_hint(extra)}"
        ) from exc
