"""S3-compatible storage through boto3 (AWS S3, MinIO, R2, moto, ...).

One client is shared by all worker threads (botocore clients are thread-safe;
sessions and resources are not), with the connection pool sized to the workers.
botocore's "standard" retry mode retries 5xx, SlowDown/throttling and connection
resets with jittered exponential backoff; request bodies are re-read from disk on
a retry because they are seekable files. Every PUT carries a CRC32 checksum that
the server verifies, so a corrupted upload is rejected rather than stored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ..errors import ConfigError, DeployError
from ..plan import RemoteObject
from ..urls import redact_url
from .base import ProgressCallback, Upload, UploadFailure, UploadOutcome

#: Files above this go through multipart upload, streamed in parts of this size,
#: so memory stays flat for multi-GB files.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK_SIZE = 16 * 1024 * 1024
MULTIPART_CONCURRENCY = 4

CHECKSUM_ALGORITHM = "CRC32"


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    workers: int = 16
    max_attempts: int = 6
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def make_client(settings: S3Settings, *, max_attempts: int | None = None) -> Any:
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts or settings.max_attempts},
        max_pool_connections=settings.workers + MULTIPART_CONCURRENCY,
        connect_timeout=settings.connect_timeout,
        # SigV4 everywhere: presigned URLs then carry X-Amz-Expires (SigV2 is deprecated).
        signature_version="s3v4",
        read_timeout=settings.read_timeout,
        # Custom endpoints (MinIO, moto, R2 on one host) rarely resolve bucket subdomains.
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
    )
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region or "us-east-1",
            config=config,
        )
    except ValueError as exc:  # botocore rejects malformed endpoint URLs here
        raise ConfigError(
            f"bad endpoint URL {redact_url(settings.endpoint_url)!r}: {exc}; "
            "use e.g. --endpoint-url http://127.0.0.1:9000"
        ) from exc


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__


class S3Storage:
    def __init__(self, settings: S3Settings, *, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = client if client is not None else make_client(settings)
        endpoint = redact_url(settings.endpoint_url) or "AWS"
        self.description = f"s3://{settings.bucket} ({endpoint})"
        self._transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK_SIZE,
            max_concurrency=MULTIPART_CONCURRENCY,
        )

    # -- preflight ---------------------------------------------------------------------------

    def check(self) -> None:
        """HEAD the bucket so a typo or missing credentials fail before any work.

        ``upload_file`` would hide the error code of a missing bucket, so ask first.
        A client with few retries keeps a wrong endpoint from hanging for a minute.
        """
        probe = make_client(self.settings, max_attempts=2)
        try:
            probe.head_bucket(Bucket=self.bucket)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise ConfigError(
                f"no usable AWS credentials for bucket {self.bucket!r}: set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or configure no bucket to use "
                "the embedded default"
            ) from exc
        except EndpointConnectionError as exc:
            raise ConfigError(
                f"cannot reach the S3 endpoint {self._endpoint()!r} for bucket "
                f"{self.bucket!r}: check --endpoint-url / AWS_ENDPOINT_URL"
            ) from exc
        except ClientError as exc:
            raise self._preflight_error(exc) from exc
        except BotoCoreError as exc:
            raise ConfigError(
                f"cannot use bucket {self.bucket!r} at {self._endpoint()!r}: {exc}"
            ) from exc

    def _endpoint(self) -> str:
        return redact_url(self.settings.endpoint_url) or "AWS default endpoint"

    def _preflight_error(self, exc: ClientError) -> ConfigError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return ConfigError(
                f"bucket {self.bucket!r} does not exist at {self._endpoint()}: create it "
                "or fix --bucket / CDN_BUCKET"
            )
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ConfigError(
                f"access to bucket {self.bucket!r} was denied ({code}): check the credentials "
                "and that they may list and write the bucket"
            )
        return ConfigError(f"cannot use bucket {self.bucket!r}: {describe_error(exc)}")

    # -- reading -----------------------------------------------------------------------------

    def list_objects(self, prefix: str) -> dict[str, RemoteObject]:
        """One paginated listing (1,000 keys a request) instead of a HEAD per file."""
        found: dict[str, RemoteObject] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/" if prefix else ""):
                for item in page.get("Contents", ()):
                    found[item["Key"]] = RemoteObject(
                        size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"') or None
                    )
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(
                f"cannot list bucket {self.bucket!r}: {describe_error(exc)}"
            ) from exc
        return found

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise DeployError(f"cannot read {key!r}: {describe_error(exc)}") from exc
        return bytes(response["Body"].read())

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        try:
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise ConfigError(
                f"no usable AWS credentials to sign URLs for bucket {self.bucket!r}"
            ) from exc
        return str(url)

    # -- writing -----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=cache_control,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"cannot write {key!r}: {describe_error(exc)}") from exc

    def upload_files(
        self, uploads: Sequence[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        outcome = UploadOutcome()
        lock = threading.Lock()
        stop = threading.Event()

        def run(upload: Upload) -> None:
            if stop.is_set():
                return
            try:
                self._upload_one(upload)
            except (ClientError, BotoCoreError, OSError) as exc:
                stop.set()
                with lock:
                    outcome.failures.append(UploadFailure(upload.key, describe_error(exc)))
                return
            with lock:
                outcome.stored[upload.key] = RemoteObject(size=upload.size)
            if on_stored:
                on_stored(upload)

        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            futures: list[Future[None]] = [pool.submit(run, upload) for upload in uploads]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.result()  # re-raise programming errors instead of hiding them
        outcome.not_attempted = len(uploads) - len(outcome.stored) - len(outcome.failures)
        return outcome

    def _upload_one(self, upload: Upload) -> None:
        extra = {
            "ContentType": upload.content_type,
            "CacheControl": upload.cache_control,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
        }
        if upload.body is not None:
            self.client.put_object(Bucket=self.bucket, Key=upload.key, Body=upload.body, **extra)
            return
        if upload.size >= MULTIPART_THRESHOLD:
            self.client.upload_file(
                str(upload.source), self.bucket, upload.key,
                ExtraArgs=extra, Config=self._transfer_config,
            )
            return
        with open(upload.source, "rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=upload.key, Body=body, **extra)
