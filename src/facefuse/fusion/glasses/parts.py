"""What the frames hold beyond the rims: the bridge traced across the nose to them, the
arms from them to the face's edge, a light frame's dark parts (a browline), and the body a
frame is measured on.

Light frames are near the skin's colour: their bands are measured on the bridge's colour,
against what is just beside them, and their dark parts are sought apart. Dark frames vary
in colour (tortoiseshell, highlights), so their body is also whatever is darker than its
surroundings, and what is as dark just beside their traced bands is frame too. Each part
is kept only where it is joined to the rims, so that a dark brow or hair beside the
glasses is not taken for them.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray
from facefuse.fusion import masks, mesh
from facefuse.fusion.glasses.bands import BAND_REACH, BAND_STEP, Rim, half_height_run
from facefuse.fusion.glasses.bridge import FACE_SIDES, Bridge, FaceAxes

# Frames whose bridge is lighter than this fraction of the cheeks' lightness are light; a
# light frame's dark parts (a browline over the rims) are under it too (soft over this many
# L units either side), thin (up to DARK_WIDTH thick) and touching the rest.
FRAME_DARK = 0.4
FRAME_DARK_EDGE = 8.0
DARK_WIDTH = 0.03  # of the face size
# A dark frame's body: its bridge's colour, or darker than its surroundings (a closing at
# DARK_WIDTH) by this ratio, fully from the first value down.
DARK_FRAME_RATIO = (0.45, 0.75)
# What has the frame's colour: its likeness from the first value (none) to the second (all).
FRAME_EDGE = (0.35, 0.65)
FRAME_BESIDE = 0.008  # of the face size: how near a dark frame's traced bands more of it is sought
# An arm is sought from this far (of the face size) above the lens's top to this far below
# it: it leaves the frame at the top of the lens's outer side.
ARM_ABOVE = 0.01
ARM_BELOW = 0.06
ARM_PAST_EDGE = 0.06  # of the face size: how far past the face's edge an arm is kept
JOIN_REACH = 0.01  # of the face size: how near the rim an arm's piece starts
# The bridge is traced column by column (of the face size apart), each band sought within
# this much of the last one's centre.
COLUMN_STEP = 0.004
COLUMN_DRIFT = 0.01
BRIDGE_REACH = 0.25  # of the face size from the nose's middle, at most, to a rim
BRIDGE_GAP = 3  # columns


def frame_body(
    lab: FloatArray, like_bridge: FloatArray, bridge: Bridge, points: FloatArray, size: float
) -> tuple[bool, FloatArray]:
    """Whether the frames are light (near the skin's colour), and what the rims' bands are
    measured on: a light frame's likeness to the bridge's colour; for a dark one, its
    darkness too (tortoiseshell and highlights vary its colour)."""
    skin_l = _cheeks_lightness(lab, points)
    light = bool(bridge.colour[0] > FRAME_DARK * skin_l)
    body = like_bridge if light else np.maximum(like_bridge, _local_darkness(lab[..., 0], DARK_WIDTH * size))
    return light, body


def beside_dark(body: FloatArray, frames: FloatArray, size: float) -> FloatArray:
    """What of a dark frame's `body` lies just beside its traced bands (`frames`), and so is
    frame too: their edges' last pixels, a hinge, a pad's arm."""
    near = masks.grow((frames > 0.5).astype(np.float32), FRAME_BESIDE * size)
    return masks.smoothstep(body, *FRAME_EDGE) * near


def _cheeks_lightness(lab: FloatArray, points: FloatArray) -> float:
    """The median L at the cheeks' landmarks."""
    h, w = lab.shape[:2]
    at = np.round(points[list(mesh.RIGHT_CHEEK + mesh.LEFT_CHEEK)]).astype(int)
    at = at[(at[:, 0] >= 0) & (at[:, 0] < w) & (at[:, 1] >= 0) & (at[:, 1] < h)]
    return float(np.median(lab[at[:, 1], at[:, 0], 0])) if len(at) else float(np.median(lab[..., 0]))


def _local_darkness(lightness: FloatArray, width: float) -> FloatArray:
    """float32 0..1: how much darker each pixel is than its surroundings (a closing at `width`
    pixels), as a thin dark frame is; a shadow as wide as the closing is not."""
    size = max(3, int(2 * round(width) + 1))
    closed = cv2.morphologyEx(lightness, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return (1 - masks.smoothstep((lightness + 2) / (closed + 2), *DARK_FRAME_RATIO)).astype(np.float32)


def dark_parts(lab: FloatArray, frames: FloatArray, points: FloatArray, size: float) -> FloatArray:
    """The dark parts of light frames (a browline over the rims, its wings): thin, far darker
    structures in the glasses' zone, inside the face, that touch the frames found so far."""
    lines = masks.dark_lines(lab[..., 0], DARK_WIDTH * size)
    shape = lab.shape[:2]
    zone = masks.glasses_zone(shape, points) * masks.polygon_mask(shape, masks.loop(points, mesh.FACE_OVAL))
    darkness = masks.smoothstep(
        FRAME_DARK * _cheeks_lightness(lab, points) - lab[..., 0], -FRAME_DARK_EDGE, FRAME_DARK_EDGE
    )
    return _joined(lines * zone * darkness, frames, 2.0)


def bridge_mask(likeness: FloatArray, bridge: Bridge, rims: list[Rim], axes: FaceAxes, light: bool) -> FloatArray:
    """The bridge, traced from the middle of the nose out to where it meets each rim (across
    a highlight or a nose pad, a few columns without a band, as on either side of them)."""
    size, origin = axes.size, axes.middle
    lenses = [rim.outline().reshape(-1, 1, 2) for rim in rims]
    columns: list[tuple[float, float, float]] = []
    for side in (1, -1):  # toward the right eye (-across), then the left
        top, bottom = bridge.centre - bridge.width / 2, bridge.centre + bridge.width / 2
        half, gap = [], 0
        for k in range(int(BRIDGE_REACH / COLUMN_STEP)):
            x = -side * k * COLUMN_STEP * size
            found_top, found_bottom, seen = _column(
                likeness, axes, origin, x, (top + bottom) / 2, COLUMN_DRIFT * size, light
            )
            gap = 0 if seen else gap + 1
            if gap > BRIDGE_GAP:
                break
            if seen:
                top, bottom = found_top, found_bottom
            half.append((x, top, bottom))
            point = axes.at(origin, np.float32(x), np.float32((top + bottom) / 2))
            if any(cv2.pointPolygonTest(lens, (float(point[0]), float(point[1])), False) >= 0 for lens in lenses):
                break
        columns = half[::-1] if side == 1 else columns + half[1:]
    mask = np.zeros(likeness.shape, np.float32)
    if len(columns) >= 2:
        mask = masks.polygon_mask(likeness.shape, _band_polygon(axes, origin, columns))
    return mask


def _column(
    likeness: FloatArray, axes: FaceAxes, origin: FloatArray, x: float, centre: float, reach: float, light: bool
) -> tuple[float, float, bool]:
    """Down one column (`x` across from `origin`, pixels), the band of frame likeness about
    `centre` (pixels down, the peak sought within `reach`): its top and bottom (pixels down)
    and whether it stands out."""
    offsets = np.arange(
        -BAND_REACH * axes.size - reach, BAND_REACH * axes.size + reach + BAND_STEP, BAND_STEP, dtype=np.float32
    )
    px, py = axes.at(origin, np.full(offsets.shape, x, np.float32), centre + offsets)
    profile = cast(
        FloatArray, cv2.remap(likeness, px[None], py[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    )
    low, high, seen = half_height_run(profile, reach / BAND_STEP, light)
    start = centre + offsets[0]
    return start + float(low[0]) * BAND_STEP, start + float(high[0]) * BAND_STEP, bool(seen[0])


def _band_polygon(axes: FaceAxes, origin: FloatArray, columns: list[tuple[float, float, float]]) -> FloatArray:
    """The polygon of a band traced column by column ((x, top, bottom) in pixels from `origin`)."""
    x, top, bottom = (np.array(v, np.float32) for v in zip(*columns))
    upper = np.stack(axes.at(origin, x, top), axis=1)
    lower = np.stack(axes.at(origin, x, bottom), axis=1)
    return np.concatenate([upper, lower[::-1]])


def arm_mask(
    body: FloatArray, rim: Rim, rim_mask: FloatArray, points: FloatArray, axes: FaceAxes, side: int
) -> FloatArray:
    """The arm beside one lens (side 1: the right), up to and a little past the face's edge
    (past it the template stays as it is, but for the warp fading out there): what has the
    frame's colour, joined to the rim, from the rim's outer side outward, at the height of
    the lens's top."""
    size = axes.size
    origin = axes.eye(side)
    outward = -side * axes.across
    outline = rim.outline()
    start = float(((outline - origin) @ outward).max()) - BAND_REACH * size
    edge = float((points[FACE_SIDES[0] if side > 0 else FACE_SIDES[1], :2] - origin) @ outward) + ARM_PAST_EDGE * size
    top = float(((outline - origin) @ axes.down).min())
    top, bottom = top - ARM_ABOVE * size, top + ARM_BELOW * size
    if edge <= start:
        return np.zeros(body.shape, np.float32)
    corners = np.array(
        [origin + outward * x + axes.down * y for x, y in ((start, top), (edge, top), (edge, bottom), (start, bottom))],
        np.float32,
    )
    strip = masks.polygon_mask(body.shape, corners)
    return _joined(masks.smoothstep(body, *FRAME_EDGE) * strip, rim_mask, JOIN_REACH * size)


def _joined(candidate: FloatArray, frames: FloatArray, reach: float) -> FloatArray:
    """The parts of `candidate` (0..1) within `reach` pixels of `frames` (0..1)."""
    solid = (candidate > 0.5).astype(np.uint8)
    _, pieces = cv2.connectedComponents(solid, connectivity=8)
    near = masks.grow((frames > 0.5).astype(np.float32), max(reach, 2.0)) > 0
    touching = np.unique(pieces[near & (solid > 0)])
    touching = touching[touching > 0]
    if touching.size == 0:
        return np.zeros(candidate.shape, np.float32)
    # Grown by a pixel so that each piece keeps its soft edge.
    keep = cv2.dilate(np.isin(pieces, touching).astype(np.uint8), np.ones((3, 3), np.uint8))
    return (candidate * keep).astype(np.float32)
