"""Soft masks over the fused face, drawn from landmark polygons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast, overload

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, ImageT, UInt8Array
from facefuse.fusion import mesh


def polygon_mask(shape: tuple[int, ...], *polygons: FloatArray) -> FloatArray:
    """float32 (h, w) 1 inside any of the polygons, anti-aliased edge."""
    canvas = np.zeros(shape, dtype=np.uint8)
    polygons_16 = [np.round(p * 16).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, polygons_16, 255, cv2.LINE_AA, shift=4)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    return canvas.astype(np.float32) * (1 / 255)


def hull_mask(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    hull = cast(FloatArray, cv2.convexHull(points.astype(np.float32))).reshape(-1, 2)
    return polygon_mask(shape, hull)


def feather(mask: FloatArray, sigma: float) -> FloatArray:
    """Gaussian blur; a wide one runs on a shrunken copy (same look, a fraction of the cost)."""
    if sigma < 0.3:
        return mask
    if sigma <= 3:
        return cast(FloatArray, cv2.GaussianBlur(mask, (0, 0), sigma))
    h, w = mask.shape[:2]
    factor = sigma / 3
    small = cv2.resize(mask, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * small.shape[1] / w)
    return cast(FloatArray, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


def grow(mask: ImageT, pixels: float) -> ImageT:
    size = int(2 * round(pixels) + 1)
    if size < 3:
        return mask
    return cast(ImageT, cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))))


def shrink(mask: ImageT, pixels: float) -> ImageT:
    """The opposite of grow: every value the least within `pixels`."""
    size = int(2 * round(pixels) + 1)
    if size < 3:
        return mask
    return cast(ImageT, cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))))


def lower_face(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """The face from eye level down: the oval from one side to the other around the
    chin, closed at the bottom of the nose."""
    oval = points[list(mesh.FACE_OVAL[_OVAL_CHEEK_TO_CHEEK])]
    return polygon_mask(shape, np.concatenate([oval, points[[_NOSE_BOTTOM]]]))


def below_nose(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """float32 1 below the bottom of the nose, across the face (down: from the bridge to the chin)."""
    down = points[152] - points[168]
    down = down / max(float(np.linalg.norm(down)), 1e-3)
    across = (np.arange(shape[1], dtype=np.float32) - points[_NOSE_BOTTOM, 0]) * down[0]
    along = (np.arange(shape[0], dtype=np.float32)[:, None] - points[_NOSE_BOTTOM, 1]) * down[1]
    return cast(FloatArray, (across + along > 0).astype(np.float32))


_OVAL_CHEEK_TO_CHEEK = slice(8, 29)  # FACE_OVAL from 454 to 234 (eye level), through the chin
_NOSE_BOTTOM = 2


def shrunk_oval(points: FloatArray, top: float, side: float, chin: float) -> FloatArray:
    """The face oval pulled toward the face centre: by `top` at the forehead, `side` at the
    cheeks and `chin` at the chin (fractions of each point's distance from the centre)."""
    oval = points[list(mesh.FACE_OVAL)]
    centre = face_centre(points)
    angle = 2 * np.pi * np.arange(len(oval)) / len(oval)  # 0 at the forehead top
    up = np.maximum(np.cos(angle), 0)
    down = np.maximum(-np.cos(angle), 0)
    amount = side + (top - side) * up + (chin - side) * down
    return cast(FloatArray, centre + (1 - amount[:, None]) * (oval - centre))


def face_up(points: FloatArray) -> FloatArray:
    """The face's up (chin to forehead), a unit vector in image pixels."""
    up = points[10] - points[152]
    return cast(FloatArray, up / max(float(np.linalg.norm(up)), 1e-3))


def heights(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """(h, w) each pixel's height along the face's up from the nose's bridge (landmark 168)."""
    up = face_up(points)
    h, w = shape
    height = (np.arange(w, dtype=np.float32) - points[168, 0]) * up[0] + (
        np.arange(h, dtype=np.float32)[:, None] - points[168, 1]
    ) * up[1]
    return cast(FloatArray, height)


def brows_top(points: FloatArray) -> float:
    """The brows' highest point's height along the face's up (see heights)."""
    return float(((points[list(mesh.RIGHT_BROW + mesh.LEFT_BROW)] - points[168]) @ face_up(points)).max())


def face_centre(points: FloatArray) -> FloatArray:
    return cast(FloatArray, points[[1, 168]].mean(axis=0))  # nose tip and bridge: inside the face in any pose


def loop(points: FloatArray, indices: tuple[int, ...]) -> FloatArray:
    return points[list(indices)]


def features_mask(shape: tuple[int, ...], points: FloatArray, grow_by: float) -> FloatArray:
    """Eyes, brows, lips and nostrils, each grown by `grow_by` pixels."""
    return grow(features_outline(shape, points), grow_by)


def features_outline(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """Eyes, brows, lips and nostrils, as drawn by their landmark loops."""
    loops = (mesh.RIGHT_EYE, mesh.LEFT_EYE, mesh.RIGHT_BROW, mesh.LEFT_BROW, mesh.LIPS_OUTER, mesh.NOSTRILS)
    return polygon_mask(shape, *(loop(points, indices) for indices in loops))


def inner_zone(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """Hull of the eyes, nose and mouth: where the user's features always come in."""
    idx = list(mesh.RIGHT_EYE + mesh.LEFT_EYE + mesh.LIPS_OUTER + mesh.NOSTRILS)
    return hull_mask(shape, points[idx])


def glasses_zone(shape: tuple[int, ...], points: FloatArray) -> FloatArray:
    """Where the frames of glasses can be: brows, eyes and the bridge between them, down to
    the cheeks below the lower rims and out to the temples."""
    parts = []
    for eye, brow in ((mesh.RIGHT_EYE, mesh.RIGHT_BROW), (mesh.LEFT_EYE, mesh.LEFT_BROW)):
        eye_points, brow_points = points[list(eye)], points[list(brow)]
        down = eye_points.mean(axis=0) - brow_points.mean(axis=0)  # brow to eye: "down" in any pose
        parts += [brow_points, eye_points, eye_points + 1.7 * down]
    size = _size(points)
    return feather(grow(hull_mask(shape, np.concatenate(parts)), 0.04 * size), 0.01 * size)


def _size(points: FloatArray) -> float:
    oval = points[list(mesh.FACE_OVAL)]
    return float(np.ptp(oval, axis=0).max())


def dark_lines(luma: FloatArray, width: float) -> FloatArray:
    """Soft mask of thin, very dark structures (frames of glasses): pixels far darker
    than a closing of the float32 luma at `width` pixels. Shadows and folds are too wide
    or too faint to count."""
    size = max(3, int(2 * round(width) + 1))
    closed = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    ratio = (luma + 4) / (closed + 4)
    t = np.clip((0.7 - ratio) / 0.2, 0, 1)
    # Grown by a pixel: grown back to full size, a thin line must stay fully covered.
    grown = cast(FloatArray, cv2.dilate(t * t * (3 - 2 * t), np.ones((3, 3), np.uint8)))
    return feather(grown, width / 6)


def bounds(points: FloatArray, shape: tuple[int, ...], pad: float) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the points' box grown by `pad`, within an image of `shape` (h, w)."""
    h, w = shape
    x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(0, x0), max(0, y0), max(min(w, x1), max(0, x0) + 1), max(min(h, y1), max(0, y0) + 1)


@overload
def smoothstep(x: FloatArray, lo: float, hi: float) -> FloatArray: ...
@overload
def smoothstep(x: np.floating[Any] | float, lo: float, hi: float) -> np.floating[Any]: ...
def smoothstep(x: FloatArray | np.floating[Any] | float, lo: float, hi: float) -> FloatArray | np.floating[Any]:
    """0 below lo, 1 above hi, a smooth S between."""
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return cast("FloatArray | np.floating[Any]", t * t * (3 - 2 * t))


def reached_from_above(mask: BoolArray, seeds: BoolArray, up: FloatArray) -> FloatArray:
    """float32 1 where `mask` (bool) is reached from a seed straight down, `up` (a unit
    vector in image x, y) being up, through the mask only: what hangs from the seeds."""
    reached = np.zeros(mask.shape, np.float32)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return reached
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    reached[window] = _reached_from_above(mask[window], seeds[window], up)
    return reached


def _reached_from_above(mask: BoolArray, seeds: BoolArray, up: FloatArray) -> FloatArray:
    h, w = mask.shape
    turn = cast(FloatArray, cv2.getRotationMatrix2D((w / 2, h / 2), float(np.degrees(np.arctan2(up[0], -up[1]))), 1.0))
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    turned_w, turned_h = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    turn[:, 2] += (turned_w / 2 - w / 2, turned_h / 2 - h / 2)

    def upright(image: BoolArray) -> BoolArray:
        return cv2.warpAffine(image.astype(np.uint8), turn, (turned_w, turned_h), flags=cv2.INTER_NEAREST) > 0

    inside, start = upright(mask), upright(seeds & mask)
    rows = np.arange(turned_h, dtype=np.int32)[:, None]
    last_gap = np.maximum.accumulate(np.where(inside, np.int32(-1), rows), axis=0)
    last_seed = np.maximum.accumulate(np.where(start, rows, np.int32(-1)), axis=0)
    reached = (inside & (last_seed > last_gap)).astype(np.uint8)
    return cv2.warpAffine(reached, turn, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP).astype(np.float32)


@dataclass(frozen=True)
class Piece:
    """A rigid piece of a template's patch that stays in front of the fused face as it is (its
    glasses' frames, its hands): where (`box`, x0, y0, x1, y1), how much of each pixel is the
    piece (`weight`, float32 0..1) and the template's pixels there (`pixels`, uint8)."""

    box: tuple[int, int, int, int]
    weight: FloatArray
    pixels: UInt8Array

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.pixels.nbytes

    def put_back(self, out: UInt8Array, box: tuple[int, int, int, int]) -> None:
        """The piece over `out` (the patch's pixels, in place) by its weight, within `box`."""
        x0, y0 = max(self.box[0], box[0]), max(self.box[1], box[1])
        x1, y1 = min(self.box[2], box[2]), min(self.box[3], box[3])
        if x0 >= x1 or y0 >= y1:
            return
        fx, fy = x0 - self.box[0], y0 - self.box[1]
        weight = self.weight[fy : fy + y1 - y0, fx : fx + x1 - x0]
        target = out[y0:y1, x0:x1]
        target[:] = cv2.blendLinear(self.pixels[fy : fy + y1 - y0, fx : fx + x1 - x0], target, weight, 1 - weight)
