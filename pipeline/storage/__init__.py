"""Storage backends: where fingerprinted objects and manifests are published.

``S3Storage`` talks to any S3-compatible endpoint through boto3 (imported only
when it is used, so local runs start fast); ``FolderStorage`` mirrors the bucket
layout in a local folder that any static web server (nginx) can serve.
"""

from __future__ import annotations

from .base import Storage, Upload, UploadFailure, UploadOutcome
from .folder import FolderStorage

__all__ = ["FolderStorage", "Storage", "Upload", "UploadFailure", "UploadOutcome"]
