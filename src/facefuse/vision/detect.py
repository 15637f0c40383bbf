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
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facefuse.vision import upright
from facefuse.vision.checks import FaceRules
from facefuse.vision.faces import Face
from facefuse.vision.pose import head_pose

DETECTION_SIDE = 640
MIN_DETECTION_SCORE = 0.5
CROP_SIDE = 384  # FaceMesh input crops are resized to this many pixels
CROP_CONTEXT = 2.0  # crop side / detected box side
UPRIGHT_TOLERANCE = 35.0  # degrees of in-plane tilt left to FaceMesh
MAX_FACES = 16  # a user photo: the largest face is the user's
MAX_TEMPLATE_FACES = 64  # every_face; the wire's template_face_index goes up to 63

# The window pyramid: BlazeFace short-range looks at 128 px. With the 50 faces of the group
# photos of ../shared/faces each put at random places in windows, it finds 97-100 % of
# faces of 28-96 px (Face.size) at a score of MIN_WINDOW_SCORE or more (94 % at 24 px);
# on those photos and the no_face ones, boxes on no face score at most 0.72 (a dark jaw
# line in bald_guys), the faces' best boxes 0.89 and up. Full-range finds 95-99 % in its
# 192 px at any score, for 2-3 times the time.
WINDOW_SIDE = 128
WINDOW_FACE_PX = 32  # the smallest face is shown at this size
WINDOW_STEP = 72  # windows overlap by 56 px: every face up to 56 px lies whole in one
LEVEL_RATIO = 1.75  # between pyramid levels: 32 x 1.75 = 56, so the levels' face sizes join
MIN_WINDOW_SCORE = 0.8
# Faces down to this share of the checks' default minimum face side (FaceRules: 48 px or
# 1/48 of the short side) are looked for: a template's faces at the minimum are found with
# room for the box's noise, and a user's face under it answers 20023 "too small", not
# 20003 "no face". The defaults: a FACEFUSE_MIN_FACE_PX set lower is not followed down.
SMALLEST_FACE = 3 / 4
# A user photo in which the whole-photo pass finds no face looks at this many windows at
# most (the finest level; ~1 s in all): faces at the minimum are still seen on the biggest
# photo the image rules accept (4096 x 4096: 74 px for a minimum of 85), faces under it
# down to SMALLEST_FACE of it up to ~4 MP.
MAX_FALLBACK_WINDOWS = 600
_DEFAULT_RULES = FaceRules()

_local = threading.local()


@dataclass(frozen=True)
class FaceBox:
    """A detected face box in pixels of the full image."""

    x: float
    y: float
    side: float
    score: float
    angle: float = 0.0  # degrees to turn the image by so the face stands upright

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.side / 2, self.y + self.side / 2


def detect_faces(rgb: np.ndarray, max_faces: int | None = None, every_face: bool = False) -> list[Face]:
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
        boxes = _suppress_overlaps(boxes + find_small_face_boxes(rgb))
    faces = _faces_in(rgb, boxes[:limit])
    if not faces and not every_face:
        faces = _faces_in(rgb, find_small_face_boxes(rgb, MAX_FALLBACK_WINDOWS)[:limit])
    if not faces:
        # Faces that fill the frame: a few at most, and the graph for MAX_FACES is loaded.
        faces = _landmarks_whole_image(rgb, min(limit, MAX_FACES))
    return sorted(_distinct(faces), key=lambda f: f.center[0])


def _faces_in(rgb: np.ndarray, boxes: list[FaceBox]) -> list[Face]:
    faces = []
    for box in boxes:
        face = landmarks_in_box(rgb, box)
        if face is not None:
            faces.append(face)
    return faces


def find_face_boxes(rgb: np.ndarray) -> list[FaceBox]:
    """Face boxes of the whole photo at once, most confident first, duplicates merged."""
    small, scale = _fit(rgb, DETECTION_SIDE)
    boxes: list[FaceBox] = []
    for model in (1, 0):
        result = _run(_detector(model), small)
        boxes = _boxes_from(result, small.shape, scale)
        if boxes:
            break
    return _suppress_overlaps(sorted(boxes, key=lambda b: -b.score))


def find_small_face_boxes(rgb: np.ndarray, max_windows: int | None = None) -> list[FaceBox]:
    """Face boxes down to SMALLEST_FACE of the minimum face side, most confident first.

    BlazeFace short-range on WINDOW_SIDE px windows, WINDOW_STEP apart, of copies scaled
    so that the smallest face is WINDOW_FACE_PX, then LEVEL_RATIO times smaller each level
    up to the copy that fits in one window: every face from the smallest to the whole
    photo lies whole in some window at 32-56 px, where the model sees it.
    max_windows: about this many windows at most in the finest copy (the levels above add
    half as many again); on a bigger photo the smallest face found is bigger.
    """
    h, w = rgb.shape[:2]
    smallest = SMALLEST_FACE * _DEFAULT_RULES.min_face_side(rgb.shape)
    scale = min(1.0, WINDOW_FACE_PX / smallest)
    if max_windows is not None:
        scale = min(scale, WINDOW_STEP * float(np.sqrt(max_windows / (w * h))))
    boxes: list[FaceBox] = []
    level = np.ascontiguousarray(rgb)
    while True:
        if scale < 1:
            # Each level shrinks the one before: a fraction of the cost of the whole photo.
            level = shrink(level, w * scale / level.shape[1])
        lh, lw = level.shape[:2]
        back_x, back_y = w / lw, h / lh  # level pixels -> image pixels
        for y0 in _window_starts(lh):
            for x0 in _window_starts(lw):
                window = _window(level, x0, y0)
                for box in _boxes_from(_run(_detector(0), window), window.shape, 1.0):
                    if box.score >= MIN_WINDOW_SCORE:
                        boxes.append(FaceBox((box.x + x0) * back_x, (box.y + y0) * back_y,
                                             box.side * back_x, box.score, box.angle))
        if max(lh, lw) <= WINDOW_SIDE:
            break
        scale /= LEVEL_RATIO
    return _suppress_overlaps(sorted(boxes, key=lambda b: -b.score))


def _window_starts(length: int) -> list[int]:
    """Window origins along one side: WINDOW_STEP apart, the last one flush with the end."""
    if length <= WINDOW_SIDE:
        return [0]
    starts = list(range(0, length - WINDOW_SIDE, WINDOW_STEP))
    return starts + [length - WINDOW_SIDE]


def _window(level: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The WINDOW_SIDE square at x0, y0, grey past the copy's edges, so the model sees every
    window at the copy's scale (it resizes any image to its 128 px input)."""
    window = level[y0:y0 + WINDOW_SIDE, x0:x0 + WINDOW_SIDE]
    if window.shape[:2] == (WINDOW_SIDE, WINDOW_SIDE):
        return np.ascontiguousarray(window)
    padded = np.full((WINDOW_SIDE, WINDOW_SIDE, 3), 128, np.uint8)
    padded[:window.shape[0], :window.shape[1]] = window
    return padded


def landmarks_in_box(rgb: np.ndarray, box: FaceBox) -> Face | None:
    """FaceMesh landmarks of the face in `box`, in full-image pixels.

    The crop is turned so the face stands upright (from BlazeFace's eye and mouth points):
    FaceMesh fits an upright face even to one lying sideways or upside down. BlazeFace's
    points do not tell upside down from upright, so that is checked on the fit itself.
    """
    fitted = _fit_in_box(rgb, box, box.angle)
    if fitted is None:
        return None
    face, crop, to_crop = fitted
    ratio = upright.brow_to_cheek_luma(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), face.landmarks)
    if ratio > upright.UPSIDE_DOWN_RATIO:
        # Fitted upside down (see vision/upright.py): fit the crop turned half a turn, and
        # keep that only if it reads upright itself.
        turned = _fit_in_box(rgb, box, box.angle + 180.0)
        if turned is not None:
            t_face, t_crop, t_to_crop = turned
            if upright.brow_to_cheek_luma(cv2.cvtColor(t_crop, cv2.COLOR_RGB2GRAY), t_face.landmarks) < 1.0:
                face, to_crop = t_face, t_to_crop
    return _moved(face, to_crop)


def _fit_in_box(rgb: np.ndarray, box: FaceBox, angle: float) -> tuple[Face, np.ndarray, np.ndarray] | None:
    """FaceMesh on the box's crop turned by `angle`: the face in crop pixels, the crop, and
    the affine matrix from image to crop pixels."""
    crop, to_crop = _crop(rgb, box.center, box.side * CROP_CONTEXT, CROP_SIDE, angle)
    faces = _mesh_faces(crop, max_faces=1, score=box.score)
    return (faces[0], crop, to_crop) if faces else None


def _landmarks_whole_image(rgb: np.ndarray, max_faces: int) -> list[Face]:
    h, w = rgb.shape[:2]
    for pad_fraction in (0.0, 0.3):
        side = max(h, w) * (1 + 2 * pad_fraction)
        target = int(min(max(side, CROP_SIDE), 1024))
        crop, to_crop = _crop(rgb, (w / 2, h / 2), side, target, 0.0)
        faces = _mesh_faces(crop, max_faces=max_faces, score=0.5)
        if faces:
            return [_moved(face, to_crop) for face in faces]
    return []


def _mesh_faces(rgb: np.ndarray, max_faces: int, score: float) -> list[Face]:
    h, w = rgb.shape[:2]
    result = _run(_mesh(max_faces), rgb, settled=lambda found: found.multi_face_landmarks is not None)
    faces = []
    for lms in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
        faces.append(Face(landmarks=pts, score=score, yaw=0.0, pitch=0.0, roll=0.0))
    return faces


def _moved(face: Face, to_crop: np.ndarray) -> Face:
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
    rgb: np.ndarray, center: tuple[float, float], side: float, out_side: int, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """A square window around `center`, turned by `angle` degrees, as an out_side px image
    (grey outside the photo), and the affine matrix from image to crop pixels."""
    scale = out_side / side
    to_crop = cv2.getRotationMatrix2D(center, angle, scale)
    to_crop[:, 2] += np.array([out_side / 2 - center[0], out_side / 2 - center[1]])
    from_source = to_crop
    source = rgb
    if scale < 0.66:
        # Shrink with area averaging first (warpAffine alone would alias), and only the
        # window's bounding region: shrinking the whole of a 16 MP photo costs ~20 ms.
        source, to_source = _shrunk_window(rgb, center, side, scale * 1.25)
        from_source = _compose(to_crop, _inverse(to_source))
    crop = cv2.warpAffine(source, from_source, (out_side, out_side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    return crop, to_crop


def _shrunk_window(rgb: np.ndarray, center: tuple[float, float], side: float,
                   factor: float) -> tuple[np.ndarray, np.ndarray]:
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


def shrink(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A copy about `factor` (< 1) times the size, without aliasing, cheaply: whole-pixel
    blocks are averaged first (OpenCV's fast INTER_AREA path), and what remains, at least
    half size, is bilinear; a fractional INTER_AREA costs 3-6x more on big photos."""
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    block = int(1 / factor)
    if block >= 2 and w // block >= size[0] and h // block >= size[1]:
        rgb = cv2.resize(rgb[: h // block * block, : w // block * block], (w // block, h // block),
                         interpolation=cv2.INTER_AREA)
    if (rgb.shape[1], rgb.shape[0]) == size:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def _inverse(affine: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(affine)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine matrix of outer(inner(p))."""
    return outer[:, :2] @ inner + np.array([[0, 0, outer[0, 2]], [0, 0, outer[1, 2]]])


def _fit(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image scaled to at most max_side px, and the factor back to full size."""
    h, w = rgb.shape[:2]
    factor = max(h, w) / max_side
    if factor <= 1:
        return np.ascontiguousarray(rgb), 1.0
    small = shrink(rgb, 1 / factor)
    return small, max(h, w) / max(small.shape[:2])


def _boxes_from(result: object, shape: tuple[int, ...], scale: float) -> list[FaceBox]:
    h, w = shape[:2]
    boxes = []
    for detection in getattr(result, "detections", None) or []:
        score = float(detection.score[0])
        if score < MIN_DETECTION_SCORE:
            continue
        rel = detection.location_data.relative_bounding_box
        bw, bh = rel.width * w, rel.height * h
        side = max(bw, bh)
        cx, cy = (rel.xmin * w + bw / 2), (rel.ymin * h + bh / 2)
        angle = _upright_angle(detection.location_data.relative_keypoints, w, h)
        boxes.append(FaceBox((cx - side / 2) * scale, (cy - side / 2) * scale, side * scale, score, angle))
    return boxes


def _upright_angle(keypoints: object, w: int, h: int) -> float:
    """Rotation (degrees, counter-clockwise) that puts the mouth below the eyes.

    BlazeFace keypoints: 0 right eye, 1 left eye, 3 mouth centre. Small tilts stay with
    FaceMesh, which handles them itself; only clearly turned faces are straightened.
    """
    points = [(k.x * w, k.y * h) for k in keypoints]  # type: ignore[attr-defined]
    if len(points) < 4:
        return 0.0
    eyes = np.mean(points[:2], axis=0)
    down = np.asarray(points[3]) - eyes
    tilt = float(np.degrees(np.arctan2(-down[0], down[1])))  # 0 when the mouth is straight below
    return -tilt if abs(tilt) > UPRIGHT_TOLERANCE else 0.0


def _suppress_overlaps(boxes: list[FaceBox]) -> list[FaceBox]:
    kept: list[FaceBox] = []
    for box in boxes:
        if all(_overlap(box, other) < 0.4 for other in kept):
            kept.append(box)
    return kept


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two square boxes."""
    ix = max(0.0, min(a.x + a.side, b.x + b.side) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.side, b.y + b.side) - max(a.y, b.y))
    inter = ix * iy
    return inter / (a.side**2 + b.side**2 - inter)


def _distinct(faces: list[Face]) -> list[Face]:
    """Drops a face whose centre lies within another, larger face's half-size."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.size):
        cx, cy = face.center
        if all(np.hypot(cx - k.center[0], cy - k.center[1]) > k.size / 2 for k in kept):
            kept.append(face)
    return kept


def _detector(model: int):
    """One BlazeFace graph per thread and model: mediapipe graphs are not thread-safe."""
    from mediapipe.python.solutions import face_detection

    cache = _thread_cache("detectors")
    if model not in cache:
        cache[model] = _built(lambda: face_detection.FaceDetection(
            model_selection=model, min_detection_confidence=MIN_DETECTION_SCORE
        ))
    return cache[model]


def _mesh(max_faces: int):
    from mediapipe.python.solutions import face_mesh

    cache = _thread_cache("meshes")
    if max_faces not in cache:
        cache[max_faces] = _built(lambda: face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=0.5,
        ))
    return cache[max_faces]


# mediapipe's C++ start-up notices (TFLite's "Created TensorFlow Lite XNNPACK delegate",
# absl's W0000 lines) go to the process's stderr past Python's logging and are not errors.
# They come while a graph opens its calculators, on mediapipe's own threads after the
# graph's start has returned, and the face mesh's last one on its first face.
def _built(make: Callable[[], Any]) -> Any:
    """A new graph, made and run once on a blank image with native stderr silenced: a run
    returns when the graph is idle, so every calculator has opened (and printed) by then."""
    with _native_stderr_silenced():
        graph = make()
        graph.process(np.zeros((64, 64, 3), np.uint8))
    return graph


def _run(graph: Any, image: np.ndarray, settled: Callable[[Any], bool] = lambda _: True) -> Any:
    """graph.process(image), its native stderr silenced until `settled(result)`."""
    if id(graph) in _settled_graphs:
        return graph.process(image)
    with _native_stderr_silenced():
        result = graph.process(image)
    if settled(result):
        _settled_graphs.add(id(graph))
    return result


_settled_graphs: set[int] = set()
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null meanwhile (one such window at a time)."""
    with _stderr_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _thread_cache(name: str) -> dict:
    cache = getattr(_local, name, None)
    if cache is None:
        cache = {}
        setattr(_local, name, cache)
    return cache
