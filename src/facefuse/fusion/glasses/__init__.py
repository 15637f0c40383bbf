"""A template's glasses, told and traced once per template: the mask of their frames (both
rims, the bridge, the arms up to the face edge), its edge at the frames' own edge, the
template's pixels there, and the template with the frames painted out.

Glasses are told by their bridge: a band across the top of the nose whose colour differs
from the nose above and below it all across the nose (a bare nose has at most a crease,
which fades out to the sides); and by their rims: round each eye a closed band of the
bridge's colour, holding the eye and under the brow, seen most of the way round.

Each rim is traced in polar coordinates round its lens: per ray, the radius where a thin
band of the bridge's colour stands out from both sides, chosen as one smooth closed curve
(dynamic programming), first for both lenses together (mirror images), then for each near
that; a wrinkle or an eye bag, neither closed, smooth nor mirrored, does not pass for a
rim. Along each ray the band's edges are then found at full resolution. The bridge is
traced across the nose to the rims, the arms from the rims to the face's edge.

Frames are rigid: the fusion warps the template without them (without_frames) and puts
them back unwarped on top (put_back), so that no bent or faded copy of them shows.

This module is the API and the order of the steps; each step is in its own module:
bridge.py   the face's axes and the bridge, which tells glasses at all
rims.py     each rim's middle, traced round its eye in polar coordinates
bands.py    each rim's band about that middle: its edges, whether it is a lens's
parts.py    what the frames hold beyond the rims: the bridge traced to them, the arms, a
            light frame's dark parts, a dark frame's body
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import masks, mesh
from facefuse.fusion.glasses.bands import holds_eye, mirrored, rim_band
from facefuse.fusion.glasses.bridge import FACE_SIDES, FaceAxes, bridge_box, find_bridge, likeness
from facefuse.fusion.glasses.parts import (
    arm_mask,
    beside_dark,
    bridge_mask,
    dark_parts,
    frame_body,
)
from facefuse.fusion.glasses.rims import POLAR_REACH, rim_paths

__all__ = ["Frames", "find_frames", "has_bridge", "put_back", "without_frames"]

# Nothing this near an eye (of the face size) is frame: the template's lashes and lids
# touching a rim stay the user's.
EYE_CLEARANCE = 0.012
# Glasses have a rim round most of each lens: a band seen along this fraction of it at least.
RIM_SUPPORT = 0.6
WORK_MARGIN = 0.08  # around the glasses' zone, of the face size: the crop worked on
INPAINT_REACH = 0.01  # of the face size: how far around a frame pixel its fill is drawn from
# Landmarks: the face oval's points above and below its outermost ones at eye level.
_TEMPLES = (127, 356, 93, 323)


# The frames of a template's glasses in its patch, their weight's edge at the frames' edge.
Frames = masks.Piece


def has_bridge(patch: UInt8Array, points: FloatArray, face_size: float) -> bool:
    """Whether the face seems to wear glasses, by their bridge alone (find_frames's first,
    quick test; the rims decide). Only the nose's part find_bridge reads is worked on: the
    blur's reach beyond it keeps its values those of the whole work area."""
    axes = FaceAxes.of(points, face_size)
    sigma = _blur_sigma(face_size)
    x0, y0, x1, y1 = bridge_box(points[:, :2], axes, patch.shape[:2], 4 * sigma + 2)
    offset = np.array([x0, y0], np.float32)
    lab = _blurred_lab(patch[y0:y1, x0:x1], sigma)
    return find_bridge(lab, points[:, :2] - offset, axes.moved(-offset)) is not None


def _work_area(
    patch: UInt8Array, points: FloatArray, face_size: float
) -> tuple[tuple[int, int, int, int], FloatArray, FloatArray, FaceAxes]:
    """The box of the patch glasses are looked for in, its CIELAB (lightly blurred), the
    landmarks and the face's axes in it."""
    axes = FaceAxes.of(points, face_size)
    x0, y0, x1, y1 = _work_box(points, patch.shape[:2], face_size)
    offset = np.array([x0, y0], np.float32)
    lab = _blurred_lab(patch[y0:y1, x0:x1], _blur_sigma(face_size))
    return (x0, y0, x1, y1), lab, points[:, :2] - offset, axes.moved(-offset)


def _blur_sigma(face_size: float) -> float:
    return max(0.5, 0.002 * face_size)


def _blurred_lab(rgb: UInt8Array, sigma: float) -> FloatArray:
    """CIELAB (float32) of `rgb`, lightly blurred: a pixel's noise does not break a frame."""
    lab = cv2.GaussianBlur(cv2.cvtColor(rgb.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab), (0, 0), sigma)
    return cast(FloatArray, lab)


def find_frames(patch: UInt8Array, points: FloatArray, face_size: float) -> Frames | None:
    """The frames of the glasses this face wears (`points`: its landmarks in the patch), or
    None when it wears none."""
    (x0, y0, x1, y1), lab, local, axes = _work_area(patch, points, face_size)
    crop = patch[y0:y1, x0:x1]
    bridge = find_bridge(lab, local, axes)
    if bridge is None:
        return None
    like_bridge = likeness(lab, [bridge.colour])
    eyes = masks.grow(
        masks.polygon_mask(crop.shape[:2], masks.loop(local, mesh.RIGHT_EYE), masks.loop(local, mesh.LEFT_EYE)),
        EYE_CLEARANCE * face_size,
    )
    # Rims are traced on the bridge's colour, their bands measured on the frame's body.
    light, body = frame_body(lab, like_bridge, bridge, local, face_size)
    paths = rim_paths(like_bridge, eyes, axes)
    rims = mirrored([rim_band(like_bridge, body, path, face_size, light) for path in paths], face_size)
    if not all(rim.support >= RIM_SUPPORT and holds_eye(rim, local, side) for rim, side in zip(rims, (1, -1))):
        return None
    weight = np.zeros(crop.shape[:2], np.float32)
    for rim in rims:
        np.maximum(weight, rim.mask(crop.shape[:2]), out=weight)
    np.maximum(weight, bridge_mask(body, bridge, rims, axes, light), out=weight)
    for rim, side in zip(rims, (1, -1)):
        np.maximum(weight, arm_mask(body, rim, weight.copy(), local, axes, side), out=weight)
    if light:
        np.maximum(weight, dark_parts(lab, weight, local, face_size), out=weight)
    else:
        np.maximum(weight, beside_dark(body, weight, face_size), out=weight)
    weight *= 1 - eyes
    rows, cols = np.nonzero(weight > 0)
    if rows.size == 0:
        return None
    bx0, by0, bx1, by1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    box = (x0 + int(bx0), y0 + int(by0), x0 + int(bx1), y0 + int(by1))
    pixels = np.ascontiguousarray(patch[box[1] : box[3], box[0] : box[2]])
    return Frames(box, np.ascontiguousarray(weight[by0:by1, bx0:bx1]), pixels)


def without_frames(patch: UInt8Array, frames: Frames, face_size: float) -> UInt8Array:
    """The patch with the frames painted out from around them: what the fusion warps, so that
    no bent copy of the frames shows wherever the template shows through."""
    clean = patch.copy()
    pad = int(np.ceil(INPAINT_REACH * face_size)) + 2
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = frames.box
    wx0, wy0, wx1, wy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    hole = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    hole[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = (frames.weight > 0).astype(np.uint8)
    # Grown by a pixel: a partly covered edge pixel holds some of the frame's colour too.
    hole = cast(UInt8Array, cv2.dilate(hole, np.ones((3, 3), np.uint8)))
    clean[wy0:wy1, wx0:wx1] = cv2.inpaint(
        patch[wy0:wy1, wx0:wx1], hole, max(1.0, INPAINT_REACH * face_size), cv2.INPAINT_TELEA
    )
    return clean


def put_back(out: UInt8Array, frames: Frames, box: tuple[int, int, int, int]) -> None:
    """The frames over `out` (the patch's pixels, in place), within `box` (x0, y0, x1, y1)."""
    frames.put_back(out, box)


def _work_box(points: FloatArray, shape: tuple[int, ...], size: float) -> tuple[int, int, int, int]:
    """The part of the patch the glasses can be in: brows to below the eyes, cheek to cheek."""
    idx = list(mesh.RIGHT_BROW + mesh.LEFT_BROW + mesh.RIGHT_EYE + mesh.LEFT_EYE + FACE_SIDES + _TEMPLES)
    pts = points[idx, :2]
    return masks.bounds(np.concatenate([pts, pts + [0, POLAR_REACH * size]]), shape, WORK_MARGIN * size)
