"""Blobs in S3-compatible object storage (FACEFUSE_STORAGE_URL=s3://bucket/prefix).

Client: boto3, the AWS SDK, synchronous. Every caller of a blob store is synchronous
already (work processes, and the HTTP process's thread pool), so an asyncio client
(aiobotocore) would only add an event loop per work process; boto3 brings the standard
credential chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles,
instance roles), request signing, retries and connection pooling, and speaks to AWS S3,
MinIO and Ceph alike. With FACEFUSE_S3_ENDPOINT_URL set, buckets are addressed by path
(http://host:port/bucket/key), which every S3-compatible server understands without DNS
set-up.

Integrity: each put sends Content-MD5, which S3 and every compatible server check before
they keep the object; the newer CRC checksum headers are sent only when an operation
needs them, because some compatible servers refuse them. The body is not hashed a second
time into the request's signature (SigV4's UNSIGNED-PAYLOAD, as over HTTPS): the MD5
guards the bytes, TLS (an https:// endpoint) guards them in transit, and a result's put
costs a third less. A PUT is atomic in S3: an object is there whole or not at all.

Outage: timeouts are short and one retry at most, so a request while the store is down
answers SERVER_BUSY within seconds (storage.blobs.storage_unavailable), never a 500.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from facefuse.storage.blobs import BlobInfo, check_blob_name, storage_unavailable

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 2  # the first try and one retry
MAX_POOL_CONNECTIONS = 32  # the HTTP process's thread pool may put results in parallel
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3BlobStore:
    kind = "s3"

    def __init__(self, url: str, endpoint_url: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("a storage URL is s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            s3={"addressing_style": "path" if endpoint_url else "auto", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)

    def key(self, name: str) -> str:
        check_blob_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes) -> None:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._call("put_object", Bucket=self.bucket, Key=self.key(name), Body=data, ContentMD5=md5)

    def get(self, name: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key(name))
            return bytes(answer["Body"].read())
        except ClientError as error:
            if _code(error) in NOT_FOUND_CODES:
                return None
            raise storage_unavailable(_code(error)) from error
        except BotoCoreError as error:
            raise storage_unavailable(type(error).__name__) from error

    def delete(self, name: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=self.key(name))

    def list(self, folder: str) -> list[BlobInfo]:
        start = self.key(folder) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        found: list[BlobInfo] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    found.append(BlobInfo(item["Key"][strip:], item["LastModified"].timestamp()))
        except ClientError as error:
            raise storage_unavailable(_code(error)) from error
        except BotoCoreError as error:
            raise storage_unavailable(type(error).__name__) from error
        return found

    def ping(self) -> None:
        self._call("head_bucket", Bucket=self.bucket)

    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self._client, operation)(**arguments)
        except ClientError as error:
            raise storage_unavailable(_code(error)) from error
        except BotoCoreError as error:
            raise storage_unavailable(type(error).__name__) from error


def _code(error: ClientError) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied, ...): names no secret, safe to show."""
    return str(error.response.get("Error", {}).get("Code", "error"))
