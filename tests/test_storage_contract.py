"""One contract for every storage backend: the folder target and each S3 server.

:class:`StorageContract` holds the tests; each backend's class only says how to make its
storage (s3transfer's ``BaseGeneralInterfaceTest`` shape). The S3 class runs once per chosen
server (moto, SeaweedFS) through the ``s3`` fixture. The last test holds the folder and a
bucket side by side: the folder is laid out exactly like the bucket.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConflictError
from pipeline.storage.base import Storage, Upload
from pipeline.storage.folder import FolderStorage
from pipeline.storage.s3 import S3Settings, S3Storage
from tests.helpers import S3Env

PREFIX = "static"
TYPE = "text/css; charset=utf-8"
CACHE = "public, max-age=31536000, immutable"


def upload_of(tmp_path: Path, key: str, data: bytes, *, sha256: str | None = None) -> Upload:
    source = tmp_path / "sources" / hashlib.sha256(key.encode()).hexdigest()
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    return Upload(key=key, source=str(source), size=len(data), content_type=TYPE,
                  cache_control=CACHE, sha256=sha256 or hashlib.sha256(data).hexdigest())


FILES = {
    f"{PREFIX}/css/site.0123456789ab.css": b"body{color:red}",
    f"{PREFIX}/img/a b+c.0123456789ab.png": b"\x89PNG\r\n\x1a\n spaces and plus",
    f"{PREFIX}/caf\u00e9/\u00fc.0123456789ab.svg": b"<svg/>",
    f"{PREFIX}/empty.0123456789ab.txt": b"",
}


class StorageContract:
    """What every backend does; subclasses provide the ``storage`` fixture."""

    storage: Any  # the fixture's type, for readers

    def store_files(self, storage: Storage, tmp_path: Path) -> None:
        outcome = storage.upload_files([upload_of(tmp_path, k, v) for k, v in FILES.items()])
        assert not outcome.failures and outcome.not_attempted == 0
        assert {k: o.size for k, o in outcome.stored.items()} == {
            k: len(v) for k, v in FILES.items()}

    def test_check_accepts_a_usable_target(self, storage: Storage) -> None:
        storage.check()

    def test_uploaded_bytes_read_back_and_list_under_their_prefix(
            self, storage: Storage, tmp_path: Path) -> None:
        self.store_files(storage, tmp_path)
        storage.put_bytes("staticx/other.txt", b"not ours", content_type=TYPE,
                          cache_control=CACHE)

        listed = storage.list_keys(PREFIX)

        assert {k: o.size for k, o in listed.items()} == {k: len(v) for k, v in FILES.items()}
        for key, data in FILES.items():
            stored = storage.read(key)
            assert stored is not None and stored.data == data and stored.etag

    def test_hints_never_change_what_a_listing_says(self, storage: Storage,
                                                     tmp_path: Path) -> None:
        self.store_files(storage, tmp_path)
        hints = [*FILES, *(f"{PREFIX}/hint/{i:05d}.js" for i in range(4500))]
        assert storage.list_keys(PREFIX, hints=hints).keys() == storage.list_keys(PREFIX).keys()

    def test_a_missing_object_reads_and_inspects_as_none(self, storage: Storage) -> None:
        assert storage.read(f"{PREFIX}/nothing.json") is None
        assert storage.inspect([f"{PREFIX}/nothing.json"]) == {f"{PREFIX}/nothing.json": None}
        assert storage.list_keys("no-such-prefix") == {}

    def test_inspect_reports_size_and_with_content_the_sha256(
            self, storage: Storage, tmp_path: Path) -> None:
        self.store_files(storage, tmp_path)
        infos = storage.inspect(FILES, content=True)
        for key, data in FILES.items():
            info = infos[key]
            assert info is not None
            assert info.size == len(data)
            assert info.sha256 == hashlib.sha256(data).hexdigest()

    def test_conditional_writes_really_are_conditional(self, storage: Storage) -> None:
        key = f"{PREFIX}/manifest.json"
        assert storage.supports_conditional_writes(PREFIX)
        first = storage.put_if(key, b"one", content_type=TYPE, cache_control=CACHE,
                               if_absent=True)
        with pytest.raises(ConflictError):
            storage.put_if(key, b"two", content_type=TYPE, cache_control=CACHE, if_absent=True)
        second = storage.put_if(key, b"two", content_type=TYPE, cache_control=CACHE,
                                if_match=first)
        with pytest.raises(ConflictError):  # the ETag it held is stale now
            storage.put_if(key, b"three", content_type=TYPE, cache_control=CACHE,
                           if_match=first)
        stored = storage.read(key)
        assert stored is not None and stored.data == b"two" and stored.etag == second

    def test_if_match_on_a_missing_object_is_a_conflict(self, storage: Storage) -> None:
        with pytest.raises(ConflictError):
            storage.put_if(f"{PREFIX}/gone.json", b"x", content_type=TYPE, cache_control=CACHE,
                           if_match='"0123456789abcdef0123456789abcdef"')
        assert storage.read(f"{PREFIX}/gone.json") is None

    def test_delete_removes_exactly_the_keys_named(self, storage: Storage,
                                                   tmp_path: Path) -> None:
        self.store_files(storage, tmp_path)
        doomed = sorted(FILES)[:2]

        outcome = storage.delete_keys([*doomed, f"{PREFIX}/never-there.css"])

        assert not outcome.failures
        assert set(storage.list_keys(PREFIX)) == set(FILES) - set(doomed)

    def test_uploads_stop_after_a_failure_and_store_nothing_wrong(
            self, storage: Storage, tmp_path: Path) -> None:
        bad = upload_of(tmp_path, f"{PREFIX}/bad.0123456789ab.css", b"changed since hashed",
                        sha256=hashlib.sha256(b"what was hashed").hexdigest())
        good = [upload_of(tmp_path, f"{PREFIX}/n/{i:03d}.css", b"x" * i) for i in range(60)]

        outcome = storage.upload_files([bad, *good])

        assert [(f.key, f.content_changed) for f in outcome.failures] == [(bad.key, True)]
        assert outcome.not_attempted > 0
        assert len(outcome.stored) + outcome.not_attempted == len(good)
        listed = storage.list_keys(PREFIX)
        assert bad.key not in listed
        assert set(listed) == set(outcome.stored)  # what it says it stored, and nothing else


class TestFolderStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FolderStorage:
        return FolderStorage(tmp_path / "cdn")


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3: S3Env) -> S3Storage:
        return S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=2))

    def test_objects_carry_the_type_and_cache_policy_they_were_sent_with(
            self, storage: S3Storage, tmp_path: Path) -> None:
        self.store_files(storage, tmp_path)
        for info in storage.inspect(FILES).values():
            assert info is not None
            assert (info.content_type, info.cache_control) == (TYPE, CACHE)


def test_the_folder_is_laid_out_exactly_like_the_bucket(s3: S3Env, tmp_path: Path) -> None:
    folder = FolderStorage(tmp_path / "cdn")
    bucket = S3Storage(S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint, workers=2))
    uploads = [upload_of(tmp_path, key, data) for key, data in FILES.items()]
    for storage in (folder, bucket):
        assert not storage.upload_files(uploads).failures

    on_disk = {path.relative_to(folder.root).as_posix(): path.read_bytes()
               for path in folder.root.rglob("*") if path.is_file()
               and not path.name.startswith(".")}
    in_bucket = {key: s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
                 for key in s3.keys()}
    assert on_disk == in_bucket == FILES
