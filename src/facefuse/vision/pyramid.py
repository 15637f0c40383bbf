"""Small faces: BlazeFace short-range on the windows of a pyramid of scaled copies of the
photo, for a template's every face, or for a user photo in which the whole-photo pass finds
none.

The model looks at 128 px, so on the whole photo it sees faces down to about 1/8 of the
photo's long side; a group photo's faces are smaller. Each level of the pyramid shrinks
the photo so that faces of one size band are 32-56 px in some window; the levels' bands
join, from the smallest face looked for up to the whole photo. shrink makes the levels,
and every other shrunk copy detection looks at.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import UInt8Array
from facefuse.vision.boxes import FaceBox, boxes_from, detector, suppress_overlaps
from facefuse.vision.checks import FaceRules
from facefuse.vision.graphs import run

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
_DEFAULT_RULES = FaceRules()


def find_small_face_boxes(rgb: UInt8Array, max_windows: int | None = None) -> list[FaceBox]:
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
                for box in boxes_from(run(detector(0), window), window.shape, 1.0):
                    if box.score >= MIN_WINDOW_SCORE:
                        boxes.append(
                            FaceBox(
                                (box.x + x0) * back_x, (box.y + y0) * back_y, box.side * back_x, box.score, box.angle
                            )
                        )
        if max(lh, lw) <= WINDOW_SIDE:
            break
        scale /= LEVEL_RATIO
    return suppress_overlaps(sorted(boxes, key=lambda b: -b.score))


def _window_starts(length: int) -> list[int]:
    """Window origins along one side: WINDOW_STEP apart, the last one flush with the end."""
    if length <= WINDOW_SIDE:
        return [0]
    starts = list(range(0, length - WINDOW_SIDE, WINDOW_STEP))
    return starts + [length - WINDOW_SIDE]


def _window(level: UInt8Array, x0: int, y0: int) -> UInt8Array:
    """The WINDOW_SIDE square at x0, y0, grey past the copy's edges, so the model sees every
    window at the copy's scale (it resizes any image to its 128 px input)."""
    window = level[y0 : y0 + WINDOW_SIDE, x0 : x0 + WINDOW_SIDE]
    if window.shape[:2] == (WINDOW_SIDE, WINDOW_SIDE):
        return np.ascontiguousarray(window)
    padded = np.full((WINDOW_SIDE, WINDOW_SIDE, 3), 128, np.uint8)
    padded[: window.shape[0], : window.shape[1]] = window
    return padded


def shrink(rgb: UInt8Array, factor: float) -> UInt8Array:
    """A copy about `factor` (< 1) times the size, without aliasing, cheaply: whole-pixel
    blocks are averaged first (OpenCV's fast INTER_AREA path), and what remains, at least
    half size, is bilinear; a fractional INTER_AREA costs 3-6x more on big photos."""
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    block = int(1 / factor)
    if block >= 2 and w // block >= size[0] and h // block >= size[1]:
        rgb = cast(
            UInt8Array,
            cv2.resize(
                rgb[: h // block * block, : w // block * block], (w // block, h // block), interpolation=cv2.INTER_AREA
            ),
        )
    if (rgb.shape[1], rgb.shape[0]) == size:
        return np.ascontiguousarray(rgb)
    return cast(UInt8Array, cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR))
