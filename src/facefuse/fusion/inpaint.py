"""Inpainting the thin dark lines that cover a face (strands of hair, the frames of glasses)
from the skin beside them, at a scale where the fill is smooth anyway, never into the eyes;
for real frames, their lighter bevel and grey halo with them."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, UInt8Array
from facefuse.fusion import masks, mesh

LINE_WIDTH = 0.03  # of the face size: strands and frames are thinner than this
INPAINT_DARKER = 0.85  # of the luma around (blurred over LINE_WIDTH): a cover's pixel is darker than this
INPAINT_CONTEXT = 0.03  # of the face size: the window worked on reaches this far beyond the band
INPAINT_GROW = 0.006  # of the face size: the inpainted line grown by this (its soft edge, its shadow)
# Inpainting stops short of the eye openings grown by this (of the face size): a frame runs
# close beside the lashes and lids, dark lines themselves, and a smeared eye shows at once.
EYES_KEPT = 0.01
# A real frame has a lighter bevel and a grey halo beside its dark line: within this (of the
# face size) of the line, a pixel further than HALO_LEVELS of luma from the skin inpainted
# over it, and greyer than it (under HALO_CHROMA of its chroma), is inpainted too, or a grey
# rim stays where the frame was. A crease or a shadow beside a drawn line keeps the skin's hue.
HALO_REACH = 0.012
HALO_LEVELS = 16
HALO_CHROMA = 0.8
HALO_FACE = 120.0  # px: the face's size in the copy the skin under a halo is guessed on
INPAINT_RADIUS = 3  # pixels around each inpainted one it is filled from
INPAINT_FACE = 240.0  # px: the face's size in the copy inpainting is worked out on


def lines(
    rgb: UInt8Array,
    band: BoolArray,
    face_size: float,
    points: FloatArray,
    across: BoolArray | None = None,
    glasses: bool = False,
) -> UInt8Array:
    """`rgb` (uint8) with what is much darker than its surroundings within `band` (a cover's
    thin dark line), and the pixels of `across` (strands crossing a brow or an eye), inpainted
    from the pixels beside them: a new image, or `rgb` itself when there is nothing to
    inpaint. Only the window around them is worked on. The lines' grown edges stop short of
    the eyes (their openings grown by EYES_KEPT; `points`: the face's landmarks in rgb's pixels).
    With `glasses`, what beside the lines stands out from the skin inpainted over it (a
    frame's bevel, its halo: _halo) goes too."""
    if across is not None:
        band = band | across
    bx, by, bw, bh = cv2.boundingRect(band.view(np.uint8))  # as np.nonzero's extremes, far cheaper
    if bw == 0:
        return rgb
    pad = int(np.ceil(INPAINT_CONTEXT * face_size))
    h, w = band.shape
    window = (slice(max(0, by - pad), min(h, by + bh + pad)), slice(max(0, bx - pad), min(w, bx + bw + pad)))
    part = np.ascontiguousarray(rgb[window])
    grown = INPAINT_GROW * face_size
    lines = band[window] & darker_than_around(part, face_size)
    hole = masks.grow(lines.astype(np.uint8), grown)
    origin = np.array([window[1].start, window[0].start], np.float32)
    eyes = _eye_openings(hole.shape, points - origin, face_size)
    hole[eyes] = 0
    if across is not None:  # a strand crossing an eye's white is inpainted there too
        hole |= masks.grow(across[window].astype(np.uint8), grown)
    if not hole.any():
        return rgb
    if glasses:
        hole |= _halo(part, hole, eyes, face_size)
    out = rgb.copy()
    out[window] = np.where(hole[..., None] > 0, inpainted(part, hole, face_size), part)
    return out


def darker_than_around(rgb: UInt8Array, face_size: float) -> BoolArray:
    """The pixels of `rgb` far darker than the luma around them (blurred over LINE_WIDTH):
    a cover's thin dark line, where one is."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    around = masks.feather(luma, LINE_WIDTH * face_size)
    return (luma + 4) < INPAINT_DARKER * (around + 4)


def _halo(part: UInt8Array, hole: UInt8Array, eyes: BoolArray, face_size: float) -> UInt8Array:
    """The pixels within HALO_REACH of `hole` (a frame's dark line, grown) that stand out by
    over HALO_LEVELS of luma from the skin inpainted over them all and are greyer than it:
    a real frame's lighter bevel or grey halo (uint8 0/1, not in `eyes`). The skin's guess
    is smooth: it is worked out with the face at HALO_FACE pixels."""
    ring = (masks.grow(hole, HALO_REACH * face_size) > 0) & ~eyes
    guess = inpainted(part, (ring | (hole > 0)).astype(np.uint8), face_size, HALO_FACE)
    ys, xs = np.nonzero(ring & (hole == 0))
    seen, guessed = part[ys, xs][:, None], guess[ys, xs][:, None]  # (n, 1, 3): cv2 converts these only
    luma = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.int16).ravel() for im in (seen, guessed)]
    chroma = [_chroma(im) for im in (seen, guessed)]
    stands_out = (np.abs(luma[0] - luma[1]) > HALO_LEVELS) & (chroma[0] < HALO_CHROMA * chroma[1])
    out = np.zeros(hole.shape, np.uint8)
    out[ys[stands_out], xs[stands_out]] = 1
    return out


def _chroma(rgb: UInt8Array) -> FloatArray:
    """Each pixel's CIELAB chroma (8-bit scale), flattened."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    return cast(FloatArray, np.hypot(lab[..., 1] - 128, lab[..., 2] - 128).ravel())


def _eye_openings(shape: tuple[int, ...], points: FloatArray, face_size: float) -> BoolArray:
    """The eyes' openings grown by EYES_KEPT (bool, `shape`), `points` the landmarks in its pixels."""
    eyes = masks.polygon_mask(shape, masks.loop(points, mesh.RIGHT_EYE), masks.loop(points, mesh.LEFT_EYE))
    return masks.grow(eyes, EYES_KEPT * face_size) > 0.5


def inpainted(part: UInt8Array, hole: UInt8Array, face_size: float, work_face: float = 0.0) -> UInt8Array:
    """`part` inpainted over `hole`, worked out with the face at most `work_face` pixels
    (default INPAINT_FACE: the inpainting is smooth, a smaller copy loses nothing of it, and
    costs far less)."""
    scale = min(1.0, (work_face or INPAINT_FACE) / max(face_size, 1.0))
    if scale == 1.0:
        return cast(UInt8Array, cv2.inpaint(part, hole, INPAINT_RADIUS, cv2.INPAINT_TELEA))
    h, w = hole.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
    # Grown, so that no pixel the line darkened by averaging is taken to fill from.
    small_hole = cv2.dilate(cv2.resize(hole, size, interpolation=cv2.INTER_AREA), np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return cast(UInt8Array, cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR))
