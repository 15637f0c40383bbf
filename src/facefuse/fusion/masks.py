"""Soft masks over the fused face, drawn from landmark polygons."""

from __future__ import annotations

import cv2
import numpy as np

from facefuse.fusion import mesh


def polygon_mask(shape: tuple[int, int], *polygons: np.ndarray) -> np.ndarray:
    """float32 (h, w) 1 inside any of the polygons, anti-aliased edge."""
    canvas = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(p * 16).astype(np.int32) for p in polygons], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) * (1 / 255)


def hull_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
    return polygon_mask(shape, hull)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; a wide one runs on a shrunken copy (same look, a fraction of the cost)."""
    if sigma < 0.3:
        return mask
    if sigma <= 3:
        return cv2.GaussianBlur(mask, (0, 0), sigma)
    h, w = mask.shape[:2]
    factor = sigma / 3
    small = cv2.resize(mask, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * small.shape[1] / w)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    size = int(2 * round(pixels) + 1)
    if size < 3:
        return mask
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def shrink(mask: np.ndarray, pixels: float) -> np.ndarray:
    """The opposite of grow: every value the least within `pixels`."""
    size = int(2 * round(pixels) + 1)
    if size < 3:
        return mask
    return cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def lower_face(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """The face from eye level down: the oval from one side to the other around the
    chin, closed at the bottom of the nose."""
    oval = points[list(mesh.FACE_OVAL[_OVAL_CHEEK_TO_CHEEK])]
    return polygon_mask(shape, np.concatenate([oval, points[[_NOSE_BOTTOM]]]))


def below_nose(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """float32 1 below the bottom of the nose, across the face (down: from the bridge to the chin)."""
    down = points[152] - points[168]
    down = down / max(float(np.linalg.norm(down)), 1e-3)
    across = (np.arange(shape[1], dtype=np.float32) - points[_NOSE_BOTTOM, 0]) * down[0]
    along = (np.arange(shape[0], dtype=np.float32)[:, None] - points[_NOSE_BOTTOM, 1]) * down[1]
    return (across + along > 0).astype(np.float32)


_OVAL_CHEEK_TO_CHEEK = slice(8, 29)  # FACE_OVAL from 454 to 234 (eye level), through the chin
_NOSE_BOTTOM = 2


def shrunk_oval(points: np.ndarray, top: float, side: float, chin: float) -> np.ndarray:
    """The face oval pulled toward the face centre: by `top` at the forehead, `side` at the
    cheeks and `chin` at the chin (fractions of each point's distance from the centre)."""
    oval = points[list(mesh.FACE_OVAL)]
    centre = face_centre(points)
    angle = 2 * np.pi * np.arange(len(oval)) / len(oval)  # 0 at the forehead top
    up = np.maximum(np.cos(angle), 0)
    down = np.maximum(-np.cos(angle), 0)
    amount = side + (top - side) * up + (chin - side) * down
    return centre + (1 - amount[:, None]) * (oval - centre)


def face_centre(points: np.ndarray) -> np.ndarray:
    return points[[1, 168]].mean(axis=0)  # nose tip and bridge: inside the face in any pose


def loop(points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    return points[list(indices)]


def features_mask(shape: tuple[int, int], points: np.ndarray, grow_by: float) -> np.ndarray:
    """Eyes, brows, lips and nostrils, each grown by `grow_by` pixels."""
    return grow(features_outline(shape, points), grow_by)


def features_outline(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Eyes, brows, lips and nostrils, as drawn by their landmark loops."""
    loops = (mesh.RIGHT_EYE, mesh.LEFT_EYE, mesh.RIGHT_BROW, mesh.LEFT_BROW, mesh.LIPS_OUTER, mesh.NOSTRILS)
    return polygon_mask(shape, *(loop(points, indices) for indices in loops))


def inner_zone(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Hull of the eyes, nose and mouth: where the user's features always come in."""
    idx = list(mesh.RIGHT_EYE + mesh.LEFT_EYE + mesh.LIPS_OUTER + mesh.NOSTRILS)
    return hull_mask(shape, points[idx])


def glasses_zone(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Where the frames of glasses can be: brows, eyes and the bridge between them, down to
    the cheeks below the lower rims and out to the temples."""
    parts = []
    for eye, brow in ((mesh.RIGHT_EYE, mesh.RIGHT_BROW), (mesh.LEFT_EYE, mesh.LEFT_BROW)):
        eye_points, brow_points = points[list(eye)], points[list(brow)]
        down = eye_points.mean(axis=0) - brow_points.mean(axis=0)  # brow to eye: "down" in any pose
        parts += [brow_points, eye_points, eye_points + 1.7 * down]
    size = _size(points)
    return feather(grow(hull_mask(shape, np.concatenate(parts)), 0.04 * size), 0.01 * size)


def _size(points: np.ndarray) -> float:
    oval = points[list(mesh.FACE_OVAL)]
    return float(np.ptp(oval, axis=0).max())


def dark_lines(luma: np.ndarray, width: float) -> np.ndarray:
    """Soft mask of thin, very dark structures (frames of glasses): pixels far darker
    than a closing of the float32 luma at `width` pixels. Shadows and folds are too wide
    or too faint to count."""
    size = max(3, int(2 * round(width) + 1))
    closed = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    ratio = (luma + 4) / (closed + 4)
    t = np.clip((0.7 - ratio) / 0.2, 0, 1)
    # Grown by a pixel: grown back to full size, a thin line must stay fully covered.
    return feather(cv2.dilate(t * t * (3 - 2 * t), np.ones((3, 3), np.uint8)), width / 6)


def bounds(points: np.ndarray, shape: tuple[int, int], pad: float) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the points' box grown by `pad`, within an image of `shape` (h, w)."""
    h, w = shape
    x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(0, x0), max(0, y0), max(min(w, x1), max(0, x0) + 1), max(min(h, y1), max(0, y0) + 1)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below lo, 1 above hi, a smooth S between."""
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def reached_from_above(mask: np.ndarray, seeds: np.ndarray, up: np.ndarray) -> np.ndarray:
    """float32 1 where `mask` (bool) is reached from a seed straight down, `up` (a unit
    vector in image x, y) being up, through the mask only: what hangs from the seeds."""
    reached = np.zeros(mask.shape, np.float32)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return reached
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    reached[window] = _reached_from_above(mask[window], seeds[window], up)
    return reached


def _reached_from_above(mask: np.ndarray, seeds: np.ndarray, up: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(np.degrees(np.arctan2(up[0], -up[1]))), 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    turned_w, turned_h = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    turn[:, 2] += (turned_w / 2 - w / 2, turned_h / 2 - h / 2)

    def upright(image: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(image.astype(np.uint8), turn, (turned_w, turned_h), flags=cv2.INTER_NEAREST) > 0

    inside, start = upright(mask), upright(seeds & mask)
    rows = np.arange(turned_h, dtype=np.int32)[:, None]
    last_gap = np.maximum.accumulate(np.where(inside, np.int32(-1), rows), axis=0)
    last_seed = np.maximum.accumulate(np.where(start, rows, np.int32(-1)), axis=0)
    reached = (inside & (last_seed > last_gap)).astype(np.uint8)
    return cv2.warpAffine(reached, turn, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP).astype(np.float32)
