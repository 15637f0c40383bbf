"""Face detection and 478-point landmarks with the models mediapipe 0.10.21 ships.

Two stages, because FaceMesh alone only finds faces that fill much of the frame:
1. boxes: BlazeFace full-range (then short-range if that finds nothing) on the whole photo
   (`find_face_boxes`), which sees faces down to ~1/8 of the photo's long side, because the
   model looks at 192 px; and, for a template's every face or when that finds nothing,
   BlazeFace short-range on 128 px windows of a pyramid of scaled copies
   (`find_small_face_boxes`), which sees faces down to `SMALLEST_FACE` of the minimum;
2. `landmarks_in_box`: FaceMesh with iris refinement on a square crop twice the box size,
   cut from the full-resolution image, so small faces get full landmark resolution.
When the detectors find nothing, FaceMesh looks at the whole image, padded: close-up crops
whose face touches the borders (LFW-style 150x150 photos) are found that way.

This module holds the stages' order and FaceMesh; boxes.py reads BlazeFace's boxes,
pyramid.py holds the window pyramid (find_small_face_boxes) and shrink, graphs.py keeps
the mediapipe graphs.
"""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.vision import upright
from facefuse.vision.boxes import FaceBox, boxes_from, detector, suppress_overlaps
from facefuse.vision.faces import Face
from facefuse.vision.graphs import built, run, thread_cache
from facefuse.vision.pose import head_pose
from facefuse.vision.pyramid import find_small_face_boxes, shrink

DETECTION_SIDE = 640
CROP_SIDE = 384  # FaceMesh input crops are resized to this many pixels
CROP_CONTEXT = 2.0  # crop side / detected box side
MAX_FACES = 16  # a user photo: the largest face is the user's
MAX_TEMPLATE_FACES = 64  # every_face; the wire's template_face_index goes up to 63
# A user photo in which the whole-photo pass finds no face looks at this many windows at
# most (the finest level, which costs the most): faces at the minimum are still seen on the biggest
# photo the image rules accept (4096 x 4096: 74 px for a minimum of 85), faces under it
# down to SMALLEST_FACE of it up to ~4 MP.
MAX_FALLBACK_WINDOWS = 600


def detect_faces(rgb: UInt8Array, max_faces: int | None = None, every_face: bool = False) -> list[Face]:
    """Faces in an RGB uint8 image, ordered left to right.

    A user photo (every_face False) looks at the whole photo at once, and looks for
    smaller faces only when that finds none: the user's face is the largest anyway.
    Template photos (every_face True: registration and ad-hoc templates) always look for
    every face down to the minimum, so each face of a group photo can be filled.
    max_faces: at most this many, the most confident (default MAX_FACES, or
    MAX_TEMPLATE_FACES with every_face).
    """
    limit = max_faces or (MAX_TEMPLATE_FACES if every_face else MAX_FACES)
    boxes = find_face_boxes(rgb)
    if every_face:
        # The whole-photo boxes come first, so the faces a request finds keep their landmarks.
        boxes = suppress_overlaps(boxes + find_small_face_boxes(rgb))
    faces = _faces_in(rgb, boxes[:limit])
    if not faces and not every_face:
        faces = _faces_in(rgb, find_small_face_boxes(rgb, MAX_FALLBACK_WINDOWS)[:limit])
    if not faces:
        # Faces that fill the frame: a few at most, and the graph for MAX_FACES is loaded.
        faces = _landmarks_whole_image(rgb, min(limit, MAX_FACES))
    return sorted(_distinct(faces), key=lambda f: f.center[0])


def _faces_in(rgb: UInt8Array, boxes: list[FaceBox]) -> list[Face]:
    faces = []
    for box in boxes:
        face = landmarks_in_box(rgb, box)
        if face is not None:
            faces.append(face)
    return faces


def find_face_boxes(rgb: UInt8Array) -> list[FaceBox]:
    """Face boxes of the whole photo at once, most confident first, duplicates merged."""
    small, scale = _fit(rgb, DETECTION_SIDE)
    boxes: list[FaceBox] = []
    for model in (1, 0):
        result = run(detector(model), small)
        boxes = boxes_from(result, small.shape, scale)
        if boxes:
            break
    return suppress_overlaps(sorted(boxes, key=lambda b: -b.score))


def landmarks_in_box(rgb: UInt8Array, box: FaceBox) -> Face | None:
    """FaceMesh landmarks of the face in `box`, in full-image pixels.

    The crop is turned so the face stands upright (from BlazeFace's eye and mouth points):
    FaceMesh fits an upright face even to one lying sideways or upside down. BlazeFace's
    points do not tell upside down from upright, so that is checked on the fit itself.
    """
    fitted = _fit_in_box(rgb, box, box.angle)
    if fitted is None:
        return None
    face, crop, to_crop = fitted
    ratio = upright.brow_to_cheek_luma(cast(UInt8Array, cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)), face.landmarks)
    if ratio > upright.UPSIDE_DOWN_RATIO:
        # Fitted upside down (see vision/upright.py): fit the crop turned half a turn, and
        # keep that only if it reads upright itself.
        turned = _fit_in_box(rgb, box, box.angle + 180.0)
        if turned is not None:
            t_face, t_crop, t_to_crop = turned
            t_gray = cast(UInt8Array, cv2.cvtColor(t_crop, cv2.COLOR_RGB2GRAY))
            if upright.brow_to_cheek_luma(t_gray, t_face.landmarks) < 1.0:
                face, to_crop = t_face, t_to_crop
    return _moved(face, to_crop)


def _fit_in_box(rgb: UInt8Array, box: FaceBox, angle: float) -> tuple[Face, UInt8Array, FloatArray] | None:
    """FaceMesh on the box's crop turned by `angle`: the face in crop pixels, the crop, and
    the affine matrix from image to crop pixels."""
    crop, to_crop = _crop(rgb, box.center, box.side * CROP_CONTEXT, CROP_SIDE, angle)
    faces = _mesh_faces(crop, max_faces=1, score=box.score)
    return (faces[0], crop, to_crop) if faces else None


def _landmarks_whole_image(rgb: UInt8Array, max_faces: int) -> list[Face]:
    h, w = rgb.shape[:2]
    for pad_fraction in (0.0, 0.3):
        side = max(h, w) * (1 + 2 * pad_fraction)
        target = int(min(max(side, CROP_SIDE), 1024))
        crop, to_crop = _crop(rgb, (w / 2, h / 2), side, target, 0.0)
        faces = _mesh_faces(crop, max_faces=max_faces, score=0.5)
        if faces:
            return [_moved(face, to_crop) for face in faces]
    return []


def _mesh_faces(rgb: UInt8Array, max_faces: int, score: float) -> list[Face]:
    h, w = rgb.shape[:2]
    result = run(_mesh(max_faces), rgb, settled=lambda found: found.multi_face_landmarks is not None)
    faces = []
    for lms in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
        faces.append(Face(landmarks=pts, score=score, yaw=0.0, pitch=0.0, roll=0.0))
    return faces


def _moved(face: Face, to_crop: FloatArray) -> Face:
    """Landmarks from crop pixels back to image pixels, with the head pose computed."""
    back = cv2.invertAffineTransform(to_crop)
    crop_pts = face.landmarks.astype(np.float64)
    pts = np.empty_like(crop_pts)
    pts[:, :2] = crop_pts[:, :2] @ back[:, :2].T + back[:, 2]
    pts[:, 2] = crop_pts[:, 2] * np.sqrt(abs(np.linalg.det(back[:, :2])))
    pts32 = pts.astype(np.float32)
    yaw, pitch, roll = head_pose(pts32)
    return Face(landmarks=pts32, score=face.score, yaw=yaw, pitch=pitch, roll=roll)


def _crop(
    rgb: UInt8Array, center: tuple[float, float], side: float, out_side: int, angle: float
) -> tuple[UInt8Array, FloatArray]:
    """A square window around `center`, turned by `angle` degrees, as an out_side px image
    (grey outside the photo), and the affine matrix from image to crop pixels."""
    scale = out_side / side
    to_crop = cast(FloatArray, cv2.getRotationMatrix2D(center, angle, scale))
    to_crop[:, 2] += np.array([out_side / 2 - center[0], out_side / 2 - center[1]])
    from_source = to_crop
    source = rgb
    if scale < 0.66:
        # Shrink with area averaging first (warpAffine alone would alias), and only the
        # window's bounding region: shrinking the whole of a 16 MP photo costs many times more.
        source, to_source = _shrunk_window(rgb, center, side, scale * 1.25)
        from_source = _compose(to_crop, _inverse(to_source))
    crop = cast(
        UInt8Array,
        cv2.warpAffine(
            source,
            from_source,
            (out_side, out_side),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(128, 128, 128),
        ),
    )
    return crop, to_crop


def _shrunk_window(
    rgb: UInt8Array, center: tuple[float, float], side: float, factor: float
) -> tuple[UInt8Array, FloatArray]:
    """The region any turn of a side x side square around center can touch, area-shrunk
    by about factor, and the affine matrix from image to shrunk-region pixels."""
    h, w = rgb.shape[:2]
    reach = side * 0.7072 + 2 / factor  # half the diagonal, plus a margin for the filter
    x0, y0 = max(0, int(center[0] - reach)), max(0, int(center[1] - reach))
    x1, y1 = min(w, int(np.ceil(center[0] + reach))), min(h, int(np.ceil(center[1] + reach)))
    if x1 - x0 < 2 or y1 - y0 < 2:  # the window lies off the photo: nothing to shrink
        return rgb, np.eye(2, 3)
    small = shrink(rgb[y0:y1, x0:x1], factor)
    sx, sy = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
    # resize's pixel-centre convention: small = (image - origin + 0.5) * s - 0.5
    return small, np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]])


def _inverse(affine: FloatArray) -> FloatArray:
    return cast(FloatArray, cv2.invertAffineTransform(affine))


def _compose(outer: FloatArray, inner: FloatArray) -> FloatArray:
    """The affine matrix of outer(inner(p))."""
    return cast(FloatArray, outer[:, :2] @ inner + np.array([[0, 0, outer[0, 2]], [0, 0, outer[1, 2]]]))


def _fit(rgb: UInt8Array, max_side: int) -> tuple[UInt8Array, float]:
    """The image scaled to at most max_side px, and the factor back to full size."""
    h, w = rgb.shape[:2]
    factor = max(h, w) / max_side
    if factor <= 1:
        return np.ascontiguousarray(rgb), 1.0
    small = shrink(rgb, 1 / factor)
    return small, max(h, w) / max(small.shape[:2])


def _distinct(faces: list[Face]) -> list[Face]:
    """Drops a face whose centre lies within another, larger face's half-size."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.size):
        cx, cy = face.center
        if all(np.hypot(cx - k.center[0], cy - k.center[1]) > k.size / 2 for k in kept):
            kept.append(face)
    return kept


def _mesh(max_faces: int) -> Any:  # a mediapipe FaceMesh (mediapipe has no type information)
    from mediapipe.python.solutions import face_mesh

    cache = thread_cache("meshes")
    if max_faces not in cache:
        cache[max_faces] = built(
            lambda: face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=0.5,
            )
        )
    return cache[max_faces]
