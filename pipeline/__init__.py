"""A CDN asset pipeline for Flask: fingerprint, upload, and serve static files from a CDN.

The core (hashing, manifest, planning, storage) never imports Flask; the Flask
extension is loaded only when ``pipeline.CDN`` is asked for, so ``deploy.py``
starts fast.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ConfigError,
    DeployError,
    ManifestError,
    MissingAssetError,
    PipelineError,
    UnsafePathError,
)
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
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
