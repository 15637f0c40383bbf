"""The template library: model photos, their face analysis and default strengths (docs/api.md B.1).

Storage: the original photo is the blob templates/<id>.<revision>.<jpg|png> of the blob
store (the data dir, or S3), everything else one row of the `templates` table (SQLite,
or PostgreSQL). An add puts the blob and inserts the row inside one transaction holding
the lock TEMPLATES_LOCK, so a kill -9 at any point leaves the whole template or nothing
visible: a row is only ever committed after its blob is stored, and a blob without a
row is an orphan that clean_orphans() deletes (it runs when a registry opens). Orphans
are only judged under that lock, which every add holds while its blob is being written,
so an add in flight in another process, or on another node, is never mistaken for one.

The revision (random per add) in the blob name means that removing a template and
adding one under the same id never touch the same blob, whatever their order.

A row is read on every load (one primary-key lookup), so templates added or removed by
another process or node count at its next request; decoded images and faces are cached
per (id, revision).
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import string
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from facefuse.arrays import UInt8Array
from facefuse.errors import Err, FacefuseError
from facefuse.fusion.fuse import PreparedTemplate, prepare_template
from facefuse.media.decode import check_image, decode_image
from facefuse.media.encode import TileCodedJpeg
from facefuse.media.limits import ImageLimits
from facefuse.storage.blobs import BlobStore
from facefuse.storage.database import Connection, Database, iso_utc
from facefuse.templates.cache import LoadedCache
from facefuse.vision.checks import require_template_faces
from facefuse.vision.detect import detect_faces
from facefuse.vision.faces import Face
from facefuse.vision.hands import held_mask

DEMO_TEMPLATE_ID = "gjw4tjeloaba2psk973"
DEMO_TEMPLATE_NAME = "demo"
TEMPLATE_ID_RE = re.compile(r"[0-9a-z]{16,19}")
GENERATED_ID_LENGTH = 19
ID_ALPHABET = string.digits + string.ascii_lowercase
MAX_NAME_LENGTH = 200
EXTENSIONS = {"jpeg": "jpg", "png": "png"}
CACHE_TEMPLATES = 32
DEFAULT_LIMITS = ImageLimits()
CACHE_BYTES = 512 * 1024 * 1024
BLOB_FOLDER = "templates"
TEMPLATES_LOCK = "facefuse:templates"
_INFO_COLUMNS = "template_id, revision, name, format, width, height, face_count, fuse_degree, shape_degree, created_at"


@dataclass(frozen=True)
class TemplateInfo:
    template_id: str
    name: str
    faces: int  # how many
    width: int
    height: int
    created_at: str  # ISO 8601 UTC
    fuse_degree: int | None = None  # None: the server's default
    shape_degree: int | None = None
    format: str = "jpeg"  # of the stored photo: "jpeg" or "png"
    revision: str = field(default="", repr=False)  # changes whenever the id is added anew

    def to_dict(self) -> dict[str, object]:
        """The admin API and CLI view (docs/api.md B.1)."""
        return {
            "template_id": self.template_id,
            "name": self.name,
            "faces": self.faces,
            "width": self.width,
            "height": self.height,
            "created_at": self.created_at,
        }

    @property
    def key(self) -> tuple[str, str]:
        """What a loaded template is cached under: its id and revision."""
        return (self.template_id, self.revision)

    @property
    def file_name(self) -> str:
        return f"{self.template_id}.{self.revision}.{EXTENSIONS[self.format]}"

    @property
    def blob_name(self) -> str:
        return f"{BLOB_FOLDER}/{self.file_name}"


@dataclass(frozen=True)
class LoadedTemplate:
    """A template ready to fuse into; shared by every request: image and landmarks are read-only."""

    info: TemplateInfo
    image: UInt8Array  # RGB uint8 (H, W, 3)
    faces: list[Face]  # left to right
    prepared: tuple[PreparedTemplate, ...] = ()  # what fusion needs of each face, worked out once
    encoded: TileCodedJpeg | None = None  # the image as results are encoded, for re-encoding only around faces
    photo: bytes | None = None  # the stored file, which a result's signed provenance names by its hash

    @property
    def nbytes(self) -> int:
        encoded = self.encoded.nbytes if self.encoded is not None else 0
        photo = len(self.photo) if self.photo is not None else 0
        return self.image.nbytes + sum(p.nbytes for p in self.prepared) + encoded + photo


class TemplateRegistry:
    """Templates by id: add (check, analyse once, store), get, list, load (cached), remove.

    Safe to share between threads, and between processes on the same data dir.
    Errors: 10003 bad or taken id / bad option, 10005-10008 image rules,
    220003 no face in the photo, 10011 load of an unknown id.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        image_limits: ImageLimits = DEFAULT_LIMITS,
        cache_templates: int = CACHE_TEMPLATES,
        cache_bytes: int = CACHE_BYTES,
        result_quality: int | None = None,
    ) -> None:
        self.db = db
        self.result_quality = result_quality  # when set, load() keeps the image encoded at it
        self.blobs = blobs
        self.image_limits = image_limits
        self._cache: LoadedCache[LoadedTemplate] = LoadedCache(cache_templates, cache_bytes)
        self.clean_orphans()

    # ------------------------------------------------------------ adding

    def add(
        self,
        photo: bytes,
        template_id: str | None = None,
        name: str | None = None,
        fuse_degree: int | None = None,
        shape_degree: int | None = None,
    ) -> TemplateInfo:
        """Check, analyse and store a template photo; 10003 for a bad or taken id, 220003 without a face."""
        _check_template_id(template_id)
        _check_name(name)
        _check_degree("fuse_degree", fuse_degree)
        _check_degree("shape_degree", shape_degree)
        if template_id is not None:
            self._refuse_taken(template_id)  # early, before the costly analysis; again under the lock
        fmt = check_image(photo, self.image_limits)[0]
        image = decode_image(photo, self.image_limits)
        faces = detect_faces(image, every_face=True)
        require_template_faces(faces)
        height, width = image.shape[:2]  # upright: EXIF orientation applied
        info = TemplateInfo(
            template_id=template_id or _new_template_id(),
            name=name or "",
            faces=len(faces),
            width=width,
            height=height,
            created_at=iso_utc(),
            fuse_degree=fuse_degree,
            shape_degree=shape_degree,
            format=fmt,
            revision=secrets.token_hex(8),
        )
        self._store(info, photo, faces)
        return info

    def _store(self, info: TemplateInfo, photo: bytes, faces: list[Face]) -> None:
        faces_json = json.dumps([face.to_dict() for face in faces], separators=(",", ":"))
        with self.db.transaction(lock=TEMPLATES_LOCK) as conn:
            self._refuse_taken(info.template_id, conn)
            self.blobs.put(info.blob_name, photo)
            conn.execute(
                f"INSERT INTO templates ({_INFO_COLUMNS}, faces_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.template_id,
                    info.revision,
                    info.name,
                    info.format,
                    info.width,
                    info.height,
                    info.faces,
                    info.fuse_degree,
                    info.shape_degree,
                    info.created_at,
                    faces_json,
                ),
            )

    def _refuse_taken(self, template_id: str, conn: Connection | None = None) -> None:
        conn = conn or self.db.connection()
        if conn.execute("SELECT 1 FROM templates WHERE template_id = ?", (template_id,)).fetchone():
            raise FacefuseError(Err.INVALID_PARAMETER, f"template_id {template_id!r} already exists")

    def ensure_demo(self) -> TemplateInfo:
        """The demo template (matplotlib's public-domain photo of Grace Hopper), added if missing."""
        existing = self.get(DEMO_TEMPLATE_ID)
        if existing is not None:
            return existing
        try:
            return self.add(demo_photo(), template_id=DEMO_TEMPLATE_ID, name=DEMO_TEMPLATE_NAME)
        except FacefuseError:
            demo = self.get(DEMO_TEMPLATE_ID)  # another process added it at the same moment
            if demo is None:
                raise
            return demo

    # ------------------------------------------------------------ reading

    def get(self, template_id: str) -> TemplateInfo | None:
        if not _is_template_id(template_id):
            return None
        row = self.db.query_one(f"SELECT {_INFO_COLUMNS} FROM templates WHERE template_id = ?", (template_id,))
        return _info_from_row(row) if row is not None else None

    def list(self) -> list[TemplateInfo]:
        """Every template, oldest first."""
        rows = self.db.query(f"SELECT {_INFO_COLUMNS} FROM templates ORDER BY created_at, template_id")
        return [_info_from_row(row) for row in rows]

    def newest(self, count: int) -> builtins.list[TemplateInfo]:  # builtins: the method list shadows it here
        """The `count` templates added last, newest first (insertion order: created_at is
        to the second)."""
        if count <= 0:
            return []
        rows = self.db.query(f"SELECT {_INFO_COLUMNS} FROM templates ORDER BY rowid DESC LIMIT ?", (count,))
        return [_info_from_row(row) for row in rows]

    def load(self, template_id: str) -> LoadedTemplate:
        """The template's image and faces (cached); 10011 TEMPLATE_NOT_FOUND if there is none."""
        info = self.get(template_id)
        if info is None:
            raise _not_found(template_id)
        cached = self._cache.get(info.key)
        if cached is not None:
            return cached
        loaded = self._read(info)
        self._cache.put(loaded.info.key, loaded)
        return loaded

    def faces(self, info: TemplateInfo) -> builtins.list[Face] | None:
        """The template's faces as analysed when it was added, left to right; None once removed."""
        row = self.db.query_one(
            "SELECT faces_json FROM templates WHERE template_id = ? AND revision = ?", (info.template_id, info.revision)
        )
        return None if row is None else [_frozen_face(Face.from_dict(d)) for d in json.loads(row["faces_json"])]

    def _photo(self, info: TemplateInfo) -> bytes:
        """The stored photo as it was added; 10011 once removed."""
        photo = self.blobs.get(info.blob_name)
        if photo is None:
            raise _not_found(info.template_id)
        return photo

    def image(self, info: TemplateInfo) -> UInt8Array:
        """The stored photo, upright RGB, decoded anew (not cached); 10011 once removed."""
        return self._decoded(info, self._photo(info))

    def _decoded(self, info: TemplateInfo, photo: bytes) -> UInt8Array:
        return decode_image(photo, _stored_limits(self.image_limits, info, len(photo)))

    def _read(self, info: TemplateInfo) -> LoadedTemplate:
        faces = self.faces(info)
        if faces is None:
            raise _not_found(info.template_id)
        photo = self._photo(info)
        image = self._decoded(info, photo)
        image.setflags(write=False)
        # Each face's hands (vision.hands) are found here, once a load: they stay in front.
        prepared = tuple(prepare_template(image, face, partial(held_mask, image, face)) for face in faces)
        for item in prepared:
            item.patch.setflags(write=False)
        encoded = None if self.result_quality is None else TileCodedJpeg.encode(image, self.result_quality)
        return LoadedTemplate(info=info, image=image, faces=faces, prepared=prepared, encoded=encoded, photo=photo)

    def cache_stats(self) -> dict[str, int]:
        """Loaded templates kept in this process, their image bytes, hits and misses so far."""
        return self._cache.stats()

    # ------------------------------------------------------------ removing

    def remove(self, template_id: str) -> bool:
        """Delete the template (row first, then its file); False if there is none."""
        info = self.get(template_id)
        if info is None:
            return False
        with self.db.transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM templates WHERE template_id = ? AND revision = ?", (info.template_id, info.revision)
            ).rowcount
        self.blobs.delete(info.blob_name)
        self._cache.drop(info.key)
        return deleted == 1

    def clean_orphans(self) -> int:
        """Delete blobs no template row names (left by a crash mid-add or mid-remove)."""
        with self.db.transaction(lock=TEMPLATES_LOCK) as conn:
            known = {_info_from_row(row).blob_name for row in conn.execute(f"SELECT {_INFO_COLUMNS} FROM templates")}
            orphans = [blob.name for blob in self.blobs.list(BLOB_FOLDER) if blob.name not in known]
            for name in orphans:
                self.blobs.delete(name)
        return len(orphans)


def demo_photo() -> bytes:
    """matplotlib's sample photo of Grace Hopper (public domain)."""
    import matplotlib

    return (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes()


def _new_template_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(GENERATED_ID_LENGTH))


def _is_template_id(value: object) -> bool:
    return isinstance(value, str) and TEMPLATE_ID_RE.fullmatch(value) is not None


def _check_template_id(template_id: str | None) -> None:
    if template_id is not None and not _is_template_id(template_id):
        raise FacefuseError(
            Err.INVALID_PARAMETER, "template_id must be 16 to 19 characters, each a digit or a lowercase letter a-z"
        )


def _check_name(name: str | None) -> None:
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not name.isprintable()):
        raise FacefuseError(
            Err.INVALID_PARAMETER, f"name must be text of at most {MAX_NAME_LENGTH} printable characters"
        )


def _check_degree(field_name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100):
        raise FacefuseError(Err.INVALID_PARAMETER, f"{field_name} must be an integer from 0 to 100")


def _not_found(template_id: str) -> FacefuseError:
    return FacefuseError(Err.TEMPLATE_NOT_FOUND, f"no template {template_id[:64]!r}")


def _stored_limits(limits: ImageLimits, info: TemplateInfo, size: int) -> ImageLimits:
    """Limits a stored template always meets, even if the configured ones were tightened since."""
    return replace(
        limits,
        max_bytes=max(limits.max_bytes, size),
        min_side=min(limits.min_side, info.width, info.height),
        max_side=max(limits.max_side, info.width, info.height),
    )


def _frozen_face(face: Face) -> Face:
    face.landmarks.setflags(write=False)
    return face


def _info_from_row(row: Any) -> TemplateInfo:
    return TemplateInfo(
        template_id=row["template_id"],
        name=row["name"],
        faces=row["face_count"],
        width=row["width"],
        height=row["height"],
        created_at=row["created_at"],
        fuse_degree=row["fuse_degree"],
        shape_degree=row["shape_degree"],
        format=row["format"],
        revision=row["revision"],
    )
