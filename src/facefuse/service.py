"""The core use case: photos in, a fused JPEG out. The wire and the CLI both call this."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from facefuse.arrays import UInt8Array
from facefuse.errors import Err, FacefuseError
from facefuse.fusion.fuse import FuseOptions, PreparedTemplate, fuse_prepared, prepare_template
from facefuse.fusion.occluders import clean_photo
from facefuse.labels import Labeller
from facefuse.media.credentials import Ingredient
from facefuse.media.decode import check_image, decode_image, decode_image_reduced
from facefuse.media.encode import TileCodedJpeg, encode_jpeg
from facefuse.media.limits import ImageLimits
from facefuse.media.mark import Box
from facefuse.settings import Settings
from facefuse.templates.registry import TemplateRegistry
from facefuse.vision.checks import FaceRules, require_template_faces, select_user_face
from facefuse.vision.detect import detect_faces
from facefuse.vision.faces import Face
from facefuse.vision.hands import held_mask

Rect = tuple[float, float, float, float]
HALF_DECODE_FROM = 3200  # px of the long side: a JPEG user photo this big is first decoded at 1/2
MESH_FACE_PX = 192  # FaceMesh sees a 384 px crop of twice the face: smaller faces lose detail


@dataclass(frozen=True)
class UserPhoto:
    """One user image file and which face goes where (docs/api.md B.3)."""

    photo: bytes
    face_rect: Rect | None = None
    template_face_index: int | None = None


@dataclass(frozen=True)
class FuseJob:
    users: list[UserPhoto]
    template_id: str | None = None
    template_photo: bytes | None = None  # ad-hoc template (docs/api.md B.2)
    fuse_degree: int | None = None
    shape_degree: int | None = None
    ai_label: bool | None = None  # the visible mark; None: the server's policy decides (docs/labels.md)


@dataclass(frozen=True)
class TemplateScene:
    """A template photo with its faces and default strengths."""

    image: UInt8Array
    faces: list[Face]
    fuse_degree: int | None = None
    shape_degree: int | None = None
    prepared: tuple[PreparedTemplate, ...] = ()  # per face, when worked out beforehand
    encoded: TileCodedJpeg | None = None  # the image encoded as results are, when kept
    template_id: str | None = None  # None: an ad-hoc template photo
    photo: bytes | None = None  # the template's file, hashed for the signed provenance


@dataclass(frozen=True)
class PlacedUser:
    image: UInt8Array
    face: Face
    template_face_index: int


class FuseService:
    """Runs fuse jobs: CPU-bound and synchronous; callers put it on a worker thread."""

    def __init__(self, settings: Settings, registry: TemplateRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.labeller = Labeller(settings)
        self.image_limits = ImageLimits.from_settings(settings)
        self.face_rules = FaceRules(
            min_face_px=settings.min_face_px,
            min_face_fraction=settings.min_face_fraction,
            max_yaw=settings.max_yaw,
            max_pitch_up=settings.max_pitch_up,
            max_pitch_down=settings.max_pitch_down,
        )

    def fuse_to_jpeg(self, job: FuseJob) -> bytes:
        """The result as a labelled JPEG (docs/labels.md): the visible mark when wanted, the
        XMP label always, the signed manifest when configured."""
        scene, placed, result = self._fused(job)
        mark = self.labeller.mark(result, job.ai_label)
        jpeg = self._encoded(scene, placed, result, mark)
        return self.labeller.finish(jpeg, scene.template_id, ingredients(job, scene))

    def _encoded(self, scene: TemplateScene, placed: list[PlacedUser], result: UInt8Array, mark: Box | None) -> bytes:
        """With a template kept encoded, only the tiles of blocks around the faces and the
        mark are encoded again (the same bytes as encoding the whole result)."""
        encoded = scene.encoded
        if encoded is None or encoded.quality != self.settings.jpeg_quality or not scene.prepared:
            return encode_jpeg(result, self.settings.jpeg_quality)
        faces = [scene.prepared[user.template_face_index].changed_box() for user in placed]
        boxes = [
            (min(b[0] for b in faces), min(b[1] for b in faces), max(b[2] for b in faces), max(b[3] for b in faces))
        ]
        return encoded.with_regions(result, boxes if mark is None else [*boxes, mark])

    def fuse(self, job: FuseJob) -> UInt8Array:
        """The fused pixels, before any label."""
        return self._fused(job)[2]

    def _fused(self, job: FuseJob) -> tuple[TemplateScene, list[PlacedUser], UInt8Array]:
        scene = self.load_scene(job)
        placed = self.place_users(job.users, scene.faces)
        return scene, placed, fuse_scene(scene, placed, self.options(job, scene))

    def options(self, job: FuseJob, scene: TemplateScene) -> FuseOptions:
        """The strengths: the request's, else the template's, else the server's."""
        return FuseOptions(
            fuse_degree=_first_set(job.fuse_degree, scene.fuse_degree, self.settings.fuse_degree),
            shape_degree=_first_set(job.shape_degree, scene.shape_degree, self.settings.shape_degree),
        )

    def load_scene(self, job: FuseJob) -> TemplateScene:
        """The registered template, or the ad-hoc one; template id errors come first (cheap)."""
        if job.template_photo is not None:
            image = decode_image(job.template_photo, self.image_limits)
            # A lone user with no face index fills the largest face: the quick detection
            # finds it. Any other request numbers the faces, which must be numbered as the
            # registered template's are (every face).
            lone = len(job.users) == 1 and job.users[0].template_face_index is None
            faces = detect_faces(image, every_face=not lone)
            require_template_faces(faces)
            return TemplateScene(image=image, faces=faces, photo=job.template_photo)
        if not job.template_id:
            raise FacefuseError(Err.MISSING_PARAMETER, "parameter.faceFusePPType is required")
        if self.registry is None:
            raise FacefuseError(Err.TEMPLATE_NOT_FOUND, f"no template library to find {job.template_id!r} in")
        loaded = self.registry.load(job.template_id)
        return TemplateScene(
            image=loaded.image,
            faces=loaded.faces,
            fuse_degree=loaded.info.fuse_degree,
            shape_degree=loaded.info.shape_degree,
            prepared=loaded.prepared,
            encoded=loaded.encoded,
            template_id=loaded.info.template_id,
            photo=loaded.photo,
        )

    def place_users(self, users: list[UserPhoto], template_faces: list[Face]) -> list[PlacedUser]:
        targets = assign_template_faces(users, template_faces)
        placed = []
        for user, target in zip(users, targets):
            image, face = uncovered(*self.read_user_face(user, template_faces[target].size))
            placed.append(PlacedUser(image=image, face=face, template_face_index=target))
        return placed

    def read_user_face(self, user: UserPhoto, template_face_size: float) -> tuple[UInt8Array, Face]:
        """The user's photo and checked face, decoded at a reduced scale when that loses nothing.

        Fusion shrinks the user's face to the template face's size, and FaceMesh looks at it
        through a 384 px crop; a big photo whose face stays above both at half size is
        decoded at 1/2 straight from the DCT (a quarter of the pixels to decode and to
        detect on). Anything else, errors included, takes the full-size path,
        so the checks and their codes are exactly those of the full-resolution photo."""
        fmt, width, height = check_image(user.photo, self.image_limits)
        if fmt == "jpeg" and max(width, height) >= HALF_DECODE_FROM:
            found = self._reduced_user_face(user, (width, height), template_face_size)
            if found is not None:
                return found
        image = decode_image(user.photo, self.image_limits)
        return image, select_user_face(detect_faces(image), image.shape, self.face_rules, user.face_rect)

    def _reduced_user_face(
        self, user: UserPhoto, stored_size: tuple[int, int], template_face_size: float
    ) -> tuple[UInt8Array, Face] | None:
        image = decode_image_reduced(user.photo, 2, self.image_limits)
        faces = detect_faces(image)
        if not faces:
            return None
        full_shape = _upright_shape(stored_size, image.shape)
        try:
            face = select_user_face([_scaled(f, 2.0) for f in faces], full_shape, self.face_rules, user.face_rect)
        except FacefuseError:
            return None
        if face.size / 2 < max(template_face_size, MESH_FACE_PX):  # half size would lose detail
            return None
        return image, _scaled(face, 0.5)


def uncovered(image: UInt8Array, face: Face) -> tuple[UInt8Array, Face]:
    """The user's photo with strands of hair, frames of glasses and the glare on their lenses
    over the face inpainted or taken off, and the face's landmarks fitted again there (a
    strand, a rim or a glare pulls them off the face's own); the photo and face as they are
    when there is nothing over it, or no fit."""
    cleaned = clean_photo(image, face)
    if cleaned is None:
        return image, face
    # Detected again as a whole, so the face is framed for FaceMesh as a photo without the
    # covers would be; the same face is the one nearest where it was.
    near = [f for f in detect_faces(cleaned.image) if np.hypot(*np.subtract(f.center, face.center)) < 0.25 * face.size]
    if not near:
        return image, face
    return cleaned.image, min(near, key=lambda f: np.hypot(*np.subtract(f.center, face.center)))


def assign_template_faces(users: list[UserPhoto], template_faces: list[Face]) -> list[int]:
    """Which template face each user fills: explicit index, else the next free one in order.

    With a single user photo and no explicit index, the largest template face is used.
    """
    count = len(template_faces)
    if len(users) == 1 and users[0].template_face_index is None:
        return [max(range(count), key=lambda i: template_faces[i].size)]
    targets: list[int] = []
    next_free = 0
    for position, user in enumerate(users):
        index = user.template_face_index
        if index is None:
            while next_free in targets:
                next_free += 1
            index = next_free
        if not 0 <= index < count:
            raise FacefuseError(
                Err.INVALID_PARAMETER,
                f"media_info_list[{position}]: the template has {count} face(s); "
                f"template_face_index {index} does not exist",
            )
        if index in targets:
            raise FacefuseError(
                Err.INVALID_PARAMETER,
                f"media_info_list[{position}]: template face {index} is already filled",
            )
        targets.append(index)
    return targets


def fuse_scene(scene: TemplateScene, placed: list[PlacedUser], options: FuseOptions) -> UInt8Array:
    """Each user's face into its template face, one after the other (the first one from
    the template's prepared faces, the next ones from the result so far)."""
    result = scene.image
    for user in placed:
        index = user.template_face_index
        if result is scene.image and scene.prepared:
            prepared = scene.prepared[index]
        else:
            prepared = prepare_template(result, scene.faces[index], partial(held_mask, result, scene.faces[index]))
        result = fuse_user(prepared, user.image, user.face, options)
    return result


def fuse_user(prepared: PreparedTemplate, image: UInt8Array, face: Face, options: FuseOptions) -> UInt8Array:
    """One user's face into a prepared template face; a hand over the user's face is found
    by the hand model when fusion asks for it (fusion.hands.over_user)."""
    return fuse_prepared(prepared, image, face, options, partial(held_mask, image, face))


def ingredients(job: FuseJob, scene: TemplateScene) -> list[Ingredient]:
    """The photos a result is made from, for its signed provenance (their hashes only)."""
    template = [Ingredient(f"template {scene.template_id or '(ad hoc)'}", scene.photo)] if scene.photo else []
    users = [Ingredient(f"user photo {n}", user.photo) for n, user in enumerate(job.users, start=1)]
    return template + users


def _upright_shape(stored_size: tuple[int, int], upright: tuple[int, ...]) -> tuple[int, int, int]:
    """(height, width, 3) of the full-size photo, upright as `upright` (EXIF may turn it)."""
    width, height = stored_size
    if (upright[0] >= upright[1]) != (height >= width):
        width, height = height, width
    return height, width, 3


def _scaled(face: Face, factor: float) -> Face:
    """The same face in an image `factor` times the size (pixel centres kept aligned)."""
    landmarks = face.landmarks.copy()
    landmarks[:, :2] = (landmarks[:, :2] + 0.5) * factor - 0.5
    landmarks[:, 2] *= factor
    return replace(face, landmarks=landmarks)


def _first_set(*values: int | None) -> int:
    return next(v for v in values if v is not None)
