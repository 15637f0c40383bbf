"""The one storage interface for files: a `BlobStore`, the data dir (embedded) or S3 (scaled).

Template photos (templates/<id>.<revision>.<ext>) and result JPEGs (results/<token>.jpg)
are blobs: named byte strings that are written whole or not at all, read, deleted and
listed by folder. FACEFUSE_STORAGE_URL empty keeps them as files in the data dir
(`LocalBlobStore`); s3://bucket/prefix keeps them in S3-compatible object storage
(storage/s3.py, the `scale` extra), which every node of a cluster shares.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

from facefuse.errors import Err, FacefuseError
from facefuse.storage.files import write_atomic

S3_SCHEME = "s3://"
# Names are made by the stores, never taken from a request as they are; this keeps any
# slip from reaching outside the store's root.
BLOB_PART_RE = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BlobInfo:
    name: str  # folder/file, as put() took it
    modified: float  # Unix time of the last write


class BlobStore(Protocol):
    kind: str  # "local" or "s3"

    def put(self, name: str, data: bytes) -> None:
        """Store data under name: readers see the old bytes or all of the new, whatever fails."""
        ...

    def get(self, name: str) -> bytes | None:
        """The bytes under name; None when there are none."""
        ...

    def delete(self, name: str) -> None:
        """Remove name if it is there."""
        ...

    def list(self, folder: str, after: str = "", limit: int | None = None) -> list[BlobInfo]:
        """The blobs directly in folder, leftovers of interrupted writes too, in name order:
        those whose name sorts after `after` (a name a list answered), at most `limit`."""
        ...

    def ping(self) -> None:
        """Raise if the store does not answer."""
        ...


def storage_unavailable(detail: str = "") -> FacefuseError:
    """What a request answers while object storage does not: busy, nothing stored, try again."""
    why = f" ({detail})" if detail else ""
    return FacefuseError(
        Err.SERVER_BUSY, f"object storage is not answering{why}; nothing was stored; try again shortly"
    )


def check_blob_name(name: str) -> str:
    parts = name.split("/")
    if not all(BLOB_PART_RE.fullmatch(part) and part not in (".", "..") for part in parts):
        raise ValueError(f"not a blob name: {name[:80]!r}")
    return name


class LocalBlobStore:
    """Blobs as files under root (the data dir): folder/file is root/folder/file."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / check_blob_name(name)

    def put(self, name: str, data: bytes) -> None:
        write_atomic(self.path(name), data)

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def list(self, folder: str, after: str = "", limit: int | None = None) -> list[BlobInfo]:
        directory = self.path(folder)
        try:
            names = sorted(name for entry in os.scandir(directory) if (name := f"{folder}/{entry.name}") > after)
        except FileNotFoundError:
            return []
        found: list[BlobInfo] = []
        for name in names:
            if limit is not None and len(found) >= limit:
                break
            try:
                stat = os.stat(self.root / name)
            except FileNotFoundError:
                continue  # deleted while we looked
            if S_ISREG(stat.st_mode):
                found.append(BlobInfo(name, stat.st_mtime))
        return found

    def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"the data dir {self.root} is gone")


def open_blob_store(url: str, data_dir: Path, s3_endpoint_url: str = "") -> BlobStore:
    """The store `url` names: empty for the data dir, else s3://bucket/prefix."""
    if not url:
        return LocalBlobStore(data_dir)
    if url.startswith(S3_SCHEME):
        try:
            from facefuse.storage.s3 import S3BlobStore  # the `scale` extra: imported only here
        except ImportError as error:
            raise ImportError("s3:// storage needs the scale extra: pip install 'facefuse[scale]'") from error
        return S3BlobStore(url, s3_endpoint_url)
    raise ValueError("a storage URL is empty (the data dir) or s3://bucket/prefix")
