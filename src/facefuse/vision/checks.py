"""The photo checks of docs/api.md part A: which face is the user's, and is it usable?

Thresholds were chosen on the photos of ../shared/faces (docs/vision.md has the numbers):
- yaw: `frontal` photos reach |14|°, `yaw_moderate` 23°, `yaw_large` 46° and 54° -> 35°;
- pitch up (negative): `frontal` reach -23° (obama3), `pitch_large` rise_face -29° -> -26°;
- pitch down (positive): `frontal` reach +16° (eyes closed), lower_face +21° -> +18.5°.
  Up and down differ: a nodding face hides its eyes under the brows sooner.
- features outside the image: eye corners, brow ends, mouth corners and nose tip must lie
  inside; the chin may pass the border by 0.15 x the eye distance (close-up crops such as
  LFW's 150x150 photos cut the chin, and the template supplies the jaw anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.errors import Err, FacefuseError
from facefuse.vision.faces import Face

Rect = tuple[float, float, float, float]

FEATURE_POINTS = {
    "right eye": (33, 133),
    "left eye": (263, 362),
    "right eyebrow": (46,),
    "left eyebrow": (276,),
    "mouth": (61, 291),
    "nose": (1,),
}
CHIN = 152
CHIN_TOLERANCE = 0.15  # of the eye distance


@dataclass(frozen=True)
class FaceRules:
    min_face_px: int = 48
    min_face_fraction: float = 1 / 48  # of the short image side
    max_yaw: float = 35.0
    max_pitch_up: float = 26.0
    max_pitch_down: float = 18.5

    def min_face_side(self, image_shape: tuple[int, ...]) -> float:
        return max(float(self.min_face_px), min(image_shape[:2]) * self.min_face_fraction)


def select_user_face(
    faces: list[Face], image_shape: tuple[int, ...], rules: FaceRules, face_rect: Rect | None = None
) -> Face:
    """The user's face (inside face_rect if given, else the largest), checked; else the error."""
    if not faces:
        raise FacefuseError(Err.DETECT_NOT_FACE, "no face was found in the photo")
    if face_rect is not None:
        face = _face_in_rect(faces, face_rect)
    else:
        face = max(faces, key=lambda f: f.size)
    check_user_face(face, image_shape, rules)
    return face


def check_user_face(face: Face, image_shape: tuple[int, ...], rules: FaceRules) -> None:
    """Size, then features in the frame, then pitch, then yaw: the first failure is reported."""
    need = rules.min_face_side(image_shape)
    if face.size < need:
        raise FacefuseError(
            Err.DETECT_FACE_LOWAREA,
            f"the face is {face.size:.0f} px across; this photo needs at least {need:.0f} px",
        )
    missing = features_outside(face, image_shape)
    if missing:
        raise FacefuseError(Err.DETECT_FACE_OUTOFIMAGE, f"part of the face is outside the photo: {', '.join(missing)}")
    if face.pitch < -rules.max_pitch_up or face.pitch > rules.max_pitch_down:
        direction = "up" if face.pitch < 0 else "down"
        limit = rules.max_pitch_up if face.pitch < 0 else rules.max_pitch_down
        raise FacefuseError(
            Err.DETECT_FACE_PITCHANGLE_BIG,
            f"the head is tilted {direction} {abs(face.pitch):.0f} degrees; at most {limit:g} is accepted",
        )
    if abs(face.yaw) > rules.max_yaw:
        raise FacefuseError(
            Err.DETECT_FACE_YAWANGLE_BIG,
            f"the head is turned {abs(face.yaw):.0f} degrees sideways; at most {rules.max_yaw:g} is accepted",
        )


def features_outside(face: Face, image_shape: tuple[int, ...]) -> list[str]:
    """Names of the facial features that lie (partly) outside the image."""
    h, w = image_shape[:2]
    points = face.points
    eye_distance = float(np.linalg.norm(points[33] - points[263]))

    def outside(index: int, tolerance: float = 0.0) -> bool:
        x, y = points[index]
        return bool(x < -tolerance or y < -tolerance or x > w + tolerance or y > h + tolerance)

    missing = [name for name, idx in FEATURE_POINTS.items() if any(outside(i) for i in idx)]
    if outside(CHIN, CHIN_TOLERANCE * eye_distance):
        missing.append("chin")
    return missing


def require_template_faces(faces: list[Face]) -> None:
    """A template (model) photo must have at least one face: 220003 otherwise."""
    if not faces:
        raise FacefuseError(Err.MODEL_PHOTO_NO_FACE, "no face was found in the template photo")


def _face_in_rect(faces: list[Face], rect: Rect) -> Face:
    """The face overlapping face_rect the most; 20003 when none does."""
    x, y, w, h = rect

    def overlap(face: Face) -> float:
        fx, fy, side, _ = face.box
        ix = max(0.0, min(x + w, fx + side) - max(x, fx))
        iy = max(0.0, min(y + h, fy + side) - max(y, fy))
        return ix * iy / (side * side)

    best = max(faces, key=overlap)
    if overlap(best) <= 0.25:
        raise FacefuseError(Err.DETECT_NOT_FACE, "no face was found inside face_rect")
    return best
