"""A CDN asset pipeline for Flask: fingerprint, upload, and serve static files from a CDN.

The core (hashing, manifest, planning, storage) never imports Flask; the Flask
extension (``CDN``) and the manifest classes (``Entry``, ``Manifest``, which bring the
builder along) are loaded only when asked for, so ``deploy.py --help`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    DeployError,
    ManifestError,
    MissingAssetError,
    PipelineError,
    UnsafePathError,
)

if TYPE_CHECKING:
    from .manifest import Entry, Manifest

__all__ = [
    "CDN",
    "ConfigError",
    "DeployError",
    "Entry",
    "Manifest",
    "ManifestError",
    "MissingAssetError",
    "PipelineError",
    "UnsafePathError",
]


def __getattr__(name: str) -> Any:
    if name == "CDN":
        from .flaskext.extension import CDN

        return CDN
    if name in ("Entry", "Manifest"):
        from . import manifest

        return getattr(manifest, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
