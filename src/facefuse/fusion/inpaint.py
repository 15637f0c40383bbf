"""Inpainting the thin dark lines that cover a face (strands of hair, the frames of glasses)
from the skin beside them, at a scale where the fill is smooth anyway, never into the eyes;
for glasses, only the frames (what hangs together with their bridge), with their lighter
bevel and grey halo. A photo cleaned of them takes its own fine detail over the fill from
the skin beyond it (the fusion lends the template's instead)."""

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
# A frame of glasses is grown by this (of the face size): its edge, and the lens's bevel
# along its inside, a thin line as dark or as light as the frame's edge.
FRAME_GROW = 0.009
# Frames are looked for within the face oval pushed out by this (of each point's distance
# from the face's centre): an arm reaches on to the ear, over the hair at the temple, which
# is no skin to inpaint.
FRAMES_OUTSIDE = 0.04
FRAME_GAP = 0.02  # of the face size: a frame's dark line cut by less than this is one line
# Over a brow, only what is darker than this share of the brow's median luma is frame (a
# brow is its hairs and the skin between them; a frame over it, black through).
BROW_FRAME = 0.6
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
# The photo's own fine detail on its inpainted pixels: the luma above a blur of this (of the
# face size, at least DETAIL_MIN_SIGMA px: pores, stubble) from the skin beyond the nearest
# edge of what is inpainted, mirrored across it and DETAIL_GAP (of the face size) further
# (the pixels right at the edge hold the cover's soft edge), clipped to DETAIL_LIMIT times
# the rms of the detail around: the skin's grain, never an edge.
DETAIL_SIGMA = 0.004
DETAIL_MIN_SIGMA = 0.8
DETAIL_GAP = 0.01
DETAIL_LIMIT = 2.5


def lines(
    rgb: UInt8Array,
    band: BoolArray,
    face_size: float,
    points: FloatArray,
    across: BoolArray | None = None,
    frames: BoolArray | None = None,
    own_detail: bool = False,
) -> UInt8Array:
    """`rgb` (uint8) with what is much darker than its surroundings within `band` (a cover's
    thin dark line), and the pixels of `across` (strands crossing a brow or an eye), inpainted
    from the pixels beside them: a new image, or `rgb` itself when there is nothing to
    inpaint. Only the window around them is worked on. The lines' grown edges stop short of
    the eyes (their openings grown by EYES_KEPT; `points`: the face's landmarks in rgb's pixels).
    Within `frames` (where glasses' frames are) only the frames themselves (_frame_lines) are
    inpainted, grown by FRAME_GROW, and what beside them stands out from the skin inpainted
    over it (a frame's bevel, its halo: _halo) goes too. With `own_detail`, the inpainted
    pixels take the photo's fine detail from beside them (_with_own_detail)."""
    if across is not None:
        band = band | across
    covered = band if frames is None else band | frames
    bx, by, bw, bh = cv2.boundingRect(covered.view(np.uint8))  # as np.nonzero's extremes, far cheaper
    if bw == 0:
        return rgb
    pad = int(np.ceil(INPAINT_CONTEXT * face_size))
    h, w = band.shape
    window = (slice(max(0, by - pad), min(h, by + bh + pad)), slice(max(0, bx - pad), min(w, bx + bw + pad)))
    part = np.ascontiguousarray(rgb[window])
    origin = np.array([window[1].start, window[0].start], np.float32)
    shape = part.shape[:2]
    local = points - origin
    eyes = _eye_openings(shape, local, face_size)
    darker = darker_than_around(part, face_size)
    # With glasses only their frames are cleaned: a dark line the frames' arms join to the
    # hair at a temple (a sideburn's edge) is not a strand; a real strand is filled later,
    # in the fusion (occluders.fill).
    lines = band[window] & darker if frames is None else np.zeros(shape, bool)
    hole = masks.grow(lines.astype(np.uint8), INPAINT_GROW * face_size)
    hole[eyes] = 0
    if across is not None:  # a strand crossing an eye's white is inpainted there too
        hole |= masks.grow(across[window].astype(np.uint8), INPAINT_GROW * face_size)
    if frames is not None:
        hole |= _frame_holes(part, darker & frames[window] & ~eyes, eyes, local, face_size)
    if not hole.any():
        return rgb
    if frames is None:
        fill = _filled(part, hole, hole, face_size, own_detail)
    else:
        # A rim along a brow is filled from the skin beside it, and a brow it hides from
        # what shows of the brow: a lid or a temple is never filled from a brow, nor a brow
        # from skin.
        brows = _brows(shape, local)
        fill = _filled(part, hole, hole | brows, face_size, own_detail)
        hidden = hole & brows
        if hidden.any():
            bx, by, bw, bh = cv2.boundingRect(hidden)
            box = (slice(max(0, by - pad), by + bh + pad), slice(max(0, bx - pad), bx + bw + pad))
            brow_fill = _filled(part[box], hidden[box], hole[box], face_size, own_detail)
            fill[box] = np.where(brows[box][..., None] > 0, brow_fill, fill[box])
    out = rgb.copy()
    out[window] = np.where(hole[..., None] > 0, fill, part)
    return out


def _filled(part: UInt8Array, where: UInt8Array, unknown: UInt8Array, face_size: float, own_detail: bool) -> UInt8Array:
    """`part` inpainted over `unknown` from what is known, with its own fine detail on
    `where` when asked (_with_own_detail)."""
    fill = inpainted(part, unknown, face_size)
    return _with_own_detail(fill, part, where, unknown, face_size) if own_detail else fill


def _frame_holes(
    part: UInt8Array, dark: BoolArray, eyes: BoolArray, points: FloatArray, face_size: float
) -> UInt8Array:
    """What of `part` the frames cover (uint8 0/1), from `dark` (a frame's dark pixels, and
    others near it; _frame_lines): off the brows grown by FRAME_GROW, with their bevel and
    halo (_halo); on a brow only what is far darker than the brow (a rim along its lower
    edge: BROW_FRAME), as it is."""
    brows = _brows(part.shape[:2], points) > 0
    luma = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY)
    level = float(np.median(luma[brows])) if brows.any() else 0.0
    frame = _frame_lines(dark & (~brows | (luma < BROW_FRAME * level)), points, face_size)
    hole = masks.grow((frame & ~brows).astype(np.uint8), FRAME_GROW * face_size)
    hole[eyes | brows] = 0
    if hole.any():
        hole |= _halo(part, hole, eyes | brows, face_size)
    hole[frame & brows] = 1
    return hole


def _brows(shape: tuple[int, ...], points: FloatArray) -> UInt8Array:
    """The brows (uint8 0/1, `points` in its pixels)."""
    brows = masks.polygon_mask(shape, masks.loop(points, mesh.RIGHT_BROW), masks.loop(points, mesh.LEFT_BROW))
    return cast(UInt8Array, (brows > 0.5).astype(np.uint8))


def _frame_lines(dark: BoolArray, points: FloatArray, face_size: float) -> BoolArray:
    """The frames among `dark` (a frame's dark pixels, and others near it): within the face
    oval pushed out by FRAMES_OUTSIDE and below the brows' top, hanging together with the
    bridge across the nose, across gaps up to FRAME_GAP (a rim's light bevel or a hinge's shine cuts its dark line).
    A fold beside the nose or a lid's crease, dark too, is left unless it touches a frame."""
    shape = dark.shape
    oval = masks.polygon_mask(shape, masks.shrunk_oval(points, *(-FRAMES_OUTSIDE,) * 3)) > 0.5
    # Below the brows' top: no frame is higher, and the hair at a temple, joined to an arm, is.
    found = (dark & oval & (masks.heights(shape, points) <= masks.brows_top(points))).view(np.uint8)
    reach = FRAME_GAP * face_size / 2
    joined = masks.shrink(masks.grow(found, reach), reach)  # closed over gaps under FRAME_GAP
    count, pieces = cv2.connectedComponents(joined, connectivity=8)
    bridge = masks.polygon_mask(shape, points[list(mesh.NOSE_BRIDGE)]) > 0.5
    on_bridge = np.zeros(count, bool)
    on_bridge[pieces[bridge]] = True
    on_bridge[0] = False
    return cast(BoolArray, on_bridge[pieces] & (found > 0))


def _with_own_detail(
    fill: UInt8Array, part: UInt8Array, where: UInt8Array, hole: UInt8Array, face_size: float
) -> UInt8Array:
    """`fill` (`part` inpainted over `hole`) with the fine detail of `part`'s luma added on
    `where` (within the hole), each pixel's from the known pixel mirrored across the hole's
    nearest edge and DETAIL_GAP further: the skin's own grain where the fill alone is
    smooth, clipped to DETAIL_LIMIT times the rms of the detail around."""
    luma = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = luma - cv2.GaussianBlur(luma, (0, 0), max(DETAIL_MIN_SIGMA, DETAIL_SIGMA * face_size))
    known = hole == 0
    if not known.any():
        return fill
    # A typical size of the detail around, from every other row and column: a median
    # stays clear of the edges among them.
    sample = detail[::2, ::2][known[::2, ::2]]
    limit = DETAIL_LIMIT * float(np.sqrt(np.median(np.square(sample)))) if sample.size else 0.0
    # Each hole pixel's nearest known pixel: labels number the known pixels in row order.
    _, nearest = cv2.distanceTransformWithLabels(
        (hole > 0).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    ky, kx = np.nonzero(known)
    hy, hx = np.nonzero(where)
    at = nearest[hy, hx] - 1
    ny, nx = ky[at].astype(np.float32), kx[at].astype(np.float32)
    dy, dx = ny - hy, nx - hx
    gap = DETAIL_GAP * face_size / np.maximum(np.hypot(dy, dx), 1e-3)
    sy = np.clip(np.round(ny + dy * (1 + gap)), 0, hole.shape[0] - 1).astype(np.intp)
    sx = np.clip(np.round(nx + dx * (1 + gap)), 0, hole.shape[1] - 1).astype(np.intp)
    added = np.where(known[sy, sx], np.clip(detail[sy, sx], -limit, limit), 0)
    out = fill.copy()
    out[hy, hx] = np.clip(fill[hy, hx] + added[:, None] + 0.5, 0, 255).astype(np.uint8)
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
