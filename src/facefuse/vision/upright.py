"""Is a face-mesh fit the right way up? FaceMesh (and BlazeFace's key points) fit an upright
face even to one that is upside down in the photo: the eyes land on the eyes, but the brows
on the cheeks and the mouth on the forehead. Brows are darker than the cheek just below the
eye on any upright face, so a fit whose "brows" are clearly the lighter is upside down."""

from __future__ import annotations

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array

# Face-mesh loops of the eyes and brows (facefuse.fusion.mesh takes them from here).
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
# Measured over ../shared/faces (docs/vision.md): at most 1.07 on 106 upright faces, 2.55
# on the one photo turned upside down.
UPSIDE_DOWN_RATIO = 1.4


def brow_to_cheek_luma(gray: UInt8Array, landmarks: FloatArray) -> float:
    """Median luma inside the mesh's brows over that of the same shapes moved as far below
    the eyes (onto the upper cheeks): about 0.6 on an upright face, above 1 upside down."""
    ratios = []
    for brow, eye in ((RIGHT_BROW, RIGHT_EYE), (LEFT_BROW, LEFT_EYE)):
        outline = landmarks[list(brow), :2]
        below = outline + 2 * (landmarks[list(eye), :2].mean(axis=0) - outline.mean(axis=0))
        brow_luma, cheek_luma = _median_inside(gray, outline), _median_inside(gray, below)
        if brow_luma is not None and cheek_luma is not None:
            ratios.append((brow_luma + 8) / (cheek_luma + 8))
    return float(np.mean(ratios)) if ratios else 0.0


def _median_inside(gray: UInt8Array, polygon: FloatArray) -> float | None:
    """Median of the pixels inside the polygon (None when it covers fewer than 4)."""
    h, w = gray.shape
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 1, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - (x0, y0)).astype(np.int32)], 1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    inside = gray[y0:y1, x0:x1][mask > 0]
    return float(np.median(inside)) if inside.size >= 4 else None
