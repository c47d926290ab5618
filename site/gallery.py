"""The demo's uploads and listings: where an upload goes and what the gallery lists.

Demo policy, not library code: a real application decides its own storage layout and
listing (a database, pagination). Built on the library's public pieces: the image
views' settings and private bucket (:func:`pipeline.images.views.images_state`),
upload validation (:mod:`pipeline.images.uploads`) and the path rule
(:func:`pipeline.images.views.safe_relative_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.images.uploads import detect_image, generated_name, store_image
from pipeline.images.views import images_state, safe_relative_path
from pipeline.media_types import content_type_for


def store_upload(data: bytes, *, private: bool = False) -> str:
    """Validate ``data`` as an image and store it under a generated name; return the name.

    Public uploads go to ``IMAGES_DIR``; private ones to ``PRIVATE_DIR``, or straight
    into the private bucket (no ACL) in CDN mode. Raises
    :class:`pipeline.images.uploads.UploadRejected` for bytes that are not an allowed image.
    """
    state = images_state()
    settings = state.settings
    objects = state.private_objects() if private else None
    if objects is not None:
        detected = detect_image(data, max_pixels=settings.upload_max_pixels)
        name = generated_name(detected.extension)
        objects.put(name, data)
        return name
    folder = settings.private_dir if private else settings.images_dir
    if folder is None:
        raise ConfigError(f"set {'PRIVATE_DIR' if private else 'IMAGES_DIR'} to accept uploads")
    return store_image(folder, data, max_pixels=settings.upload_max_pixels)


def list_images(folder: Path | None, *, limit: int = 100) -> list[str]:
    """Names of the image files directly in ``folder``, newest first (for a gallery)."""
    if folder is None or not folder.is_dir():
        return []
    found: list[tuple[float, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if (safe_relative_path(entry.name) and entry.is_file(follow_symlinks=False)
                    and content_type_for(entry.name).startswith("image/")):
                found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    found.sort(reverse=True)
    return [name for _, name in found[:limit]]


def list_private_images(*, limit: int = 100) -> list[str]:
    """Private image names: from the bucket in CDN mode, else from ``PRIVATE_DIR``."""
    state = images_state()
    objects = state.private_objects()
    if objects is not None:
        return objects.names()[:limit]
    return list_images(state.settings.private_dir, limit=limit)
