"""BlazeFace face boxes: the graph, its detections read as square boxes in image pixels,
each with the turn that stands its face upright, and overlapping boxes merged.

Both the whole-photo pass (detect.find_face_boxes) and the window pyramid
(pyramid.find_small_face_boxes) read their boxes so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facefuse.vision.graphs import built, thread_cache

MIN_DETECTION_SCORE = 0.5
UPRIGHT_TOLERANCE = 35.0  # degrees of in-plane tilt left to FaceMesh


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


def detector(model: int) -> Any:  # a mediapipe FaceDetection (mediapipe has no type information)
    """One BlazeFace graph per thread and model: mediapipe graphs are not thread-safe."""
    from mediapipe.python.solutions import face_detection

    cache = thread_cache("detectors")
    if model not in cache:
        cache[model] = built(
            lambda: face_detection.FaceDetection(model_selection=model, min_detection_confidence=MIN_DETECTION_SCORE)
        )
    return cache[model]


def boxes_from(result: object, shape: tuple[int, ...], scale: float) -> list[FaceBox]:
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


def suppress_overlaps(boxes: list[FaceBox]) -> list[FaceBox]:
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
