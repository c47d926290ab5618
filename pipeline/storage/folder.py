"""A local folder laid out like the bucket: ``<root>/<key>``.

Used by the embedded default (no cloud account needed) and as a real target for
a folder that nginx or any static server publishes. Files are written to a
temporary name and renamed, so a crash never leaves a torn object that a later
run would take for a complete one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, UnsafePathError
from ..localfs import write_atomic
from ..plan import RemoteObject
from .base import ProgressCallback, Upload, UploadFailure, UploadOutcome


class FolderStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local folder {str(root)!r}"

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create target folder {str(self.root)!r}: {exc.strerror}"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"target folder {str(self.root)!r} is not writable")

    def path_for(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise UnsafePathError(f"object key {key!r} is not a safe relative path")
        return self.root.joinpath(*parts)

    def list_objects(self, prefix: str) -> dict[str, RemoteObject]:
        base = self.path_for(prefix) if prefix else self.root
        found: dict[str, RemoteObject] = {}
        if not base.is_dir():
            return found
        for folder, dirs, files in os.walk(base):
            for name in files:
                if name.startswith("."):  # our own in-flight temporary files
                    continue
                path = Path(folder, name)
                key = path.relative_to(self.root).as_posix()
                found[key] = RemoteObject(size=path.stat().st_size)
        return found

    def upload_files(
        self, uploads: Sequence[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        outcome = UploadOutcome()
        for index, upload in enumerate(uploads):
            try:
                self._copy(upload)
            except OSError as exc:
                outcome.failures.append(UploadFailure(upload.key, exc.strerror or str(exc)))
                outcome.not_attempted = len(uploads) - index - 1
                break
            outcome.stored[upload.key] = RemoteObject(size=upload.size)
            if on_stored:
                on_stored(upload)
        return outcome

    def _copy(self, upload: Upload) -> None:
        target = self.path_for(upload.key)
        if upload.body is not None:
            write_atomic(target, upload.body)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(upload.source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        write_atomic(self.path_for(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError:
            return None
