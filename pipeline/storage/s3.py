"""S3-compatible storage through boto3 (AWS S3, MinIO, R2, moto, ...).

One client is shared by all worker threads (botocore clients are thread-safe;
sessions and resources are not), with the connection pool sized to the workers.
botocore's "standard" retry mode retries 5xx, SlowDown/throttling and connection
resets with jittered exponential backoff; request bodies are re-read from disk on
a retry. A fingerprinted object is sent with ``x-amz-checksum-sha256`` equal to
the content hash its key was named after, computed from the very bytes sent and
compared with that hash first, so a file rewritten since it was fingerprinted is
never stored under the old name, and a server that checks checksums (AWS S3,
SeaweedFS; not moto) rejects bytes damaged in transit. Other PUTs carry a CRC32,
verified where the server checks it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from ..errors import ConfigError, ConflictError, DeployError, FileChangedError
from ..keys import releases_prefix
from ..limits import ATTEMPTS_RANGE, DEFAULT_MAX_ATTEMPTS, DEFAULT_WORKERS, WORKERS_RANGE
from ..urls import redact_url
from .base import (
    DeleteOutcome,
    NotModified,
    ObjectInfo,
    ProgressCallback,
    RemoteObject,
    StoredBytes,
    Upload,
    UploadFailure,
    UploadOutcome,
    check_range,
    content_changed,
    sha256_base64,
    source_chunks,
    verified_bytes,
)
from .listing import partition_bounds

#: Files above this go through multipart upload, streamed in parts of this size,
#: so memory stays flat for multi-GB files.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK_SIZE = 16 * 1024 * 1024
MULTIPART_CONCURRENCY = 4
#: Uploads taken from the caller's iterable per worker beyond those in flight: enough to keep
#: every worker busy, few enough that a feed filled while hashing paces the hashing.
PENDING_PER_WORKER = 2
#: Bytes read at a time when downloading an object to hash it (verify --full).
DOWNLOAD_CHUNK = 1024 * 1024

CHECKSUM_ALGORITHM = "CRC32"

#: The pre-flight HEAD of the bucket is every command's first request: short timeouts and
#: two tries, so an endpoint that accepts connections and never answers fails in seconds
#: (with the transfer client's 60 s reads and its retries it was minutes of silence).
PREFLIGHT_TIMEOUT = 5.0
PREFLIGHT_ATTEMPTS = 2

#: DeleteObjects takes at most 1,000 keys per request.
DELETE_BATCH = 1000

# One translation of S3 error codes (see :func:`translated`). botocore reports the
# server's code from the XML body, or the bare HTTP status when there is none (HEAD).
#: The object does not exist: GET says NoSuchKey, HEAD only 404 (botocore: "NotFound").
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
#: A conditional GET whose ETag still matches.
NOT_MODIFIED_CODES = frozenset({"NotModified", "304"})
#: A conditional write that lost: 412 from If-Match/If-None-Match, 409 when two
#: conditional writes to one key overlap, NoSuchKey for If-Match on a deleted key.
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412"})


#: Whether a server refused a second ``If-None-Match: *`` PUT, per (endpoint, bucket),
#: probed once per process: it is a property of the server, not of a run's files.
_CONDITIONAL_WRITES: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    workers: int = DEFAULT_WORKERS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        """Refuse values the client would misuse (0 workers hangs the pool; 0 attempts
        sends nothing), whoever builds the settings: the CLI checks the same ranges."""
        check_range("workers", self.workers, WORKERS_RANGE)
        check_range("max_attempts", self.max_attempts, ATTEMPTS_RANGE)
        for name in ("connect_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"S3 setting {name}={getattr(self, name)!r} must be positive")


def make_client(settings: S3Settings, *, max_attempts: int | None = None,
                session: Any | None = None, unsigned: bool = False) -> Any:
    """An S3 client for ``settings``; pass one ``session`` to build several cheaply.
    ``unsigned``: send no credentials at all, as a stranger's browser would."""
    config = Config(
        # botocore's "max_attempts" counts retries after the first try; ours counts tries.
        retries={"mode": "standard",
                 "total_max_attempts": max_attempts or settings.max_attempts},
        max_pool_connections=settings.workers + MULTIPART_CONCURRENCY,
        connect_timeout=settings.connect_timeout,
        # SigV4 everywhere: presigned URLs then carry X-Amz-Expires (SigV2 is deprecated).
        signature_version=UNSIGNED if unsigned else "s3v4",
        read_timeout=settings.read_timeout,
        # Custom endpoints (MinIO, moto, R2 on one host) rarely resolve bucket subdomains.
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
    )
    try:
        return (session or boto3.session.Session()).client(
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


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore error ("" for one that is not a server reply)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def translated(exc: BaseException, action: str, what: str, *,
               conditional: bool = False) -> DeployError:
    """Our exception for a botocore error while doing ``action`` to ``what``.

    Raise it ``from exc`` (the cause keeps the status for callers that need it). A
    lost conditional write is a :class:`ConflictError`; everything else a
    :class:`DeployError` that names the code and the server's message.
    """
    code = error_code(exc)
    if conditional and code in CONFLICT_CODES:
        return ConflictError(f"{what} was changed by someone else ({code})")
    return DeployError(f"cannot {action} {what}: {describe_error(exc)}")


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _etag(value: object) -> str | None:
    return str(value or "").strip('"') or None


class S3Storage:
    listing_has_etags = True

    def __init__(self, settings: S3Settings, *, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        # One session for the transfer client and the preflight probe: a session loads
        # botocore's service models, which costs more than building a client from it.
        self._session = boto3.session.Session()
        self.client = client if client is not None else make_client(settings, session=self._session)
        #: The endpoint the client really uses: ``endpoint_url`` of the settings, else what
        #: botocore found (``endpoint_url`` in the AWS config file, ``AWS_ENDPOINT_URL_S3``)
        #: or AWS's own for the region.
        self.endpoint_url = str(self.client.meta.endpoint_url)
        self.description = f"s3://{settings.bucket} ({redact_url(self.endpoint_url)})"

    # -- preflight ---------------------------------------------------------------------------

    def check(self) -> None:
        """HEAD the bucket so a typo or missing credentials fail before any work.

        ``upload_file`` would hide the error code of a missing bucket, so ask first.
        A client with short timeouts and few retries keeps a wrong endpoint from hanging.
        """
        quick = replace(self.settings,
                        connect_timeout=min(self.settings.connect_timeout, PREFLIGHT_TIMEOUT),
                        read_timeout=min(self.settings.read_timeout, PREFLIGHT_TIMEOUT))
        probe = make_client(quick, max_attempts=PREFLIGHT_ATTEMPTS, session=self._session)
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
        except ReadTimeoutError as exc:
            raise ConfigError(
                f"the S3 endpoint {self._endpoint()!r} accepted the connection but did not "
                f"answer within {quick.read_timeout:g} s ({PREFLIGHT_ATTEMPTS} tries) for "
                f"bucket {self.bucket!r}: is it an S3 server? check --endpoint-url / "
                "AWS_ENDPOINT_URL"
            ) from exc
        except BotoCoreError as exc:
            raise ConfigError(
                f"cannot use bucket {self.bucket!r} at {self._endpoint()!r}: {exc}"
            ) from exc

    def _endpoint(self) -> str:
        return redact_url(self.endpoint_url)

    def _preflight_error(self, exc: ClientError) -> ConfigError:
        code = error_code(exc)
        if code in NOT_FOUND_CODES | {"NoSuchBucket"}:
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

    def list_keys(self, prefix: str, *, hints: Sequence[str] = ()) -> dict[str, RemoteObject]:
        """One paginated listing (1,000 keys a request) instead of a HEAD per file, split
        at ``hints`` into ranges listed in parallel when it is big.

        A page costs the server and botocore's XML parser about the same, so two or
        three ranges in flight roughly halve a 10,000-key listing. Each range starts
        after one bound (``StartAfter``) and stops past the next, so the ranges cover
        the key space exactly once whether or not the hinted keys exist.
        """
        start = f"{prefix}/" if prefix else ""
        bounds = partition_bounds(hints, parts=min(self.settings.workers, 3))
        ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
        if len(ranges) == 1:
            return self._list_range(start, None, None)
        found: dict[str, RemoteObject] = {}
        with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
            for part in pool.map(lambda r: self._list_range(start, r[0], r[1]), ranges):
                found.update(part)
        return found

    def _list_range(
        self, prefix: str, after: str | None, last: str | None
    ) -> dict[str, RemoteObject]:
        """Keys under ``prefix`` in ``(after, last]`` (open-ended where ``None``)."""
        found: dict[str, RemoteObject] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if after is not None:
            params["StartAfter"] = after
        try:
            for page in paginator.paginate(**params):
                for item in page.get("Contents", ()):
                    if last is not None and item["Key"] > last:
                        return found
                    found[item["Key"]] = RemoteObject(
                        size=int(item["Size"]), etag=_etag(item.get("ETag")),
                        last_modified=item.get("LastModified"),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise translated(exc, "list", f"bucket {self.bucket!r}") from exc
        return found

    def read(self, key: str) -> StoredBytes | None:
        found = self.read_if_changed(key, etag=None)
        assert not isinstance(found, NotModified)  # no condition was sent, so never a 304
        return found

    def read_if_changed(self, key: str, *, etag: str | None) -> StoredBytes | NotModified | None:
        """:meth:`read` with ``If-None-Match: <etag>``: an unchanged object costs one 304
        and no body (an app following the current manifest polls it this way)."""
        condition = {"IfNoneMatch": f'"{etag}"'} if etag else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **condition)
            data = bytes(response["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            if is_not_found(exc):
                return None
            if etag and error_code(exc) in NOT_MODIFIED_CODES:
                return NotModified(etag)
            raise translated(exc, "read", repr(key)) from exc
        return StoredBytes(data, _etag(response.get("ETag")) or "")

    def inspect(self, keys: Iterable[str], *, content: bool = False
                ) -> dict[str, ObjectInfo | None]:
        """HEAD each key on the worker pool (the listing has no Content-Type/Cache-Control);
        with ``content``, GET and hash it instead (at most ``workers`` downloads at once)."""
        wanted = sorted(set(keys))
        probe = self._download if content else self._head
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            return dict(zip(wanted, pool.map(probe, wanted), strict=True))

    def _download(self, key: str) -> ObjectInfo | None:
        """GET the object and hash its bytes as they stream in (memory stays flat)."""
        digest = hashlib.sha256()
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            for chunk in response["Body"].iter_chunks(DOWNLOAD_CHUNK):
                digest.update(chunk)
        except (ClientError, BotoCoreError) as exc:
            if is_not_found(exc):
                return None
            raise translated(exc, "read", repr(key)) from exc
        return ObjectInfo(
            size=int(response.get("ContentLength", 0)), etag=_etag(response.get("ETag")),
            content_type=response.get("ContentType", ""),
            cache_control=response.get("CacheControl", ""), sha256=digest.hexdigest(),
            content_encoding=response.get("ContentEncoding", ""),
        )

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            if is_not_found(exc):
                return None
            raise translated(exc, "inspect", repr(key)) from exc
        return ObjectInfo(
            size=int(head.get("ContentLength", 0)), etag=_etag(head.get("ETag")),
            content_type=head.get("ContentType", ""), cache_control=head.get("CacheControl", ""),
            content_encoding=head.get("ContentEncoding", ""),
        )

    def bucket_policy(self) -> str | None:
        """The bucket policy JSON, or ``None`` when the bucket has none."""
        try:
            return str(self.client.get_bucket_policy(Bucket=self.bucket)["Policy"])
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucketPolicy":
                return None
            raise translated(exc, "read", f"the policy of bucket {self.bucket!r}") from exc

    def anonymous_read_status(self, key: str) -> int:
        """The HTTP status a request without credentials gets for the first byte of ``key``.

        Who may read an object is the server's decision (a bucket policy, an anonymous
        identity, a "public bucket" switch), and not every server lets us read that
        configuration: so ask the way a stranger would. Same endpoint and addressing as
        the signed client, few retries (a refusal is an answer, not a failure).
        """
        quick = replace(self.settings,
                        connect_timeout=min(self.settings.connect_timeout, PREFLIGHT_TIMEOUT),
                        read_timeout=min(self.settings.read_timeout, PREFLIGHT_TIMEOUT))
        client = make_client(quick, max_attempts=PREFLIGHT_ATTEMPTS, session=self._session,
                             unsigned=True)
        try:
            response = client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0")
        except ClientError as exc:
            return _status(exc)
        except BotoCoreError as exc:
            raise translated(exc, "read without credentials", repr(key)) from exc
        response["Body"].close()
        return int(response["ResponseMetadata"]["HTTPStatusCode"])

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
            raise translated(exc, "write", repr(key)) from exc

    def put_if(
        self, key: str, data: bytes, *, content_type: str, cache_control: str,
        if_match: str | None = None, if_absent: bool = False,
    ) -> str:
        """A conditional PUT (``If-Match`` / ``If-None-Match: *``); the loser gets ConflictError.

        A retried request whose first attempt was applied but whose response was lost
        also fails its precondition: callers re-read and compare bytes to tell the two apart.
        """
        condition: dict[str, str] = {}
        if if_match is not None:
            condition["IfMatch"] = f'"{if_match}"'
        elif if_absent:
            condition["IfNoneMatch"] = "*"
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                CacheControl=cache_control, ChecksumAlgorithm=CHECKSUM_ALGORITHM, **condition,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translated(exc, "write", repr(key), conditional=bool(condition)) from exc
        return _etag(response.get("ETag")) or ""

    def supports_conditional_writes(self, prefix: str) -> bool:
        """Whether the server enforces ``If-None-Match: *`` (probed once per endpoint+bucket).

        Some S3-compatible servers (rclone ``serve s3``) accept the header and ignore
        it; releases and the current manifest would then be overwritten silently. The
        probe writes a fresh key twice with ``If-None-Match: *``: the second write must
        be refused (412). The probe key is deleted again.
        """
        where = (self.endpoint_url, self.bucket)
        with _PROBE_LOCK:  # concurrent deploys in one process probe once
            if where not in _CONDITIONAL_WRITES:
                _CONDITIONAL_WRITES[where] = self._probe_conditional_writes(prefix)
            return _CONDITIONAL_WRITES[where]

    def _probe_conditional_writes(self, prefix: str) -> bool:
        key = f"{releases_prefix(prefix)}/probe-{os.urandom(6).hex()}.json"
        try:
            for _ in range(2):
                self.put_if(key, b"{}", content_type="application/json",
                            cache_control="no-store", if_absent=True)
        except ConflictError:
            return True
        except DeployError as exc:
            if isinstance(exc.__cause__, ClientError) and _status(exc.__cause__) in (400, 501):
                return False  # the header itself is refused: NotImplemented and the like
            raise
        finally:
            self.delete_keys([key])
        return False

    def delete_keys(self, keys: Sequence[str]) -> DeleteOutcome:
        """DeleteObjects in batches of 1,000 (quiet mode: the reply lists only failures)."""
        outcome = DeleteOutcome()
        for start in range(0, len(keys), DELETE_BATCH):
            batch = list(keys[start:start + DELETE_BATCH])
            outcome.requests += 1
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                outcome.failures.extend(UploadFailure(k, describe_error(exc)) for k in batch)
                continue
            failed = {str(e.get("Key")): f"{e.get('Code')}: {e.get('Message', '')}"
                      for e in response.get("Errors", ())}
            outcome.failures.extend(UploadFailure(k, m) for k, m in failed.items())
            outcome.deleted.extend(k for k in batch if k not in failed)
        return outcome

    def upload_files(
        self, uploads: Iterable[Upload], *, on_stored: ProgressCallback | None = None
    ) -> UploadOutcome:
        """Store ``uploads`` on ``workers`` threads, taking them from the iterable only as
        workers come free (at most :data:`PENDING_PER_WORKER` each waiting), so a feed that
        is still being filled (a deploy hashing its files) is uploaded as it comes."""
        outcome = UploadOutcome()
        lock = threading.Lock()
        stop = threading.Event()
        slots = threading.Semaphore(self.settings.workers * PENDING_PER_WORKER)
        crashed: list[BaseException] = []

        def run(upload: Upload) -> None:
            try:
                if stop.is_set():
                    with lock:
                        outcome.not_attempted += 1
                    return
                etag = self._upload_one(upload)
            except (ClientError, BotoCoreError, OSError, DeployError) as exc:
                stop.set()
                failure = UploadFailure(upload.key, describe_error(exc),
                                        content_changed=isinstance(exc, FileChangedError))
                with lock:
                    outcome.failures.append(failure)
                return
            except BaseException as exc:  # a programming error: re-raised below, not hidden
                stop.set()
                crashed.append(exc)
                return
            finally:
                slots.release()
            with lock:
                outcome.stored[upload.key] = RemoteObject(size=upload.size, etag=etag)
            if on_stored:
                on_stored(upload)

        pool = ThreadPoolExecutor(max_workers=self.settings.workers)
        try:
            for upload in uploads:
                slots.acquire()
                pool.submit(run, upload)
            pool.shutdown(wait=True)
        except KeyboardInterrupt:
            # Ctrl-C: the process is ending, so wait for nothing; a request in flight on a
            # stalled link could hold it for minutes (the entry point exits without joining).
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        except BaseException:
            stop.set()  # waiting uploads return at once; only those in flight finish
            pool.shutdown(wait=True)
            raise
        if crashed:
            raise crashed[0]
        return outcome

    def _upload_one(self, upload: Upload) -> str | None:
        """Store one object; return its ETag when the response tells it."""
        if upload.body is None and upload.size >= MULTIPART_THRESHOLD:
            return self._upload_multipart(upload)
        data = verified_bytes(upload)
        response = self.client.put_object(
            Bucket=self.bucket, Key=upload.key, Body=data, ContentType=upload.content_type,
            CacheControl=upload.cache_control, **_checksum(upload.sha256), **_encoding(upload),
        )
        return _etag(response.get("ETag"))

    def _upload_multipart(self, upload: Upload) -> str | None:
        """Parts of :data:`MULTIPART_CHUNK_SIZE`, each with its own SHA-256 checksum, read in
        order and hashed as read; the upload is completed only if the whole file hashed to
        ``upload.sha256``, else aborted, so no object ever holds bytes of another hash.
        At most :data:`MULTIPART_CONCURRENCY` parts are in memory or in flight."""
        started = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=upload.key, ContentType=upload.content_type,
            CacheControl=upload.cache_control, ChecksumAlgorithm="SHA256", **_encoding(upload))
        upload_id = started["UploadId"]
        try:
            parts = self._send_parts(upload, upload_id)
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=upload.key, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException:
            # On failure the bucket's lifecycle rule for incomplete uploads cleans up.
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload.key, UploadId=upload_id)
            raise
        return _etag(response.get("ETag"))

    def _send_parts(self, upload: Upload, upload_id: str) -> list[dict[str, Any]]:
        digest = hashlib.sha256()
        futures: list[Future[dict[str, Any]]] = []
        with ThreadPoolExecutor(max_workers=MULTIPART_CONCURRENCY) as pool:
            for chunk in source_chunks(upload.source, MULTIPART_CHUNK_SIZE):
                digest.update(chunk)
                if len(futures) >= MULTIPART_CONCURRENCY:
                    futures[-MULTIPART_CONCURRENCY].result()  # bound the parts held in memory
                futures.append(pool.submit(self._send_part, upload.key, upload_id,
                                           len(futures) + 1, chunk))
            parts = [future.result() for future in futures]
        if upload.sha256 is not None and digest.hexdigest() != upload.sha256:
            raise content_changed(upload)
        return parts

    def _send_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        checksum = sha256_base64(hashlib.sha256(chunk).hexdigest())
        response = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk,
            ChecksumSHA256=checksum)
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}


def _checksum(sha256_hex: str | None) -> dict[str, str]:
    """The content hash as the SHA-256 checksum the server must verify, else a CRC32."""
    if sha256_hex is None:
        return {"ChecksumAlgorithm": CHECKSUM_ALGORITHM}
    # Naming the algorithm too makes botocore send x-amz-sdk-checksum-algorithm, which
    # some servers (moto) need before they record the checksum.
    return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": sha256_base64(sha256_hex)}


def _encoding(upload: Upload) -> dict[str, str]:
    """``Content-Encoding`` for a precompressed sibling. S3 stores it and sends it with every
    GET (it cannot store ``Vary``: the server or CDN in front adds that)."""
    return {"ContentEncoding": upload.content_encoding} if upload.content_encoding else {}
