"""``MediaStorage`` on an S3-compatible object store (MinIO, Ceph RGW, a cloud's S3 API, AWS S3) through boto3.

Why boto3: it is AWS's own SDK, actively maintained, and the client every S3-compatible store tests against; it
brings request signing, retries in botocore's "standard" mode (throttling, 5xx, dropped connections) and
streaming bodies, which we would otherwise write and keep up ourselves.

What the store guarantees, and how we rely on it:

* **Atomic writes.** An S3 ``PutObject`` creates the whole object or nothing, and a PUT under an existing key
  replaces it in one step: no reader ever sees a partial object (S3 is strongly read-after-write consistent).
  Our objects (≤ the upload limit, 60 MB) always go in one PUT, never multipart, so this holds without more.
* **Integrity in transit.** Every PUT carries ``Content-MD5``: the store refuses a body damaged on the way
  (``BadDigest``). botocore's newer automatic CRC checksums are off (``when_required``), since several
  S3-compatible stores refuse their chunked encoding; Content-MD5 is understood by all. The SHA-256 of the
  bytes rides along as metadata (``x-amz-meta-sha256``) for operators and ``gongping media migrate``.
* **Private objects.** No ACL is ever sent: objects get the bucket's default (private); photos reach people
  only through the API, which checks scope and audits reads of originals.
* **Outages.** A refused or timed-out connection, 5xx or throttling (after botocore's own retries) raises
  :class:`MediaUnavailable` (the API answers 503 with Retry-After, workers retry); a missing object raises
  :class:`MediaNotFound` (404).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr
from urllib3.exceptions import HTTPError as Urllib3Error

from backend.media.storage import MediaNotFound, MediaUnavailable, validate_key

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: Error codes (or HTTP statuses, which HEAD answers carry as their code) meaning "no such object".
_NOT_FOUND: Final = frozenset({"NoSuchKey", "NotFound", "404"})
#: Codes that say "this request is wrong, not the store down": a configuration an operator must fix.
_MISCONFIGURED: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "InvalidBucketName",
    }
)
#: The size of each read from the store while streaming.
STREAM_BUFFER: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class S3Config:
    """Everything that identifies one bucket (and prefix) and how to talk to it; hashable, so clients cache."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["path", "virtual"] = "path"
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 20.0
    max_attempts: int = 3
    max_pool_connections: int = 32


#: One botocore session for every client: its loader caches the S3 service model, so a second client costs
#: milliseconds instead of re-reading it. Creating clients from a session is not thread-safe: hence the lock.
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def make_client(config: S3Config) -> S3Client:
    """A thread-safe boto3 S3 client for ``config`` (build once and share)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        client: S3Client = _SESSION.client(
            "s3",
            region_name=config.region,
            endpoint_url=config.endpoint_url or None,
            # None: boto3's usual chain (environment, ~/.aws, an instance role).
            aws_access_key_id=config.access_key_id.get_secret_value() if config.access_key_id else None,
            aws_secret_access_key=(
                config.secret_access_key.get_secret_value() if config.secret_access_key else None
            ),
            config=Config(
                s3={"addressing_style": config.addressing_style},
                connect_timeout=config.connect_timeout_s,
                read_timeout=config.read_timeout_s,
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
                max_pool_connections=config.max_pool_connections,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                signature_version="s3v4",
            ),
        )
    return client


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@contextlib.contextmanager
def _store_errors(operation: str, key: str) -> Iterator[None]:
    """Map botocore's errors: a missing object to ``MediaNotFound``, anything else to ``MediaUnavailable``."""
    try:
        yield
    except ClientError as exc:
        code = _error_code(exc)
        if code in _NOT_FOUND or (_status(exc) == 404 and code != "NoSuchBucket"):
            raise MediaNotFound(key) from exc
        if code in _MISCONFIGURED:
            # Not an outage an operator waits out: say so loudly; the request still fails safe (503, retry).
            log.error(
                "object store refused %s of %s (%s): check the media store settings", operation, key, code
            )
        raise MediaUnavailable(f"object store: {operation} {key}: {code or _status(exc)}") from exc
    except (BotoCoreError, Urllib3Error, OSError) as exc:
        # Connection refused or reset, DNS, connect/read timeouts, a body cut short, missing credentials.
        if isinstance(exc, MediaUnavailable | MediaNotFound):
            raise
        raise MediaUnavailable(f"object store: {operation} {key}: {exc}") from exc


class _ObjectBody(io.RawIOBase):
    """A GET's streaming body as a raw binary file; a failure mid-read is ``MediaUnavailable``."""

    def __init__(self, body: StreamingBody, key: str) -> None:
        super().__init__()
        self._body = body
        self._key = key

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read up to ``len(buffer)`` bytes of the object into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        with _store_errors("read", self._key):
            chunk = self._body.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        """Release the HTTP connection (back to the pool when the body was read to its end)."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3MediaStorage:
    """``MediaStorage`` on a bucket; every key lives under ``config.prefix``."""

    def __init__(self, config: S3Config, client: S3Client | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix.strip("/")
        self.client = client if client is not None else make_client(config)

    def __repr__(self) -> str:
        return f"S3MediaStorage(s3://{self.bucket}/{self.prefix}, endpoint={self.config.endpoint_url!r})"

    def object_key(self, key: str) -> str:
        """The bucket key that stores our ``key``."""
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` in one PUT (atomic), checked in transit by Content-MD5; private."""
        name = self.object_key(key)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with _store_errors("put", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ContentMD5=md5,
                ContentLength=len(data),
                ContentType="application/octet-stream",
                Metadata={"sha256": hashlib.sha256(data).hexdigest()},
            )

    def get(self, key: str) -> bytes:
        """Return the object stored under ``key`` or raise ``MediaNotFound``."""
        name = self.object_key(key)
        with _store_errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=name)
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def delete(self, key: str) -> None:
        """Remove the object under ``key``; removing a missing object is not an error (S3 says 204 either way)."""
        name = self.object_key(key)
        try:
            with _store_errors("delete", key):
                self.client.delete_object(Bucket=self.bucket, Key=name)
        except MediaNotFound:
            return

    def exists(self, key: str) -> bool:
        """Return True if an object is stored under ``key``."""
        name = self.object_key(key)
        try:
            with _store_errors("head", key):
                self.client.head_object(Bucket=self.bucket, Key=name)
        except MediaNotFound:
            return False
        return True

    def stored_sha256(self, key: str) -> str | None:
        """The SHA-256 the object was stored with (its metadata; None if it carries none) or ``MediaNotFound``."""
        name = self.object_key(key)
        with _store_errors("head", key):
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        value = head.get("Metadata", {}).get("sha256")
        return str(value) if value else None

    def open_stream(self, key: str) -> BinaryIO:
        """The object's streaming body (read as it arrives; caller closes) or ``MediaNotFound``."""
        name = self.object_key(key)
        with _store_errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        return io.BufferedReader(_ObjectBody(response["Body"], key), buffer_size=STREAM_BUFFER)

    def keys(self) -> Iterator[str]:
        """Every key stored under the prefix, in the store's order (UTF-8 binary)."""
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        with _store_errors("list", start or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    yield item["Key"][len(start) :]
