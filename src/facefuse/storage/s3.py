"""Blobs in S3-compatible object storage (FACEFUSE_STORAGE_URL=s3://bucket/prefix).

Client: boto3, the AWS SDK, synchronous. Every caller of a blob store is synchronous
already (work processes, and the HTTP process's thread pool), so an asyncio client
(aiobotocore) would only add an event loop per work process; boto3 brings the standard
credential chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles,
instance roles), request signing, retries and connection pooling, and speaks to AWS S3,
MinIO and Ceph alike. With FACEFUSE_S3_ENDPOINT_URL set, buckets are addressed by path
(http://host:port/bucket/key), which every S3-compatible server understands without DNS
set-up.

Integrity: each put signs the SHA-256 of its body (SigV4's signed payload), which S3 and
every compatible server check before they keep the object: the protocol's own check,
so no second digest (Content-MD5) is computed, and SHA-256 is the cheaper of the two on
CPUs with SHA instructions. The newer CRC checksum headers are sent only when an
operation needs them, because some compatible servers refuse them. A PUT is atomic in
S3: an object is there whole or not at all.

No `Expect: 100-continue` on a put: it holds the body back a round trip until the server
says go on, which pays only for bodies much larger than an image (the AWS SDKs for Go and
Kotlin send it from 2 MB up); a put that is refused has sent its body in vain, nothing worse.

Outage: timeouts are short and one retry at most, so a request while the store is down
answers SERVER_BUSY within seconds (storage.blobs.storage_unavailable), never a 500.
"""

from __future__ import annotations

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
LIST_PAGE_KEYS = 1000  # the most keys S3 answers in one LIST call
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
            retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            max_pool_connections=MAX_POOL_CONNECTIONS,
            s3={"addressing_style": "path" if endpoint_url else "auto", "payload_signing_enabled": True},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            parameter_validation=False,  # a check of the caller's arguments: ours are fixed and typed
        )
        self._client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)
        # Last among the handlers of every S3 call, so after botocore's own that adds the header.
        self._client.meta.events.register_last("before-call.s3", _without_expect_continue)

    def key(self, name: str) -> str:
        check_blob_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes) -> None:
        self._call("put_object", Bucket=self.bucket, Key=self.key(name), Body=data)

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

    def list(self, folder: str, after: str = "", limit: int | None = None) -> list[BlobInfo]:
        # S3 lists keys in the order of their UTF-8 bytes, which is the order of Python's str.
        start = self.key(folder) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        window: dict[str, Any] = {"StartAfter": self.key(after)} if after else {}
        if limit is not None:
            window["PaginationConfig"] = {"MaxItems": limit, "PageSize": min(limit, LIST_PAGE_KEYS)}
        found: list[BlobInfo] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/", **window
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


def _without_expect_continue(params: dict[str, Any], **_: Any) -> None:
    params["headers"].pop("Expect", None)


def _code(error: ClientError) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied, ...): names no secret, safe to show."""
    return str(error.response.get("Error", {}).get("Code", "error"))
